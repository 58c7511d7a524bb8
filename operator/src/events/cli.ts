import type { Command } from "commander";
import pg from "pg";
import { DATABASE_URL_FLAG, databaseUrlHelp, requirePostgresUrl } from "../config/databaseUrl.ts";
import { parseDuration } from "../config/operatorConfig.ts";
import { compilePgConnection, compileTlsCaFile, TLS_CA_FILE_HELP } from "../config/tlsCaFile.ts";
import { createPgOutbox } from "./outbox.ts";
import { compileRelayConfig, type RelayConfig } from "./relayConfig.ts";
import { runRelay } from "./runRelay.ts";

/** What the `events` commands need from their surroundings. */
export interface EventsCommandDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
  readonly shutdownSignal: AbortSignal;
  /** Runs the relay once its configuration is valid (default: runRelay; tests stop here). */
  readonly runRelay?: (config: RelayConfig, deps: { shutdownSignal: AbortSignal }) => Promise<void>;
}

const RELAY_HELP = `
Environment (a flag wins over its variable):
  DATABASE_URL         PostgreSQL connection string (prefer it to the flag: a flag shows in ps)
  DIRECT_DATABASE_URL  connection for LISTEN alert_events when DATABASE_URL goes through PgBouncer's
                       transaction pooling, which does not carry LISTEN (default: DATABASE_URL)
  TLS_CA_FILE          PEM bundle of the CA certificates to trust for PostgreSQL over TLS, when a
                       database URL has sslmode=require (the chain is then checked), verify-ca or
                       verify-full and no sslrootcert. No sslmode or sslmode=disable: no TLS.
  NATS_URL             nats://[user:password@]host:port, or nats://token@host:port
  LOG_LEVEL            --log-level

Each event goes to <subject-prefix>.<tenant> (the tenant id escaped into one token: letters, digits,
"-" and "_" as they are, any other character as "~" and the hex of its UTF-8 bytes) with its id as
Nats-Msg-Id. The cursor (alert_event_cursors, keyed by --name) moves only after the stream's
acknowledgement. Durations: 500ms, 15s, 2m, 1h. Exit codes: 0 after a graceful stop, 2 for bad
usage or an invalid setting, 1 for any other failure.`;

/** Events older than the cutoff are deleted this many at a time. */
const PRUNE_BATCH = 10_000;

/** Adds `events relay` and `events prune` to the `evaluator-operator` CLI. */
export function registerEventsCommand(program: Command, deps: EventsCommandDeps): Command {
  const env = (name: string) => deps.env[name];
  const events = program
    .command("events")
    .description("Relay and prune the alert-event outbox (alert_events)");

  events
    .command("relay")
    .description("Publish alert events to a NATS JetStream stream, each once, in order, until stopped")
    .option("--database-url <url>", DATABASE_URL_FLAG)
    .option(
      "--direct-database-url <url>",
      "PostgreSQL connection for LISTEN (default: $DIRECT_DATABASE_URL, else the database URL)",
    )
    .option("--nats-url <url>", "NATS server (default: $NATS_URL)")
    .option("--name <name>", "the relay's cursor name: one running relay per name", "default")
    .option("--stream <name>", "JetStream stream", "ALERT_EVENTS")
    .option("--subject-prefix <prefix>", "events go to <prefix>.<tenant>", "alerts.events")
    .option("--no-create-stream", "require the stream to exist (default: create it, capturing <prefix>.>)")
    .option("--duplicate-window <d>", "duplicate window of a stream the relay creates", "2m")
    .option("--batch-size <n>", "events read per round", "500")
    .option("--poll-interval <d>", "longest wait between reads without a NOTIFY", "1s")
    .option("--publish-timeout <d>", "how long a publish waits for the stream's acknowledgement", "5s")
    .option("--max-backoff <d>", "longest retry delay after a PostgreSQL or NATS failure", "30s")
    .option("--retention <d>", "delete events older than this, every --prune-interval (0: never)", "168h")
    .option("--prune-interval <d>", "how often the retention runs", "1h")
    .option("--http-bind-address <addr>", "address of /metrics, /healthz and /readyz", ":8080")
    .option(
      "--log-level <level>",
      "trace | debug | info | warn | error | fatal (default: $LOG_LEVEL, else info)",
    )
    .addHelpText("after", RELAY_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const config = compileRelayConfig({
        databaseUrl: (opts["databaseUrl"] as string | undefined) ?? env("DATABASE_URL"),
        directDatabaseUrl: (opts["directDatabaseUrl"] as string | undefined) ?? env("DIRECT_DATABASE_URL"),
        tlsCaFile: env("TLS_CA_FILE"),
        natsUrl: (opts["natsUrl"] as string | undefined) ?? env("NATS_URL"),
        name: opts["name"] as string,
        stream: opts["stream"] as string,
        subjectPrefix: opts["subjectPrefix"] as string,
        createStream: opts["createStream"] as boolean,
        duplicateWindow: opts["duplicateWindow"] as string,
        batchSize: opts["batchSize"] as string,
        pollInterval: opts["pollInterval"] as string,
        publishTimeout: opts["publishTimeout"] as string,
        maxBackoff: opts["maxBackoff"] as string,
        retention: opts["retention"] as string,
        pruneInterval: opts["pruneInterval"] as string,
        httpBindAddress: opts["httpBindAddress"] as string,
        logLevel: (opts["logLevel"] as string | undefined) ?? env("LOG_LEVEL") ?? "info",
      });
      await (deps.runRelay ?? runRelay)(config, { shutdownSignal: deps.shutdownSignal });
    });

  events
    .command("prune")
    .description("Delete alert events older than --older-than (relayed or not), then exit")
    .requiredOption("--older-than <d>", "age of the events to delete, e.g. 168h")
    .option("--database-url <url>", DATABASE_URL_FLAG)
    .addHelpText("after", databaseUrlHelp(TLS_CA_FILE_HELP))
    .action(async (opts: { olderThan: string; databaseUrl?: string }) => {
      const ageMs = parseDuration(opts.olderThan, "--older-than");
      const setting = "DATABASE_URL (--database-url)";
      const url = requirePostgresUrl(opts.databaseUrl ?? env("DATABASE_URL"), setting);
      const pool = new pg.Pool({
        ...compilePgConnection(url, compileTlsCaFile(deps.env), setting),
        max: 1,
      });
      pool.on("error", () => {
        // Reported by the failing query.
      });
      try {
        const outbox = createPgOutbox(pool);
        const before = Date.now() - ageMs;
        let total = 0;
        for (;;) {
          const n = await outbox.prune(before, PRUNE_BATCH);
          total += n;
          if (n < PRUNE_BATCH) break;
        }
        deps.stdout.write(
          `Deleted ${total} alert event(s) created before ${new Date(before).toISOString()}.\n`,
        );
      } finally {
        await pool.end();
      }
    });
  return events;
}
