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
