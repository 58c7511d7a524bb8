import pg from "pg";
import { Registry } from "prom-client";
import { IngestListener } from "../../../evaluator/src/tick/ingestListener.ts";
import { type Clock, systemClock } from "../../../runtime/clock.ts";
import { collectProcessMetrics } from "../../../runtime/defaultMetrics.ts";
import { startHttpServer } from "../../../runtime/httpServer.ts";
import { createLogger, type Logger } from "../log.ts";
import { createNatsPublisher } from "./natsPublisher.ts";
import { createPgOutbox } from "./outbox.ts";
import { EventRelay } from "./relay.ts";
import type { RelayConfig } from "./relayConfig.ts";
import { createRelayMetrics } from "./relayMetrics.ts";

/** The channel the evaluator's commit NOTIFYs when it appended alert events. */
export const ALERT_EVENTS_CHANNEL = "alert_events";

/** What {@link runRelay} takes besides its configuration. */
export interface RunRelayDeps {
  /** Aborts on the first SIGTERM/SIGINT: the relay finishes the event in flight and exits. */
  readonly shutdownSignal: AbortSignal;
  readonly log?: Logger;
  readonly clock?: Clock;
}

function host(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "?";
  }
}

/**
 * Runs `evaluator-operator events relay` until the shutdown signal: the PostgreSQL pool, a LISTEN
 * connection on {@link ALERT_EVENTS_CHANNEL} (reconnecting with backoff), the NATS connection and
 * the HTTP server (`/metrics`, `/healthz`, `/readyz`) around one {@link EventRelay}.
 */
export async function runRelay(config: RelayConfig, deps: RunRelayDeps): Promise<void> {
  const clock = deps.clock ?? systemClock;
  const log = (deps.log ?? createLogger(config.logLevel)).child({ relay: config.relay.name });
  const registry = new Registry();
  registry.setDefaultLabels({ relay: config.relay.name });
  collectProcessMetrics(registry);
  const metrics = createRelayMetrics(registry);
  const pgOptions = {
    connectionTimeoutMillis: 5000,
    application_name: `alert-event-relay ${config.relay.name}`,
  };
  // No statement_timeout (a startup parameter PgBouncer refuses): the client's query timeout bounds
  // every call. Each read is one explicit transaction, so transaction pooling carries it.
  const pool = new pg.Pool({
    ...pgOptions,
    ...config.database,
    max: 3,
    query_timeout: 35_000,
  });
  pool.on("error", (err) => log.warn({ err: err.message }, "postgres_idle_client_error"));
  const publisher = createNatsPublisher(config.nats, log);
  const relay = new EventRelay(config.relay, {
    outbox: createPgOutbox(pool),
    publisher,
    clock,
    log,
    metrics,
  });
  const listener = new IngestListener({
    newClient: () => {
      const client = new pg.Client({
        ...pgOptions,
        ...config.directDatabase,
        query_timeout: 10_000,
      });
      client.on("error", () => {
        // IngestListener attaches its own handler right after; this one closes the gap.
      });
      return client;
    },
    channel: ALERT_EVENTS_CHANNEL,
    onNotify: () => relay.notify(),
    log,
    clock,
  });
  // The loop goes round at least every poll interval, or backoff; a step may wait for a timeout.
  const stallMs =
    config.relay.pollIntervalMs + config.relay.backoff.maxMs + config.nats.publishTimeoutMs + 60_000;
  const server = await startHttpServer(config.httpAddress, {
    registry,
    healthy: () =>
      clock.now() - relay.lastBeat() < stallMs || { reasons: [`relay loop stalled for over ${stallMs} ms`] },
    ready: () => relay.ready() || { reasons: ["PostgreSQL or NATS unreachable (see the relay_failed logs)"] },
  });
  log.info(
    {
      port: server.port,
      nats: host(config.nats.url),
      stream: config.nats.stream,
      subjects: `${config.nats.subjectPrefix}.>`,
      batchSize: config.relay.batchSize,
    },
    "relay_started",
  );
  listener.start();
  try {
    await relay.run(deps.shutdownSignal);
  } finally {
    await listener.close();
    await publisher.close();
    await server.close();
    await pool.end();
    log.info({}, "relay_stopped");
  }
}
