import type { Command } from "commander";
import { DATABASE_URL_FLAG, databaseUrlHelp, requirePostgresUrl } from "../config/databaseUrl.ts";
import { compilePgConnection, compileTlsCaFile, TLS_CA_FILE_HELP } from "../config/tlsCaFile.ts";
import { formatStatusTable } from "./formatStatusTable.ts";
import { MigrationError } from "./MigrationError.ts";
import { type MigrationLog, migrateUp, migrationStatus } from "./runMigrations.ts";

/** What the `migrate` commands need from their surroundings. */
export interface MigrateCommandDeps {
  /**
   * Environment to read `DIRECT_DATABASE_URL` and `DATABASE_URL` from when their flags are not given,
   * and `TLS_CA_FILE`; read when a command runs.
   */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where the human-readable output goes (process.stdout in the binary, a buffer in tests). */
  readonly stdout: { write(text: string): unknown };
  readonly log?: MigrationLog;
  /** Overrides the repository's `migrations/` (the `--dir` flag overrides both). */
  readonly migrationsDir?: string;
}

interface MigrateFlags {
  readonly databaseUrl?: string;
  readonly directDatabaseUrl?: string;
  readonly dir?: string;
}

/** Help on the direct connection, under each `migrate` command. */
const DIRECT_DATABASE_URL_HELP = `
  DIRECT_DATABASE_URL
                A connection string that reaches PostgreSQL without a transaction- or
                statement-pooling proxy (PgBouncer), for when DATABASE_URL goes through one: the
                migration lock belongs to a session. When set, migrate connects there only
                (--direct-database-url works too). Default: DATABASE_URL.`;

/**
 * Adds `migrate up` and `migrate status` to a commander program. Errors are thrown (commander's
 * `parseAsync` rejects), never turned into `process.exit`: the entry point decides the exit code.
 * `status` also throws, after printing the table, when an applied migration was changed or is missing,
 * so a CI step or an init container fails on drift.
 */
export function registerMigrateCommand(program: Command, deps: MigrateCommandDeps): Command {
  const migrate = program
    .command("migrate")
    .description("Manage the PostgreSQL schema (numbered SQL migrations, applied in order)");

  const withFlags = (command: Command) =>
    command
      // No default value in the option itself: commander would print the URL (and its password) in --help.
      .option("--database-url <url>", DATABASE_URL_FLAG)
      .option(
        "--direct-database-url <url>",
        "PostgreSQL connection string bypassing a transaction pooler (default: $DIRECT_DATABASE_URL, else the database URL)",
      )
      .option("--dir <path>", "migrations directory (default: the migrations/ shipped with the operator)")
      .addHelpText("after", databaseUrlHelp(DIRECT_DATABASE_URL_HELP + TLS_CA_FILE_HELP));

  const resolve = (flags: MigrateFlags) => {
    // Refused before any connection: no database, or not a postgres:// one (a mysql:// URL would
    // otherwise fail as a resolver error of its host). A ConfigError: exit code 2.
    // The runner's lock needs a session: the direct connection when one is given (a database URL
    // through a transaction pooler is then not used at all).
    const direct = flags.directDatabaseUrl ?? deps.env["DIRECT_DATABASE_URL"];
    const [url, setting] =
      direct !== undefined && direct.trim() !== ""
        ? [direct, "DIRECT_DATABASE_URL (--direct-database-url)"]
        : [flags.databaseUrl ?? deps.env["DATABASE_URL"], "DATABASE_URL (--database-url)"];
    // TLS as the URL's sslmode says, with TLS_CA_FILE's CA; a bad setting is refused before connecting.
    const db = compilePgConnection(requirePostgresUrl(url, setting), compileTlsCaFile(deps.env), setting);
    const dir = flags.dir ?? deps.migrationsDir;
    return {
      db,
      ...(dir === undefined ? {} : { dir }),
      ...(deps.log === undefined ? {} : { log: deps.log }),
    };
  };

  withFlags(migrate.command("up"))
    .description("Apply pending migrations (safe to run concurrently; the others wait, then do nothing)")
    .action(async (flags: MigrateFlags) => {
      const result = await migrateUp(resolve(flags));
      deps.stdout.write(
        result.applied.length === 0
          ? `Database schema is up to date (${result.alreadyApplied} migrations applied).\n`
          : `Applied ${result.applied.length} migration(s):\n${result.applied.map((n) => `  ${n}\n`).join("")}`,
      );
    });

  withFlags(migrate.command("status"))
    .description("List migrations as applied, pending, changed or missing")
    .action(async (flags: MigrateFlags) => {
      const rows = await migrationStatus(resolve(flags));
      deps.stdout.write(formatStatusTable(rows));
      const drift = rows.filter((r) => r.state === "changed" || r.state === "missing");
      if (drift.length > 0) {
        throw new MigrationError(
          `${drift.length} applied migration(s) changed or missing`,
          drift.map((r) => r.name),
        );
      }
    });

  return migrate;
}
