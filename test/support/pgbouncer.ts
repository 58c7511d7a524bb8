/**
 * A private PgBouncer in front of the shared test PostgreSQL, for the tests of what works through a
 * pooler: its own process on a free loopback port, a generated ini in a temp folder of its own, any
 * database of the upstream server reachable through it (`* =` in `[databases]`), trust
 * authentication for the upstream URL's user. `npm test` installs the Debian package when it is
 * missing (hack/lib.sh `ensure_pgbouncer`); without it, starting one fails with how to install it,
 * never a skipped test.
 *
 * ```ts
 * const bouncer = await startPrivatePgbouncer({ poolMode: "transaction" });
 * try {
 *   const url = bouncer.through(db.url); // the same database, through PgBouncer
 * } finally {
 *   await bouncer.destroy();
 * }
 * ```
 *
 * Server connections are handed out round robin (`server_round_robin = 1`) rather than PgBouncer's
 * default LIFO: with LIFO, a lone client's consecutive transactions mostly land on the same server
 * connection and the hazards of transaction pooling (a prepared statement or a session lock left on
 * one server connection, missing on the next) show only under load. With round robin and a few
 * server connections opened first ({@link PrivatePgbouncer.warm}), they show every time.
 *
 * PgBouncer refuses to run as root: when this process is root, it is started with `-u postgres`
 * (PgBouncer's own switch to another OS user), and its folder belongs to that user.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chown, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "./ports.ts";
import { ADMIN_DATABASE_URL } from "./postgres.ts";
import {
  findOnPath,
  isExecutable,
  isProcessAlive,
  makeInstanceDir,
  orphanedDirs,
  readTail,
  waitFor,
} from "./privateServices.ts";

const run = promisify(execFile);

/** PgBouncer's `pool_mode`: when a server connection goes back to the pool. */
export type PgbouncerPoolMode = "session" | "transaction" | "statement";

export interface PgbouncerOptions {
  readonly poolMode: PgbouncerPoolMode;
  /** The PostgreSQL server behind it (default: the shared test server, `DATABASE_URL`). */
  readonly upstream?: string;
  /** Server connections per (database, user) pair (`default_pool_size`, default 10). */
  readonly poolSize?: number;
}

export interface PrivatePgbouncer {
  readonly port: number;
  readonly poolMode: PgbouncerPoolMode;
  /** The instance's temp folder (ini, auth file, pid file and log). */
  readonly dir: string;
  /** `url` (a database of the upstream server) with PgBouncer's host and port instead. */
  through(url: string): string;
  /**
   * Opens `connections` server connections to the database of `url` (through PgBouncer) by as many
   * concurrent statements, so that round robin spreads a client's next transactions over them.
   */
  warm(url: string, connections?: number): Promise<void>;
  /** The last lines of PgBouncer's log (for a failing test's message). */
  logTail(): string;
  /** Stops PgBouncer (its server connections close) and removes its folder. Idempotent. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The pgbouncer binary: $PGBOUNCER, PATH, or Debian's /usr/sbin (not on a non-root PATH). */
function pgbouncerBinary(): string {
  const env = process.env["PGBOUNCER"];
  const found =
    (env && isExecutable(env) ? env : undefined) ??
    findOnPath("pgbouncer") ??
    (isExecutable("/usr/sbin/pgbouncer") ? "/usr/sbin/pgbouncer" : undefined);
  if (!found) {
    throw new Error(
      "pgbouncer is not installed: `npm test` installs it (hack/lib.sh ensure_pgbouncer), or run " +
        "`apt-get install --no-install-recommends pgbouncer` as root (or set PGBOUNCER to its path)",
    );
  }
  return found;
}

/** uid/gid of the `postgres` OS user, when this process is root (PgBouncer refuses root). */
async function runAsUser(): Promise<{ name: string; uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string) => Number((await run("id", [flag, "postgres"])).stdout.trim());
  const [uid, gid] = await Promise.all([id("-u"), id("-g")]).catch(() => [Number.NaN, Number.NaN]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error("running as root, but there is no `postgres` OS user to run PgBouncer as");
  }
  return { name: "postgres", uid: uid!, gid: gid! };
}

