import pg from "pg";
import { errorMessage } from "../../../runtime/errors.ts";
import type { PgConnectionConfig } from "../../../runtime/pgTls.ts";
import { MIGRATION_LOCK_KEY } from "./advisoryLockKey.ts";
import { MigrationError } from "./MigrationError.ts";
import { type AppliedMigration, type MigrationStatusRow, planMigrations } from "./planMigrations.ts";
import { defaultMigrationsDir, lineOfOffset, type MigrationFile, readMigrations } from "./readMigrations.ts";

/** The logging the runner does (a pino logger fits). Messages name the migration in fields. */
export interface MigrationLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Where and what to migrate. */
export interface MigrateOptions {
  /**
   * A pool, of which one client is borrowed for the whole run, or a connection string (or a
   * connection string with its TLS options, runtime/pgTls.ts), for which one connection is opened
   * and closed. Either way the database is the one migrated, in the first schema of its
   * `search_path`.
   */
  readonly db: pg.Pool | string | PgConnectionConfig;
  /** The migrations directory; defaults to the repository's `migrations/` (see `defaultMigrationsDir`). */
  readonly dir?: string;
  readonly log?: MigrationLog;
}

/** The outcome of {@link migrateUp}. */
export interface MigrateResult {
  /** File names applied by this run, in order (empty when the database was up to date). */
  readonly applied: string[];
  /** How many migrations had been applied before this run. */
  readonly alreadyApplied: number;
}

const silentLog: MigrationLog = { info() {}, warn() {} };

