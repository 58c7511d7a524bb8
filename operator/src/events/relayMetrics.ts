import { Counter, Gauge, type Registry } from "prom-client";

/** The relay's metrics, on its own registry (every series labelled `relay` by the caller's default labels). */
export function createRelayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    published: new Counter({
      name: "alert_events_relay_published_total",
      help: "Alert events published to JetStream and acknowledged (duplicates included)",
      registers,
    }),
    duplicates: new Counter({
      name: "alert_events_relay_duplicates_total",
      help: "Publishes the stream acknowledged as duplicates (an event it already held, re-sent after a failure)",
      registers,
    }),
    resumedSkipped: new Counter({
      name: "alert_events_relay_resume_skips_total",
      help: "Times the relay, resuming, found the stream ahead of its saved cursor and moved the cursor to the stream",
      registers,
    }),
    errors: new Counter({
      name: "alert_events_relay_errors_total",
      help: "Failed relay steps, by what failed (postgres or nats); each is retried with backoff",
      labelNames: ["stage"] as const,
      registers,
    }),
    cursor: new Gauge({
      name: "alert_events_relay_cursor_event_id",
      help: "Id of the last event acknowledged by the stream",
      registers,
    }),
    backlog: new Gauge({
      name: "alert_events_relay_backlog_events",
      help: "Events after the cursor, read when the relay is idle (counted up to 100000)",
      registers,
    }),
    lastPublish: new Gauge({
      name: "alert_events_relay_last_publish_timestamp_seconds",
      help: "When an event was last acknowledged by the stream (Unix time)",
      registers,
    }),
    pruned: new Counter({
      name: "alert_events_relay_pruned_total",
      help: "Events deleted by the retention",
      registers,
    }),
  };
}

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;
