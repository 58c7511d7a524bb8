import { CommanderError } from "commander";
import { Redis } from "ioredis";
import pg from "pg";
import { ListenError } from "../../runtime/httpServer.ts";
import { handleShutdownSignals } from "../../runtime/signals.ts";
import { createProgram, type ProgramDeps } from "./cli/program.ts";
import { ConfigError, type EvaluatorConfig } from "./config/evaluatorConfig.ts";
import type { EvaluatorClients } from "./lifecycle/runEvaluator.ts";
import type { Logger } from "./log.ts";

/** statement_timeout of the pool's sessions (pool mode `session`). */
const STATEMENT_TIMEOUT_MS = 30_000;

/**
 * Builds the evaluator's clients — the only place that does. Failure policy:
 * - Valkey: `enableOfflineQueue: false`, `maxRetriesPerRequest: 1` and a `commandTimeout`, so a
 *   command during an outage fails within the timeout instead of queueing until Valkey returns
 *   (`maxRetriesPerRequest: null`, right for long-running queue workers, would hang the tick and
 *   every tenant behind it). The tick path has its own fallbacks (fail-open/closed per path) and a
 *   circuit breaker; the client keeps reconnecting in the background with capped backoff.
 * - PostgreSQL: a bounded pool (concurrency + headroom for the batch reads and the readiness
 *   probe), a connect timeout, and statement/query timeouts so a stuck query fails the tenant or
 *   the tick instead of holding it forever. The LISTEN connection goes to DIRECT_DATABASE_URL.
 * Both get an 'error' listener at once: an idle client dying must never crash the process.
 */
export function connectClients(config: EvaluatorConfig, log: Logger): EvaluatorClients {
  const valkey = new Redis(config.valkeyUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: config.valkeyCommandTimeoutMs,
    connectTimeout: Math.max(1000, config.valkeyCommandTimeoutMs),
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 10), 2000),
    lazyConnect: false,
    connectionName: `evaluator:${config.shardSet}#${config.shardIndex}`,
  });
  valkey.on("error", () => {
    // Logged by runEvaluator; this listener only keeps the error from being thrown.
  });
  // No session setting goes in the startup packet: PgBouncer refuses a connection that carries one
  // it does not track (statement_timeout, options), whatever its pool mode.
  const pgOptions = {
    connectionTimeoutMillis: 3000,
    query_timeout: 35_000,
    application_name: `evaluator ${config.shardSet}#${config.shardIndex}`,
  };
  // Five batch reads run in parallel beside `concurrency` tenant writes, plus the readiness probe.
  // The pool's only writes are alert writes, whose commit mode each commit statement sets for its own
  // transaction (README, "Durability"), so it holds through any pooler.
  const db = new pg.Pool({
    ...pgOptions,
    connectionString: config.databaseUrl,
    max: config.concurrency + 6,
    idleTimeoutMillis: 30_000,
    // Batch reads of a large shard can take seconds; a stuck one must not hold the tick forever.
    // Set once per connection where the connection is a session. Through transaction or statement
    // pooling it is not: a SET would stay on one server connection, for whichever client gets it
    // next, so the database's own statement_timeout applies (README, "Through PgBouncer").
    ...(config.pgPoolMode === "session"
      ? {
          onConnect: (client: pg.ClientBase) =>
            client.query(`SET statement_timeout = ${STATEMENT_TIMEOUT_MS}`),
        }
      : {}),
  });
  db.on("error", (err) => log.warn({ err: err.message }, "postgres_idle_client_error"));
  return {
    db,
    valkey,
    newListenClient: () => {
      // LISTEN belongs to a session: this connection must bypass a transaction pooler.
      const client = new pg.Client({
        ...pgOptions,
        connectionString: config.directDatabaseUrl,
        query_timeout: 10_000,
      });
      client.on("error", () => {
        // IngestListener attaches its own handler right after; this one closes the gap.
      });
      return client;
    },
  };
}

/**
 * Entry point of `evaluator`: the only code that touches signals and exit codes. The first
 * SIGTERM/SIGINT drains (no new tick, running tenants finish, leases of unevaluated tenants are
 * released, clients closed) and exits 0; a second one forces the exit.
 *
 * `extra.faults` (and a skewed `extra.clock`) are test-only hooks, given by a test entry point
 * (test/support/evaluatorWithFaults.ts); the product's entry point (evaluator/bin/evaluator.ts)
 * passes none.
 *
 * @returns the process exit code (2 for an invalid configuration or usage)
 */
export async function main(
  argv: readonly string[],
  extra: Pick<ProgramDeps, "faults" | "clock"> = {},
): Promise<number> {
  const shutdown = handleShutdownSignals({
    onForce: (sig) => {
      process.stderr.write(`evaluator: second ${sig}, exiting now\n`);
      process.exit(130);
    },
  });
  const program = createProgram({
    env: process.env,
    shutdownSignal: shutdown.signal,
    connect: connectClients,
    ...extra,
  });
  try {
    await program.parseAsync(argv as string[], { from: "node" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof ConfigError) {
      process.stderr.write(`evaluator: invalid configuration: ${err.message}\n`);
      return 2;
    }
    // The metrics server could not listen: the address says it all, a stack trace would not help.
    if (err instanceof ListenError) {
      process.stderr.write(`evaluator: ${err.message} (METRICS_HOST, METRICS_PORT)\n`);
      return 1;
    }
    process.stderr.write(`evaluator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