// Versions are the file prefixes; name and checksum pin the exact file that was applied.
const CREATE_SCHEMA_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY CHECK (version > 0),
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  duration_ms integer NOT NULL
)`;

const SELECT_APPLIED = "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version";

// Runs inside the migration's transaction, so the duration covers the file's statements.
const INSERT_APPLIED = `
INSERT INTO schema_migrations (version, name, checksum, duration_ms)
VALUES ($1, $2, $3, (extract(epoch FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)`;

/**
 * Applies the pending migrations, each in its own transaction together with its `schema_migrations`
 * row, under a session-level advisory lock held on one connection for the whole run: a second runner
 * waits for the first, then finds nothing to do.
 *
 * Refuses (throws {@link MigrationError}, applies nothing) when a file name is invalid, an applied
 * migration was edited, renamed or deleted, or a pending one is numbered below an applied one; and
 * when its statements do not share one server session, as behind a transaction- or
 * statement-pooling proxy (PgBouncer), where a session lock guards nothing: the runner needs a
 * direct connection there (`DIRECT_DATABASE_URL`).
 * A failing migration is rolled back and the error names the file and line; the ones before it stay.
 */
export async function migrateUp(options: MigrateOptions): Promise<MigrateResult> {
  const dir = options.dir ?? defaultMigrationsDir();
  const log = options.log ?? silentLog;
  // Validate the whole directory before touching the database: a bad file changes nothing.
  const files = await readMigrations(dir);

  return withSession(options.db, async (session) => {
    await lockMigrations(session, log);
    try {
      await session.client.query(CREATE_SCHEMA_TABLE);
      // Read under the lock, so a runner that waited sees what the other one applied.
      const plan = planMigrations(files, await selectApplied(session.client));
      if (plan.problems.length > 0) {
        throw new MigrationError(
          `Refusing to migrate:\n  ${plan.problems.map((p) => p.problem).join("\n  ")}`,
          plan.problems.map((p) => p.name),
        );
      }
      const alreadyApplied = plan.rows.filter((r) => r.state === "applied").length;
      const applied: string[] = [];
      for (const file of plan.pending) {
        await applyMigration(session, file);
        log.info({ migration: file.name, version: file.version }, "Applied migration");
        applied.push(file.name);
      }
      log.info({ applied: applied.length, alreadyApplied }, "Database schema is up to date");
      return { applied, alreadyApplied };
    } finally {
      await unlockMigrations(session, log);
    }
  });
}

/**
 * Every migration known on disk or in the database with its state. Read-only: takes no lock and does
 * not create `schema_migrations` (all files are `pending` on a fresh database). Throws only when the
 * directory itself is invalid; `changed`, `missing` and out-of-order rows carry a `problem`.
 */
export async function migrationStatus(options: MigrateOptions): Promise<MigrationStatusRow[]> {
  const files = await readMigrations(options.dir ?? defaultMigrationsDir());
  const applied = await withSession(options.db, async ({ client }) => {
    const { rows } = await client.query<{ present: boolean }>(
      "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
    );
    return rows[0]?.present === true ? selectApplied(client) : [];
  });
  return [...planMigrations(files, applied).rows];
}

interface Session {
  readonly client: pg.ClientBase;
  /** Set when the connection failed: a pool client is then destroyed instead of reused. */
  broken: Error | undefined;
  /** The server process the lock was taken in (`pg_backend_pid()`); set by {@link lockMigrations}. */
  backendPid?: number;
}

/**
 * Runs `fn` on ONE connection: session-level advisory locks belong to a connection, so the lock and
 * the migrations must never hop between pool clients.
 */
async function withSession<T>(
  db: pg.Pool | string | PgConnectionConfig,
  fn: (session: Session) => Promise<T>,
): Promise<T> {
  // A checked-out pool client has no 'error' listener of its own (the pool removes its idle one), so
  // without this a connection lost while waiting for the lock would crash the process; the pending
  // query rejects as well, and that is what the caller sees.
  const watch = (session: Session) => (error: Error) => {
    session.broken = error;
  };

  if (!(db instanceof pg.Pool)) {
    const connection = typeof db === "string" ? { connectionString: db } : db;
    const client = new pg.Client({ ...connection, application_name: "evaluator-operator migrate" });
    const session: Session = { client, broken: undefined };
    client.on("error", watch(session));
    try {
      await client.connect();
      return await fn(session);
    } finally {
      // Closing the connection also releases a lock that could not be released explicitly.
      await client.end().catch(() => undefined);
    }
  }

  const client = await db.connect();
  const session: Session = { client, broken: undefined };
  const onError = watch(session);
  client.on("error", onError);
  try {
    return await fn(session);
  } finally {
    client.removeListener("error", onError);
    client.release(session.broken);
  }
}

/**
 * The error of a runner whose statements ran in different server sessions: its connection goes
 * through a proxy that pools per transaction or per statement.
 */
function notASession(): MigrationError {
  return new MigrationError(
    "The migration runner needs a session of its own, and its statements ran on different server " +
      "connections: the database URL goes through a transaction- or statement-pooling proxy (such as " +
      "PgBouncer), where the migration lock guards nothing. Give the runner a direct connection: " +
      "DIRECT_DATABASE_URL (--direct-database-url).",
    [],
  );
}

/**
 * Takes the session lock, in the server process the session started in: each statement names that
 * process and does nothing in another one, so behind a transaction pooler no lock is taken (and
 * none is left on a pooled server connection) unless the first two statements shared one.
 */
async function lockMigrations(session: Session, log: MigrationLog): Promise<void> {
  const key = MIGRATION_LOCK_KEY.toString();
  const { client } = session;
  const { rows: self } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  const pid = self[0]!.pid;
  const { rows } = await client.query<{ locked: boolean }>(
    "SELECT pg_try_advisory_lock($1::bigint) AS locked WHERE pg_backend_pid() = $2",
    [key, pid],
  );
  if (rows.length === 0) throw notASession();
  session.backendPid = pid;
  if (rows[0]?.locked === true) return;
  // Another runner is migrating this database: wait for it (it releases the lock when done or when
  // its connection ends), then re-read what it applied.
  log.info({ lockKey: key }, "Waiting for the migration lock held by another runner");
  const waited = await client.query("SELECT pg_advisory_lock($1::bigint) WHERE pg_backend_pid() = $2", [
    key,
    pid,
  ]);
  if (waited.rows.length === 0) throw notASession();
}

async function unlockMigrations(session: Session, log: MigrationLog): Promise<void> {
  if (session.backendPid === undefined) return; // no lock was taken
  try {
    const { rows } = await session.client.query<{ unlocked: boolean }>(
      "SELECT pg_advisory_unlock($1::bigint) AS unlocked WHERE pg_backend_pid() = $2",
      [MIGRATION_LOCK_KEY.toString(), session.backendPid],
    );
    if (rows[0]?.unlocked !== true) {
      // Only behind a transaction pooler (a direct session holds the lock it took): the lock stays
      // with the pooled server connection that took it until the pooler closes that connection.
      log.warn(
        { lockKey: MIGRATION_LOCK_KEY.toString() },
        "The migration lock was taken on a pooled server connection and could not be released from this one; give the runner a direct connection (DIRECT_DATABASE_URL)",
      );
    }
  } catch (error) {
    // The lock lives as long as the connection: destroying it releases the lock.
    session.broken ??= error instanceof Error ? error : new Error(String(error));
    log.warn({ err: error }, "Could not release the migration lock; closing its connection instead");
  }
}

async function selectApplied(client: pg.ClientBase): Promise<AppliedMigration[]> {
  const { rows } = await client.query<{ version: number; name: string; checksum: string; applied_at: Date }>(
    SELECT_APPLIED,
  );
  return rows.map((r) => ({
    version: r.version,
    name: r.name,
    checksum: r.checksum,
    appliedAt: r.applied_at,
  }));
}

async function applyMigration(session: Session, file: MigrationFile): Promise<void> {
  const { client } = session;
  await client.query("BEGIN");
  try {
    const before = await client.query<{ xid: string; pid: number }>(
      "SELECT pg_current_xact_id()::text AS xid, pg_backend_pid() AS pid",
    );
    // The transaction's statements share its server session whatever the pooling; it must be the
    // one holding the lock.
    if (before.rows[0]?.pid !== session.backendPid) throw notASession();
    try {
      // No parameters: the simple query protocol, so a file may hold many statements.
      await client.query(file.sql);
    } catch (error) {
      throw statementFailure(file, error);
    }
    // A file that ended the transaction itself (e.g. a bare `END;`, which the file check cannot tell
    // from PL/pgSQL) would leave its statements committed without their schema_migrations row.
    const after = await client.query<{ xid: string | null }>(
      "SELECT pg_current_xact_id_if_assigned()::text AS xid",
    );
    if (after.rows[0]?.xid !== before.rows[0]?.xid) {
      throw new MigrationError(
        `Migration ${file.name} ended its transaction itself (COMMIT, ROLLBACK or END); what ran before that may be committed without being recorded, check the schema by hand`,
        [file.name],
      );
    }
    await client.query(INSERT_APPLIED, [file.version, file.name, file.checksum]);
    await client.query("COMMIT");
  } catch (error) {
    // If the connection is gone the transaction is gone with it; the original error matters.
    await client.query("ROLLBACK").catch(() => undefined);
    if (error instanceof MigrationError) throw error;
    throw new MigrationError(
      `Migration ${file.name} could not be committed: ${errorMessage(error)}`,
      [file.name],
      {
        cause: error,
      },
    );
  }
}

/** Names the file and, when PostgreSQL reports a position, the line of the failing statement. */
function statementFailure(file: MigrationFile, error: unknown): MigrationError {
  const position = error instanceof pg.DatabaseError ? Number(error.position) : Number.NaN;
  const where =
    Number.isInteger(position) && position > 0 ? ` at line ${lineOfOffset(file.sql, position - 1)}` : "";
  return new MigrationError(`Migration ${file.name} failed${where}: ${errorMessage(error)}`, [file.name], {
    cause: error,
  });
}
