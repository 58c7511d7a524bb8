import type pg from "pg";
import type { Clock } from "../../../runtime/clock.ts";
import type { Logger } from "../log.ts";

/** The ingest side runs `NOTIFY telemetry_ingest` after each flush (the channel name is the contract). */
const INGEST_CHANNEL = "telemetry_ingest";

/** Options of {@link IngestListener}. */
export interface IngestListenerOptions {
  /** A new, unconnected client; called again for every reconnect. */
  readonly newClient: () => pg.Client;
  /** The channel to LISTEN on (default {@link INGEST_CHANNEL}; the alert-event relay listens on `alert_events`). */
  readonly channel?: string;
  readonly onNotify: () => void;
  readonly log: Logger;
  readonly clock: Clock;
  /** Reconnect delay: doubles from `minMs` to `maxMs` while connecting fails. */
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
}

/**
 * A dedicated PostgreSQL connection that LISTENs on {@link INGEST_CHANNEL} and calls `onNotify`
 * for each notification (the scheduler coalesces them). LISTEN is per session, so it cannot share
 * the pool; when the connection drops it reconnects with backoff and LISTENs again, then wakes the
 * scheduler once, since notifications sent while it was away are lost. Losing it only loses
 * early wake-ups: the timer keeps ticking.
 */
export class IngestListener {
  readonly #o: IngestListenerOptions;
  #client: pg.Client | null = null;
  #timer: unknown = null;
  #delayMs: number;
  #closed = false;
  #everConnected = false;

  constructor(options: IngestListenerOptions) {
    this.#o = options;
    this.#delayMs = options.backoff?.minMs ?? 500;
  }

  /** Starts connecting in the background (never rejects). */
  start(): void {
    void this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = this.#o.newClient();
    this.#client = client;
    let lost = false;
    const onLost = (err?: unknown) => {
      if (lost) return;
      lost = true;
      if (this.#client === client) this.#client = null;
      if (!this.#closed) {
        this.#o.log.warn({ err: err instanceof Error ? err.message : undefined }, "listen_connection_lost");
        client.end().catch(() => undefined);
        this.#scheduleReconnect();
      }
    };
    // Without an 'error' listener a dropped connection would crash the process.
    client.on("error", onLost);
    client.on("end", () => onLost());
    const channel = this.#o.channel ?? INGEST_CHANNEL;
    client.on("notification", (msg) => {
      if (msg.channel === channel) this.#o.onNotify();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${channel}`);
      if (lost || this.#closed) return;
      this.#delayMs = this.#o.backoff?.minMs ?? 500;
      this.#o.log.info({ channel }, "listen_started");
      // Notifications sent while disconnected are gone; one wake-up covers them.
      if (this.#everConnected) this.#o.onNotify();
      this.#everConnected = true;
    } catch (err) {
      onLost(err);
    }
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#timer !== null) return;
    const delay = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, this.#o.backoff?.maxMs ?? 10_000);
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = null;
      void this.#connect();
    }, delay);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
    const client = this.#client;
    this.#client = null;
    if (client) await client.end().catch(() => undefined);
  }
}
