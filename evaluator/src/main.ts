import type { ConnectionOptions } from "node:tls";
import { CommanderError } from "commander";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import pg from "pg";
import { ListenError } from "../../runtime/httpServer.ts";
import { PgTlsError, pgConnectionConfig, readCaFile } from "../../runtime/pgTls.ts";
import { handleShutdownSignals } from "../../runtime/signals.ts";
import { createProgram, type ProgramDeps } from "./cli/program.ts";
import { ConfigError, type EvaluatorConfig, type ValkeyTopology } from "./config/evaluatorConfig.ts";
import type { EvaluatorClients } from "./lifecycle/runEvaluator.ts";
import type { Logger } from "./log.ts";

/** statement_timeout of the pool's sessions (pool mode `session`; they also turn JIT off). */
const STATEMENT_TIMEOUT_MS = 30_000;

/** What {@link connectValkey} needs of the configuration. */
export type ValkeyConnectionSettings = Pick<
  EvaluatorConfig,
  "valkey" | "valkeyCommandTimeoutMs" | "tlsCaFile" | "shardSet" | "shardIndex"
>;

/** Runs `read`, turning a TLS setting it refuses (PgTlsError) into a ConfigError (exit code 2). */
function tlsSetting<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof PgTlsError) throw new ConfigError(err.message);
    throw err;
  }
}

/**
 * Builds the Valkey client of the configured topology (`ValkeyTopology`): one server, a Valkey
 * Cluster (ioredis `Cluster`: each script call goes to the node of its keys' slot, MOVED and ASK
 * redirections are followed, TRYAGAIN during a slot migration is retried, and the slot map is
 * refreshed after a failover), or a primary found through Sentinel (asked again after a failover).
 * TLS for `rediss://`, with TLS_CA_FILE's CAs when given (host names are checked).
 *
 * Failure policy, the same in every topology: `enableOfflineQueue: false`, one retry per request and
 * a `commandTimeout`, so a command during an outage fails within the timeout instead of queueing
 * until Valkey returns (`maxRetriesPerRequest: null`, right for long-running queue workers, would
 * hang the tick and every tenant behind it). The tick path has its own fallbacks (fail-open/closed
 * per path) and a circuit breaker; the client keeps reconnecting in the background with capped
 * backoff. An 'error' listener is attached at once: an idle connection dying must never crash the
 * process (runEvaluator logs).
 */
export function connectValkey(settings: ValkeyConnectionSettings): Redis | Cluster {
  const topology: ValkeyTopology = settings.valkey;
  const caFile = settings.tlsCaFile;
  const ca = topology.tls && caFile !== undefined ? tlsSetting(() => readCaFile(caFile)) : undefined;
  const tls: ConnectionOptions | undefined = topology.tls ? (ca ? { ca } : {}) : undefined;
  const backoff = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 10), 2000);
  const common: RedisOptions = {
    username: topology.username,
    password: topology.password,
    ...(tls ? { tls } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: settings.valkeyCommandTimeoutMs,
    connectTimeout: Math.max(1000, settings.valkeyCommandTimeoutMs),
    retryStrategy: backoff,
    lazyConnect: false,
    connectionName: `evaluator:${settings.shardSet}#${settings.shardIndex}`,
  };
  let client: Redis | Cluster;
  switch (topology.mode) {
    case "standalone": {
      const [endpoint] = topology.endpoints;
      client = new Redis({ ...common, ...endpoint, db: topology.db });
      break;
    }
    case "sentinel":
      client = new Redis({
        ...common,
        db: topology.db,
        sentinels: topology.endpoints.map((e) => ({ host: e.host, port: e.port })),
        name: topology.sentinelMaster,
        role: "master",
        // TLS to the sentinels and to the primary they name alike (rediss://).
        ...(tls ? { sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
        sentinelRetryStrategy: backoff,
        // Subscribes to the sentinels' +switch-master: a failover is followed at once, not at
        // the next connection error.
        failoverDetector: true,
      });
      break;
    case "cluster": {
      const { retryStrategy: _perNode, ...redisOptions } = common;
      const options: ClusterOptions = {
        redisOptions,
        enableOfflineQueue: false,
        clusterRetryStrategy: backoff,
        // A TRYAGAIN (a multi-key call while its slot is half moved) or CLUSTERDOWN is retried
        // after 100 ms, up to maxRedirections times, then fails like an outage.
        retryDelayOnTryAgain: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        maxRedirections: 16,
        slotsRefreshTimeout: Math.max(1000, settings.valkeyCommandTimeoutMs),
        // Every call goes to the primary of its slot: the state must be read where it was written.
        scaleReads: "master",
      };
      client = new Cluster(
        topology.endpoints.map((e) => ({ host: e.host, port: e.port })),
        options,
      );
      break;
    }
  }
  client.on("error", () => {
    // Logged by runEvaluator; this listener only keeps the error from being thrown.
  });
  return client;
}

/**
 * Builds the evaluator's clients — the only place that does. Valkey: {@link connectValkey}.
 * PostgreSQL: a bounded pool (concurrency + headroom for the batch reads and the readiness
 * probe), a connect timeout, and statement/query timeouts so a stuck query fails the tenant or
 * the tick instead of holding it forever. The LISTEN connection goes to DIRECT_DATABASE_URL.
 * The pool gets an 'error' listener at once: an idle client dying must never crash the process.
 */
export function connectClients(config: EvaluatorConfig, log: Logger): EvaluatorClients {
  const valkey = connectValkey(config);
  // No session setting goes in the startup packet: PgBouncer refuses a connection that carries one
  // it does not track (statement_timeout, options), whatever its pool mode.
  // TLS as each URL's sslmode says, with TLS_CA_FILE's CAs (runtime/pgTls.ts); checked here, at start.
  const tls = { caFile: config.tlsCaFile };
  const database = tlsSetting(() =>
    pgConnectionConfig(config.databaseUrl, { ...tls, setting: "DATABASE_URL" }),
  );
  const directDatabase = tlsSetting(() =>
    pgConnectionConfig(config.directDatabaseUrl, { ...tls, setting: "DIRECT_DATABASE_URL" }),
  );
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
    ...database,
    max: config.concurrency + 6,
    idleTimeoutMillis: 30_000,
    // Batch reads of a large shard can take seconds; a stuck one must not hold the tick forever.
    // JIT off: the planner's cost estimate of the batch read's per-tenant scans passes
    // jit_above_cost, and compiling took 52–105 ms of a 200–275 ms read that runs in 21–26 ms
    // without it (EXPLAIN ANALYZE, 250 tenants; evaluator README, "Memory and CPU per pair").
    // Set once per connection where the connection is a session. Through transaction or statement
    // pooling it is not: a SET would stay on one server connection, for whichever client gets it
    // next, so the database's own settings apply (README, "Through PgBouncer").
    ...(config.pgPoolMode === "session"
      ? {
          onConnect: (client: pg.ClientBase) =>
            client.query(`SET statement_timeout = ${STATEMENT_TIMEOUT_MS}; SET jit = off`),
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
        ...directDatabase,
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