/** Kills the PgBouncers and removes the folders of test processes that died without `destroy`. */
async function sweepOrphanedPgbouncers(): Promise<void> {
  for (const dir of orphanedDirs("pgbouncer")) {
    const pid = Number((await readFile(join(dir, "pgbouncer.pid"), "utf8").catch(() => "")).trim());
    // Only a process that really is the PgBouncer of this folder (its command line names the ini).
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (pid > 0 && isProcessAlive(pid) && cmdline.includes(join(dir, "pgbouncer.ini"))) {
      process.kill(pid, "SIGKILL");
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** An ini value in double quotes (PgBouncer's quoting for values with spaces or `=`). */
const quoted = (v: string) => `"${v.replaceAll('"', '""')}"`;

/**
 * Starts a private PgBouncer in `poolMode` in front of `upstream` on a free loopback port (no unix
 * socket). Call `destroy()` (or `await using`) when done.
 */
export async function startPrivatePgbouncer(options: PgbouncerOptions): Promise<PrivatePgbouncer> {
  const bin = pgbouncerBinary();
  const user = await runAsUser();
  await sweepOrphanedPgbouncers();
  const upstream = new URL(options.upstream ?? ADMIN_DATABASE_URL);
  const dbUser = decodeURIComponent(upstream.username) || "postgres";
  const password = decodeURIComponent(upstream.password);
  const dir = await makeInstanceDir("pgbouncer");
  if (user) await chown(dir, user.uid, user.gid);
  const ini = join(dir, "pgbouncer.ini");
  const logFile = join(dir, "pgbouncer.log");
  const port = await freePort();
  // The upstream host as PgBouncer's `host=` wants it: no brackets around an IPv6 address.
  const host = upstream.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1";
  const settings = [
    "[databases]",
    `* = host=${host} port=${upstream.port || "5432"}`,
    "",
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = trust",
    `auth_file = ${join(dir, "users.txt")}`,
    `pool_mode = ${options.poolMode}`,
    `default_pool_size = ${options.poolSize ?? 10}`,
    "max_client_conn = 500",
    "server_round_robin = 1",
    // What a production PgBouncer of this version accepts from clients: no ignore_startup_parameters.
    `logfile = ${logFile}`,
    `pidfile = ${join(dir, "pgbouncer.pid")}`,
    "",
  ];
  await writeFile(ini, settings.join("\n"));
  // PgBouncer logs in to PostgreSQL with the password of the auth file (none with trust).
  await writeFile(join(dir, "users.txt"), `${quoted(dbUser)} ${quoted(password)}\n`, { mode: 0o600 });
  if (user) {
    await chown(ini, user.uid, user.gid);
    await chown(join(dir, "users.txt"), user.uid, user.gid);
  }

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    const proc = child;
    if (proc) {
      // Immediate shutdown: its client and server connections close at once.
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const proc = spawn(bin, [...(user ? ["-u", user.name] : []), "--quiet", ini], { stdio: "ignore" });
    child = proc;
    exited = new Promise((resolve) => {
      proc.once("exit", () => {
        if (child === proc) child = undefined;
        resolve();
      });
    });
    proc.once("error", () => {
      // A spawn failure surfaces as the readiness timeout below, with the log.
    });
    // Ready once it listens; a PgBouncer that could not start (the port taken meanwhile, a bad ini)
    // exits, and the wait ends with its log.
    await waitFor(
      async () => {
        if (child === undefined) throw new Error(`pgbouncer exited at start`);
        return tcpOpen(port);
      },
      {
        timeoutMs: 10_000,
        what: `pgbouncer on port ${port}`,
      },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${readTail(logFile)}`);
    });
  } catch (err) {
    await destroy();
    throw err;
  }

  const through = (url: string): string => {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(port);
    return u.toString();
  };

  return {
    port,
    poolMode: options.poolMode,
    dir,
    through,
    async warm(url, connections = 4) {
      const pool = new pg.Pool({ connectionString: through(url), max: connections });
      pool.on("error", () => {
        // Reported by the queries below.
      });
      try {
        await Promise.all(Array.from({ length: connections }, () => pool.query("SELECT pg_sleep(0.2)")));
      } finally {
        await pool.end();
      }
    },
    logTail: () => readTail(logFile),
    destroy,
    [Symbol.asyncDispose]: destroy,
  };
}

/** Resolves true when a TCP connection to 127.0.0.1:`port` opens. */
function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("error", () => done(false));
    sock.on("connect", () => done(true));
  });
}
