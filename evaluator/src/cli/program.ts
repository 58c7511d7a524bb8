import { Command, Option } from "commander";
import type { DestinationStream } from "pino";
import { Registry } from "prom-client";
import { type Clock, systemClock } from "../../../runtime/clock.ts";
import {
  compileEvaluatorConfig,
  type EvaluatorConfig,
  type RawEvaluatorOptions,
  SETTINGS,
} from "../config/evaluatorConfig.ts";
import { type EvaluatorClients, runEvaluator } from "../lifecycle/runEvaluator.ts";
import { createLogger, type Logger } from "../log.ts";
import type { EvaluatorFaults } from "../tick/evaluatorFaults.ts";

/** What the CLI needs from its surroundings (no process globals inside). */
export interface ProgramDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborted on the first SIGTERM/SIGINT. */
  readonly shutdownSignal: AbortSignal;
  /** Builds the clients once the configuration is valid (only the entry point constructs clients). */
  readonly connect: (config: EvaluatorConfig, log: Logger) => EvaluatorClients;
  /** Where logs go (default: stdout). */
  readonly logDestination?: DestinationStream;
  readonly onListening?: (port: number) => void;
  /** Test-only fault hooks, given by a test entry point only (test/support/evaluatorWithFaults.ts). */
  readonly faults?: EvaluatorFaults;
  /** The clock ticks, budgets and tick times read (default: the system clock; a test entry point may skew it). */
  readonly clock?: Clock;
}

const DESCRIPTIONS: Record<keyof RawEvaluatorOptions, string> = {
  shardIndex: "this shard's index (integer ≥ 0; required)",
  shardSet: 'the EvaluatorShardSet, "namespace/name" (required)',
  databaseUrl: "PostgreSQL connection string (required; prefer the variable: a flag shows in ps)",
  valkeyUrl: "Valkey/Redis connection string (required; prefer the variable: a flag shows in ps)",
  tickIntervalSeconds: "tick interval in seconds (default 60)",
  minIntervalSeconds: "minimum seconds between tick starts for NOTIFY wake-ups (default: interval / 4)",
  tenantBudgetMs: "wall-clock budget per tenant evaluation, ms (default 5000, at most the interval)",
  concurrency: "tenants evaluated at once (default 8)",
  logLevel: "trace | debug | info | warn | error | fatal | silent (default info)",
  metricsPort: "port of /metrics, /healthz, /readyz (default 9464; 0 picks a free one)",
  metricsHost: "address of the metrics server (default 0.0.0.0)",
  breakerFailureThreshold: "consecutive outage errors that open a circuit breaker (default 3)",
  breakerCooldownSeconds: "seconds an open circuit breaker waits before a trial call (default 5)",
  valkeyCommandTimeoutMs: "timeout of one Valkey command, ms (default 2000)",
  pgSynchronousCommit:
    "synchronous_commit of the alert writes: off | local | on | remote_write | remote_apply (default off)",
  pgPoolMode:
    "pooling between DATABASE_URL and PostgreSQL, as PgBouncer's pool_mode: session | transaction | statement (default session)",
  directDatabaseUrl:
    "PostgreSQL connection string without a transaction pooler, for LISTEN (default: DATABASE_URL; prefer the variable)",
  tenantMaxPairs: "(rule, device) pairs above which a tenant is not evaluated this tick (default 50000)",
  tenantMaxReadings: "new readings above which a tenant is not evaluated this tick (default 200000)",
  alertEvents: "append each alert change to the alert_events outbox: on | off (default on)",
  valkeyMode:
    "standalone (VALKEY_URL one server) | cluster (seed nodes) | sentinel (the sentinels), comma-separated (default standalone)",
  valkeySentinelMaster: "sentinel mode: the name the sentinels know the primary by (required there)",
  tlsCaFile:
    "PEM file of the CAs trusted for TLS to Valkey (rediss://) and PostgreSQL (default: the system's)",
};

/**
 * Builds the `evaluator` CLI (commander). Every setting is a flag mirroring its environment
 * variable; a flag wins over the variable. Tests drive it with their own deps.
 */
export function createProgram(deps: ProgramDeps): Command {
  const program = new Command("evaluator")
    .description("The shard worker: evaluates the alert rules of one shard's tenants every tick")
    .exitOverride();

  const run = program
    .command("run")
    .description("Run the evaluator until SIGTERM (settings: flags or the environment variables shown)");
  for (const [key, s] of Object.entries(SETTINGS) as [
    keyof RawEvaluatorOptions,
    (typeof SETTINGS)[keyof typeof SETTINGS],
  ][]) {
    const name = s.flag.slice(2);
    // The environment is read from deps.env (not commander's .env(), which reads process.env).
    run.addOption(
      new Option(
        `${s.flag} <${name.endsWith("url") ? "url" : "value"}>`,
        `${DESCRIPTIONS[key]} [env ${s.env}]`,
      ),
    );
  }
  run.addHelpText(
    "after",
    `
Connection strings carry passwords: give DATABASE_URL, DIRECT_DATABASE_URL and VALKEY_URL in the
environment (from a Secret), not as flags, whose values every user of the host sees in ps.
Through PgBouncer in transaction or statement pooling, set PG_POOL_MODE to that mode and
DIRECT_DATABASE_URL to a connection that bypasses it (NOTIFY wake-ups need a session).
Exit codes: 0 after a graceful stop, 2 for bad usage or an invalid setting, 1 for any other failure.`,
  );
  run.action(async (opts: Record<string, string | undefined>) => {
    const raw: Record<string, string | undefined> = {};
    for (const [key, s] of Object.entries(SETTINGS)) {
      // A flag wins over its environment variable.
      raw[key] = opts[key] ?? deps.env[s.env];
    }
    const config = compileEvaluatorConfig(raw as RawEvaluatorOptions);
    const bindings = { shardSet: config.shardSet, shard: config.shardIndex };
    const log = deps.logDestination
      ? createLogger(config.logLevel, bindings, deps.logDestination)
      : createLogger(config.logLevel, bindings);
    const clients = deps.connect(config, log);
    await runEvaluator(config, {
      clients,
      log,
      registry: new Registry(),
      clock: deps.clock ?? systemClock,
      shutdownSignal: deps.shutdownSignal,
      ...(deps.onListening ? { onListening: deps.onListening } : {}),
      ...(deps.faults ? { faults: deps.faults } : {}),
    });
  });
  return program;
}
