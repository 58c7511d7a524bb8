import type { Clock } from "../../../runtime/clock.ts";

/** Options of {@link createReadiness}. */
export interface ReadinessOptions {
  readonly clock: Clock;
  /** Each check resolves when its dependency answered (e.g. `SELECT 1`, `PING`). */
  readonly checks: readonly (() => Promise<unknown>)[];
  /** A check that has not answered within this fails (probes fail fast). */
  readonly timeoutMs: number;
  /** How long an answer is reused, so a probe storm does not become a query storm. */
  readonly cacheMs: number;
  /** While true (shutting down), not ready without asking anyone. */
  readonly draining: () => boolean;
}

/**
 * Readiness: ready when every dependency answers within the timeout. One probe in flight at a time;
 * its answer is cached for `cacheMs`.
 */
export function createReadiness(o: ReadinessOptions): () => Promise<boolean> {
  let cached: { at: number; ok: boolean } | null = null;
  let inFlight: Promise<boolean> | null = null;
  const withTimeout = (p: Promise<unknown>) =>
    new Promise<boolean>((resolve) => {
      const timer = o.clock.setTimeout(() => resolve(false), o.timeoutMs);
      p.then(
        () => resolve(true),
        () => resolve(false),
      ).finally(() => o.clock.clearTimeout(timer));
    });
  return async () => {
    if (o.draining()) return false;
    const now = o.clock.now();
    if (cached && now - cached.at < o.cacheMs) return cached.ok;
    inFlight ??= Promise.all(o.checks.map((check) => withTimeout(check())))
      .then((results) => results.every(Boolean))
      .then((ok) => {
        cached = { at: o.clock.now(), ok };
        return ok;
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  };
}

/**
 * How long the tick loop may go without starting a tick or finishing a tenant evaluation before
 * liveness fails: five intervals, at least two minutes. Longer than the wait for the first tick
 * (the shard's offset in the slot, under one interval, after at most 5 s waiting for Valkey) and
 * than a tick failing through an outage (every PostgreSQL and Valkey call has a timeout, and the
 * breakers open), so a database or Valkey outage never fails it; only a loop that stopped turning
 * does.
 */
export function tickStuckAfterMs(intervalMs: number): number {
  return Math.max(5 * intervalMs, 120_000);
}

/** Options of {@link createTickWatchdog}. */
export interface TickWatchdogOptions {
  readonly clock: Clock;
  /** See {@link tickStuckAfterMs}. */
  readonly stuckAfterMs: number;
  /** While true (shutting down), no tick is expected: never stuck. */
  readonly draining: () => boolean;
}

/**
 * The tick loop's heartbeat for liveness: `beat()` when a tick starts and whenever a tenant
 * evaluation finishes (a long tick that makes progress is alive); `reasons()` is empty while the
 * last beat (or the start) is recent, else says how long the loop has been still. It never asks
 * PostgreSQL or Valkey anything.
 */
export function createTickWatchdog(o: TickWatchdogOptions): { beat: () => void; reasons: () => string[] } {
  let last = o.clock.now();
  return {
    beat: () => {
      last = o.clock.now();
    },
    reasons: () => {
      const still = o.clock.now() - last;
      if (o.draining() || still <= o.stuckAfterMs) return [];
      return [
        `no tick started and no tenant evaluated for ${Math.round(still / 1000)}s ` +
          `(limit ${Math.round(o.stuckAfterMs / 1000)}s)`,
      ];
    },
  };
}

/**
 * Liveness: a heartbeat timer records each turn of the event loop; the process is healthy while
 * the last beat is recent. A loop blocked for `stallMs` (a runaway synchronous evaluation) fails
 * the probe so the kubelet restarts the pod.
 */
export function createLiveness(stallMs: number, beatMs = 1000): { healthy: () => boolean; stop: () => void } {
  let last = Date.now();
  const timer = setInterval(() => {
    last = Date.now();
  }, beatMs);
  timer.unref();
  return {
    healthy: () => Date.now() - last < stallMs,
    stop: () => clearInterval(timer),
  };
}
