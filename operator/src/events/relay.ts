import type { Clock } from "../../../runtime/clock.ts";
import type { Logger } from "../log.ts";
import type { EventPublisher } from "./natsPublisher.ts";
import { comparePositions, type EventPosition, latest, type Outbox, positionOf, START } from "./outbox.ts";
import type { RelayMetrics } from "./relayMetrics.ts";

/** What {@link EventRelay} does, compiled from the command's flags. */
export interface RelaySettings {
  /** The cursor's key in `alert_event_cursors`. */
  readonly name: string;
  readonly batchSize: number;
  /** Longest wait between reads when no NOTIFY wakes the relay. */
  readonly pollIntervalMs: number;
  /** Retry delay after a failure: doubles from `minMs` to `maxMs`. */
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  /** Events older than this are deleted (0: never). */
  readonly retentionMs: number;
  readonly pruneIntervalMs: number;
}

/** The relay's collaborators. */
export interface RelayDeps {
  readonly outbox: Outbox;
  readonly publisher: EventPublisher;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: RelayMetrics;
}

const PRUNE_BATCH = 10_000;
const BACKLOG_CAP = 100_000;

/** Which side a failed step was on. */
type Stage = "postgres" | "nats";

class StageError extends Error {
  readonly stage: Stage;

  constructor(stage: Stage, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.stage = stage;
  }
}

async function on<T>(stage: Stage, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StageError(stage, err);
  }
}

/**
 * Publishes the alert-event outbox to JetStream, each event once, in read order:
 *
 * 1. resume: connect, ensure the stream, load the saved cursor and read the stream's newest event
 *    of the prefix; start after the later of the two (a crash between a publish and the cursor
 *    save left the stream ahead), and after what this process already published;
 * 2. read a batch after the cursor (`Outbox.readBatch`: durable events below the xmin horizon);
 * 3. publish its events one after another, each awaiting its acknowledgement, so the stream never
 *    holds an event without every one before it;
 * 4. save the cursor (after the acknowledgements, never before);
 * 5. a full batch: go on at once; else wait for a NOTIFY ({@link notify}) or the poll interval.
 *
 * Any failure (PostgreSQL, NATS) is logged and counted, and the loop starts again at 1 after a
 * backoff: an event whose acknowledgement was lost is found on the stream there and not sent again
 * (and within the stream's duplicate window, its `Nats-Msg-Id` would drop it anyway).
 */
export class EventRelay {
  readonly #s: RelaySettings;
  readonly #d: RelayDeps;
  /** Acknowledged through here (null: not resumed yet). */
  #cursor: EventPosition | null = null;
  /** Saved in PostgreSQL through here. */
  #saved: EventPosition = START;
  #resumed = false;
  #woken = false;
  #wake: (() => void) | null = null;
  #lastBeat: number;
  #healthy = false;
  #nextPruneAt = 0;

  constructor(settings: RelaySettings, deps: RelayDeps) {
    this.#s = settings;
    this.#d = deps;
    this.#lastBeat = deps.clock.now();
  }

  /** New events may be readable (a NOTIFY on `alert_events`): read now rather than at the poll. */
  notify(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /** Ready: the last round reached both PostgreSQL and the stream. */
  ready(): boolean {
    return this.#healthy;
  }

  /** When the loop last went round (epoch ms), for the liveness probe. */
  lastBeat(): number {
    return this.#lastBeat;
  }

  /** Runs until `signal` aborts; an event being published is finished and its cursor saved first. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, metrics } = this.#d;
    let delay = this.#s.backoff.minMs;
    while (!signal.aborted) {
      this.#lastBeat = this.#d.clock.now();
      try {
        if (!this.#resumed) await this.#resume();
        const full = await this.#round(signal);
        this.#healthy = true;
        delay = this.#s.backoff.minMs;
        await this.#pruneIfDue();
        if (full || signal.aborted) continue;
        await this.#updateBacklog();
        await this.#sleep(this.#s.pollIntervalMs, signal, true);
      } catch (err) {
        const stage = err instanceof StageError ? err.stage : "postgres";
        metrics.errors.inc({ stage });
        this.#healthy = false;
        this.#resumed = false;
        log.warn(
          { stage, err: err instanceof Error ? err.message : String(err), retryInMs: delay },
          "relay_failed",
        );
        // Save what was acknowledged before the failure, if PostgreSQL lets us.
        await this.#saveCursor().catch(() => undefined);
        await this.#sleep(delay, signal, false);
        delay = Math.min(delay * 2, this.#s.backoff.maxMs);
      }
    }
    await this.#saveCursor().catch(() => undefined);
  }

  async #resume(): Promise<void> {
    const { outbox, publisher, log, metrics } = this.#d;
    await on("nats", () => publisher.prepare());
    const saved = await on("postgres", () => outbox.loadCursor(this.#s.name));
    const tail = await on("nats", () => publisher.tail());
    const from = latest(saved, tail ?? START, this.#cursor ?? START);
    this.#saved = saved;
    this.#cursor = from;
    if (comparePositions(from, saved) > 0) {
      if (tail !== null && comparePositions(tail, from) === 0) metrics.resumedSkipped.inc();
      await this.#saveCursor();
    }
    metrics.cursor.set(Number(from.id));
    this.#resumed = true;
    log.info({ cursor: from, saved, streamTail: tail }, "relay_resumed");
  }

  /** One batch: read, publish, save. Returns true when the batch was full (more may be waiting). */
  async #round(signal: AbortSignal): Promise<boolean> {
    const { outbox, publisher, metrics, clock } = this.#d;
    this.#woken = false;
    const batch = await on("postgres", () => outbox.readBatch(this.#cursor!, this.#s.batchSize));
    for (const event of batch) {
      if (signal.aborted) break;
      const ack = await on("nats", () => publisher.publish(event));
      this.#cursor = positionOf(event);
      metrics.published.inc();
      if (ack.duplicate) metrics.duplicates.inc();
      metrics.cursor.set(Number(event.id));
      metrics.lastPublish.set(clock.now() / 1000);
    }
    await this.#saveCursor();
    return batch.length === this.#s.batchSize;
  }

  async #saveCursor(): Promise<void> {
    const cursor = this.#cursor;
    if (cursor === null || comparePositions(cursor, this.#saved) <= 0) return;
    await on("postgres", () => this.#d.outbox.saveCursor(this.#s.name, cursor));
    this.#saved = cursor;
  }

  async #updateBacklog(): Promise<void> {
    const n = await on("postgres", () => this.#d.outbox.backlog(this.#cursor!, BACKLOG_CAP));
    this.#d.metrics.backlog.set(n);
  }

  async #pruneIfDue(): Promise<void> {
    const { clock, outbox, log, metrics } = this.#d;
    if (this.#s.retentionMs <= 0 || clock.now() < this.#nextPruneAt) return;
    this.#nextPruneAt = clock.now() + this.#s.pruneIntervalMs;
    const before = clock.now() - this.#s.retentionMs;
    let total = 0;
    for (;;) {
      const n = await on("postgres", () => outbox.prune(before, PRUNE_BATCH));
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    metrics.pruned.inc(total);
    if (total > 0) log.info({ deleted: total, before: new Date(before).toISOString() }, "events_pruned");
  }

  /** Waits `ms`, or less when aborted, or — when `wakeable` — on a NOTIFY (also one that came before). */
  #sleep(ms: number, signal: AbortSignal, wakeable: boolean): Promise<void> {
    if (signal.aborted || (wakeable && this.#woken)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#d.clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#wake = null;
        resolve();
      };
      const timer = this.#d.clock.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      if (wakeable) this.#wake = done;
    });
  }
}
