import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Cluster, Redis } from "ioredis";
import type pg from "pg";
import type { Registry } from "prom-client";
import type { Clock } from "../../../runtime/clock.ts";
import { collectProcessMetrics } from "../../../runtime/defaultMetrics.ts";
import { errorMessage } from "../../../runtime/errors.ts";
import { startHttpServer } from "../../../runtime/httpServer.ts";
import { isPostgresOutage } from "../../../runtime/postgresOutage.ts";
import { redactUrl } from "../../../runtime/redactUrl.ts";
import { describeValkey, type EvaluatorConfig } from "../config/evaluatorConfig.ts";
import type { Logger } from "../log.ts";
import { createEvaluatorMetrics } from "../metrics.ts";
import { readRebuiltState } from "../state/rebuild.ts";
import { ValkeyState } from "../state/valkeyState.ts";
import { createPgStore } from "../store/pgStore.ts";
import { withoutStatementNames } from "../store/unnamedStatements.ts";
import { CircuitBreaker } from "../tick/circuitBreaker.ts";
import type { EvaluatorFaults } from "../tick/evaluatorFaults.ts";
import { IngestListener } from "../tick/ingestListener.ts";
import { isValkeyOutage } from "../tick/outages.ts";
import { shardOffsetMs } from "../tick/slotSchedule.ts";
import { TickRunner } from "../tick/tickRunner.ts";
import { TickScheduler } from "../tick/tickScheduler.ts";
import { createLiveness, createReadiness, createTickWatchdog, tickStuckAfterMs } from "./probes.ts";
import { Releasers } from "./releasers.ts";

/** The clients the evaluator talks through, built by the entry point (the only place that does). */
export interface EvaluatorClients {
  /** Pool for every query (an 'error' listener must already be attached). */
  readonly db: pg.Pool;
  /** Valkey client for the state scripts (an 'error' listener must already be attached). */
  /** One server (standalone or through Sentinel), or a Valkey Cluster. */
  readonly valkey: Redis | Cluster;
  /** A new, unconnected client for the dedicated LISTEN connection (one per (re)connect). */
  readonly newListenClient: () => pg.Client;
}

/** Dependencies of {@link runEvaluator}. */
export interface RunEvaluatorDeps {
  readonly clients: EvaluatorClients;
  readonly log: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  /** Aborted on the first SIGTERM/SIGINT: drain and return. */
  readonly shutdownSignal: AbortSignal;
  /** Called once the HTTP server listens (tests read the port from it, or from the log). */
  readonly onListening?: (port: number) => void;
  /** Test-only fault hooks, from a test entry point (absent in production). */
  readonly faults?: EvaluatorFaults;
}

/** Longest wait for Valkey at start-up before the first tick runs anyway (fail-open). */
const VALKEY_STARTUP_WAIT_MS = 5000;

/**
 * The composition root of `evaluator run`: wires store, state, breakers, metrics, the tick
 * runner, the scheduler, the LISTEN connection and the HTTP server, runs ticks until
 * `shutdownSignal` aborts, then drains: no new tick and no new tenant is started, the tenants in
 * progress finish (each within its budget; one that overruns is aborted and gives its tick lease
 * back), and everything is closed in reverse order. Resolves after a clean shutdown.
 */
