/**
 * A keyed, deduplicating work queue in the manner of client-go's workqueue:
 * - a key added many times before it is processed is processed once;
 * - a key is never processed by two workers at once (every `await` is an interleaving point in
 *   Node, so two reconciles of one object would race); a key added while it is being processed is
 *   processed again right after;
 * - failures retry with per-key exponential backoff; success forgets the backoff;
 * - timed requeues (`addAfter`) for waits that are not failures.
 */

import { type Clock, systemClock } from "../../../runtime/clock.ts";
import type { HandlerResult, KeyHandler } from "../api/reconcileResult.ts";

export type { HandlerResult, KeyHandler };

export interface QueueMetrics {
  depth(n: number): void;
  added(): void;
  retried(): void;
}

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  clock?: Clock;
  metrics?: QueueMetrics;
}

export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  /** Keys being processed, with when their handler started (the clock's ms). */
  readonly #processing = new Map<string, number>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { handle: unknown; due: number }>();
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #clock: Clock;
  readonly #metrics: QueueMetrics | undefined;
  #waiters: (() => void)[] = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 5 * 60_000;
    this.#clock = options.clock ?? systemClock;
    this.#metrics = options.metrics;
  }

  /** Number of keys waiting (not counting those in flight or delayed). */
  get length(): number {
    return this.#queue.length;
  }

  /**
   * The key whose handler has been running longest and when it started (the clock's ms), or
   * undefined when none runs: the liveness probe's view of a reconcile that never returns.
   */
  oldestInFlight(): { key: string; since: number } | undefined {
    let oldest: { key: string; since: number } | undefined;
    for (const [key, since] of this.#processing) {
      if (!oldest || since < oldest.since) oldest = { key, since };
    }
    return oldest;
  }

  /** Enqueues `key` now (deduplicated; cancels nothing already delayed). */
  add(key: string): void {
    if (this.#shuttingDown) return;
    if (this.#processing.has(key)) {
      // Processed again once the running reconcile returns, never concurrently.
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#metrics?.added();
    this.#metrics?.depth(this.#queue.length);
    this.#wake();
  }

  /** Enqueues `key` after `ms` (an earlier pending delay for the key is kept if it fires sooner). */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const due = this.#clock.now() + ms;
    const pending = this.#timers.get(key);
    if (pending && pending.due <= due) return;
    if (pending) this.#clock.clearTimeout(pending.handle);
    const handle = this.#clock.setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    (handle as { unref?(): unknown }).unref?.();
    this.#timers.set(key, { handle, due });
  }

  /** Enqueues `key` after its next backoff delay: base · 2^(failures), capped. */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** failures);
    this.#metrics?.retried();
    // A failure overrides a longer timed requeue: retry on the backoff schedule.
    const pending = this.#timers.get(key);
    if (pending !== undefined) {
      this.#clock.clearTimeout(pending.handle);
      this.#timers.delete(key);
    }
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of `key` (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many consecutive failures `key` has had. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /**
   * Runs `workers` loops that take keys and call `handler`. Resolves when `shutDown` was called and the
   * in-flight handlers finished. A handler that throws is retried with backoff; `onError` observes it.
   */
  async run(
    workers: number,
    handler: KeyHandler,
    onError: (key: string, err: unknown) => void,
  ): Promise<void> {
    const loop = async (): Promise<void> => {
      for (;;) {
        const key = await this.#next();
        if (key === undefined) return;
        try {
          const result = await handler(key);
          this.forget(key);
          if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
        } catch (err) {
          onError(key, err);
          this.addRateLimited(key);
        } finally {
          this.#processing.delete(key);
          if (this.#dirty.delete(key)) this.add(key);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, loop));
  }

  /** Stops handing out keys; running handlers finish; pending timers are cancelled. */
  shutDown(): void {
    this.#shuttingDown = true;
    for (const { handle } of this.#timers.values()) this.#clock.clearTimeout(handle);
    this.#timers.clear();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  async #next(): Promise<string | undefined> {
    for (;;) {
      if (this.#shuttingDown) return undefined;
      const key = this.#queue.shift();
      if (key !== undefined) {
        this.#queued.delete(key);
        this.#processing.set(key, this.#clock.now());
        this.#metrics?.depth(this.#queue.length);
        return key;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #wake(): void {
    const w = this.#waiters.shift();
    w?.();
  }
}
