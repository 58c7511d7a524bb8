import type { Reading } from "../rules/types.ts";

/** How far back telemetry is read. */
export interface LookbackConfig {
  readonly intervalMs: number;
  /** Readings committed late (ts behind the last read) are still read if within this. */
  readonly allowedLatenessMs: number;
}

interface Cursor {
  /** Upper bound (tick time) of the last read whose tenant evaluation completed. */
  readonly readUntil: number;
  /** Readings of that read with ts inside the lateness zone, which the next read covers again. */
  readonly recent: ReadonlySet<string>;
}

/** After this long without a completed evaluation, a tenant's read is capped (a long outage). */
const MAX_LOOKBACK_MS = 3_600_000;

function readingKey(r: Reading): string {
  return `${r.deviceId}\u0000${r.metric}\u0000${r.ts}`;
}

/**
 * Per-tenant telemetry read positions of this process (in memory: a restart or a hand-off starts
 * from the fallback lookback, which the idempotent window buffers and anomaly statistics absorb).
 *
 * Each tick reads readings with ts in (lower bound, tick time]:
 * - known tenant: lower bound = last completed read − allowed lateness, so a reading whose insert
 *   committed after the previous read although its ts was before it (ingest transactions, clock
 *   skew) is still seen; readings of that overlap that were already evaluated are dropped by
 *   {@link fresh}, so a threshold rule never counts one reading twice;
 * - unknown tenant (first tick, restart, hand-off): two intervals + lateness back, enough to cover
 *   the gap since the previous evaluator's last tick (shard offsets differ by < I/4).
 * A cursor only moves when the tenant's evaluation completed; a failed one re-reads next time.
 */
export class ReadCursors {
  readonly #cfg: LookbackConfig;
  readonly #cursors = new Map<string, Cursor>();

  constructor(cfg: LookbackConfig) {
    this.#cfg = cfg;
  }

  /** Exclusive lower bound (ms) of the tenant's read at tick time `now`. */
  since(tenantId: string, now: number): number {
    const c = this.#cursors.get(tenantId);
    const fallback = now - 2 * this.#cfg.intervalMs - this.#cfg.allowedLatenessMs;
    if (!c) return fallback;
    return Math.max(
      c.readUntil - this.#cfg.allowedLatenessMs,
      now - Math.max(MAX_LOOKBACK_MS, 2 * this.#cfg.intervalMs),
    );
  }

  /** The readings not evaluated yet by this process (drops the re-read lateness overlap). */
  fresh(tenantId: string, readings: readonly Reading[]): readonly Reading[] {
    const c = this.#cursors.get(tenantId);
    if (!c || c.recent.size === 0) return readings;
    return readings.filter((r) => r.ts > c.readUntil || !c.recent.has(readingKey(r)));
  }

  /** Records a completed evaluation of everything read up to `now`. */
  advance(tenantId: string, now: number, readings: readonly Reading[]): void {
    const recent = new Set<string>();
    const zone = now - this.#cfg.allowedLatenessMs;
    if (this.#cfg.allowedLatenessMs > 0) {
      for (const r of readings) if (r.ts > zone) recent.add(readingKey(r));
    }
    this.#cursors.set(tenantId, { readUntil: now, recent });
  }

  /** Forgets tenants no longer in the membership (bounded memory). */
  retain(tenantIds: ReadonlySet<string>): void {
    for (const id of this.#cursors.keys()) if (!tenantIds.has(id)) this.#cursors.delete(id);
  }

  get size(): number {
    return this.#cursors.size;
  }
}