export async function runEvaluator(config: EvaluatorConfig, deps: RunEvaluatorDeps): Promise<void> {
  const { clients, log, registry, clock } = deps;
  const releasers = new Releasers();
  const token = `${config.shardSet}#${config.shardIndex}#${hostname()}#${randomBytes(4).toString("hex")}`;
  let draining = false;
  try {
    registry.setDefaultLabels({
      namespace: config.namespace,
      shardset: config.shardSetName,
      shard: String(config.shardIndex),
    });
    collectProcessMetrics(registry);
    const metrics = createEvaluatorMetrics(registry);
    metrics.tickInterval.set(config.intervalMs / 1000);
    const offsetMs = shardOffsetMs(config.shardSet, config.shardIndex, config.intervalMs);
    log.info(
      {
        database: redactUrl(config.databaseUrl),
        pgPoolMode: config.pgPoolMode,
        directDatabase: redactUrl(config.directDatabaseUrl),
        valkey: describeValkey(config.valkey),
        intervalMs: config.intervalMs,
        minIntervalMs: config.minIntervalMs,
        offsetMs,
        tenantBudgetMs: config.tenantBudgetMs,
        concurrency: config.concurrency,
        tenantLimits: config.tenantLimits,
        token,
      },
      "evaluator_starting",
    );

    const breaker = (name: "postgres" | "valkey", isOutage: (err: unknown) => boolean) =>
      new CircuitBreaker({
        name,
        clock,
        failureThreshold: config.breaker.failureThreshold,
        cooldownMs: config.breaker.cooldownMs,
        isOutage,
        onStateChange: (state) => {
          metrics.breakerOpen.set({ dependency: name }, state === "closed" ? 0 : 1);
          log.warn({ dependency: name, state }, "circuit_breaker");
        },
      });
    const breakers = {
      postgres: breaker("postgres", isPostgresOutage),
      valkey: breaker("valkey", isValkeyOutage),
    };

    const { valkey, db } = clients;
    const onValkeyReady = () => log.info({ valkey: describeValkey(config.valkey) }, "valkey_connected");
    const onValkeyError = (err: Error) => log.warn({ err: err.message }, "valkey_error");
    valkey.on("ready", onValkeyReady);
    valkey.on("error", onValkeyError);
    if (valkey.status === "ready") onValkeyReady();
    const onDbError = (err: Error) => log.warn({ err: err.message }, "postgres_pool_error");
    db.on("error", onDbError);
    releasers.push("postgres pool", () => db.end());
    releasers.push("valkey", async () => {
      valkey.off("ready", onValkeyReady);
      await valkey.quit().catch(() => valkey.disconnect());
    });

    // Through transaction or statement pooling no statement may stay prepared on a connection: the
    // client's next one may run on another server connection (README, "Through PgBouncer").
    const queryable = config.pgPoolMode === "session" ? db : withoutStatementNames(db);
    const store = createPgStore(queryable, {
      synchronousCommit: config.pgSynchronousCommit,
      alertEvents: config.alertEvents,
    });
    const state = new ValkeyState(valkey);

    const liveness = createLiveness(Math.max(30_000, 2 * config.intervalMs));
    releasers.push("liveness", liveness.stop);
    // Liveness never asks PostgreSQL or Valkey (an outage of either must not restart every shard);
    // it fails when the event loop stalls or the tick loop stops turning.
    const tickLoop = createTickWatchdog({
      clock,
      stuckAfterMs: tickStuckAfterMs(config.intervalMs),
      draining: () => draining,
    });
    const ready = createReadiness({
      clock,
      checks: [() => store.ping(), () => valkey.ping()],
      timeoutMs: 1000,
      cacheMs: 2000,
      draining: () => draining,
    });
    const http = await startHttpServer(
      { host: config.metricsHost, port: config.metricsPort },
      {
        registry,
        healthy: () => ({
          reasons: [...(liveness.healthy() ? [] : ["event loop stalled"]), ...tickLoop.reasons()],
        }),
        ready,
      },
    );
    releasers.push("http server", () => http.close());
    log.info({ host: config.metricsHost, port: http.port }, "metrics_listening");
    deps.onListening?.(http.port);

    await waitForValkey(valkey, Math.min(VALKEY_STARTUP_WAIT_MS, config.intervalMs), deps.shutdownSignal);

    const runner = new TickRunner({
      settings: config,
      store,
      state,
      rebuild: (plan, fence, wallNow) => readRebuiltState(queryable, plan, fence, wallNow),
      clock,
      log,
      metrics,
      breakers,
      token,
      onEvaluation: tickLoop.beat,
      ...(deps.faults ? { faults: deps.faults } : {}),
    });
    const stop = new AbortController();
    const scheduler = new TickScheduler({
      clock,
      config: { intervalMs: config.intervalMs, offsetMs, minIntervalMs: config.minIntervalMs },
      runTick: async (tick) => {
        tickLoop.beat();
        const summary = await runner.runTick(tick, stop.signal);
        if (summary.durationMs > config.intervalMs) {
          log.warn(
            { slot: tick.slot, durationMs: summary.durationMs, intervalMs: config.intervalMs },
            "tick_overrun",
          );
        }
      },
      onMissed: (slots, tick) => {
        metrics.ticksMissed.inc(slots);
        log.warn({ slot: tick.slot, missed: slots }, "ticks_missed");
      },
      onTickError: (err) => log.error({ err: errorMessage(err) }, "tick_failed"),
    });

    if (config.pgPoolMode !== "session" && config.directDatabaseUrl === config.databaseUrl) {
      // LISTEN belongs to a session: made through a transaction or statement pooler it would never
      // hear a NOTIFY, and would leave its registration on a pooled server connection. Without a
      // direct URL the timer alone drives the ticks.
      log.warn({ poolMode: config.pgPoolMode, reason: "DIRECT_DATABASE_URL is not set" }, "listen_disabled");
    } else {
      const listener = new IngestListener({
        newClient: clients.newListenClient,
        onNotify: () => {
          metrics.wakeups.inc();
          scheduler.wake();
        },
        log,
        clock,
      });
      listener.start();
      releasers.push("listen connection", () => listener.close());
    }

    const onShutdown = () => {
      draining = true;
      log.info({}, "shutdown_requested");
      stop.abort();
    };
    if (deps.shutdownSignal.aborted) onShutdown();
    else deps.shutdownSignal.addEventListener("abort", onShutdown, { once: true });

    // The loop: one tick at a time until shutdown; returns after the running tick has drained.
    await scheduler.run(stop.signal);
    // Tenants abandoned after their budget may still be finishing (and releasing their leases).
    await runner.drain();
    log.info({}, "shutdown_drained");
  } finally {
    draining = true;
    await releasers.releaseAll(log);
    log.info({}, "evaluator_stopped");
  }
}

/** Resolves when the client is ready, after `ms`, or on shutdown — whichever comes first. */
function waitForValkey(valkey: Redis | Cluster, ms: number, signal: AbortSignal): Promise<void> {
  if (valkey.status === "ready" || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      valkey.off("ready", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    valkey.once("ready", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
