import type { Condition } from "./condition.ts";
import { UNKNOWN } from "./condition.ts";
import type { AnomalyParams, AnomalyRule, Reading } from "./types.ts";

/**
 * Rolling statistics of one (rule, device), kept in Valkey between ticks.
 * `variance` is the population variance; `lastTs` is the newest reading already learned, so a
 * reading fed twice (a retried tick) is not counted twice.
 */
export interface AnomalyStats {
  readonly n: number;
  readonly mean: number;
  readonly variance: number;
  readonly lastTs: number | null;
}

/** Statistics before the first sample. */
export const EMPTY_STATS: AnomalyStats = { n: 0, mean: 0, variance: 0, lastTs: null };

/**
 * Learns one sample. With weight α = 1 / min(n, span) this is exactly Welford's running mean and
 * (population) variance for the first `span` samples, and an exponentially weighted mean/variance
 * (α = 1/span) after that — "rolling" without keeping the samples:
 *   δ = x − mean;  mean += α·δ;  variance = (1 − α)·(variance + α·δ²)
 */
export function learnSample(stats: AnomalyStats, x: number, ts: number, span: number): AnomalyStats {
  const n = stats.n + 1;
  const alpha = 1 / Math.min(n, span);
  const delta = x - stats.mean;
  return {
    n,
    mean: stats.mean + alpha * delta,
    variance: (1 - alpha) * (stats.variance + alpha * delta * delta),
    lastTs: stats.lastTs === null ? ts : Math.max(stats.lastTs, ts),
  };
}

/** Whether `x` is anomalous against statistics learned *before* it (so it cannot mask itself). */
export function isAnomalous(stats: AnomalyStats, x: number, params: AnomalyParams): boolean {
  if (stats.n < params.minSamples) return false;
  const sigma = Math.max(Math.sqrt(stats.variance), params.minStddev);
  const deviation = x - stats.mean;
  const limit = params.k * sigma;
  switch (params.direction) {
    case "above":
      return deviation > limit;
    case "below":
      return -deviation > limit;
    case "both":
      return Math.abs(deviation) > limit;
  }
}

/** Result of an anomaly evaluation: the verdict and the statistics to store. */
export interface AnomalyOutcome {
  readonly condition: Condition;
  readonly stats: AnomalyStats;
}

/**
 * Anomaly rule: each new reading (oldest first) is judged against the statistics learned so far
 * and then learned itself — anomalous readings too, so a lasting level shift becomes the new normal
 * instead of firing forever. True when any of this tick's readings was anomalous (a spike between
 * two ticks is what this rule exists to catch); `value` is the last anomalous value, else the latest
 * value. Readings at or before `stats.lastTs` were learned by an earlier tick and are skipped. No
 * new reading → unknown, statistics unchanged.
 */
export function anomalyCondition(
  rule: AnomalyRule,
  stats: AnomalyStats | null,
  readings: readonly Reading[],
): AnomalyOutcome {
  let current = stats ?? EMPTY_STATS;
  let hit: Reading | null = null;
  let latest: Reading | null = null;
  for (const r of readings) {
    if (current.lastTs !== null && r.ts <= current.lastTs) continue;
    if (isAnomalous(current, r.value, rule.params)) hit = r;
    current = learnSample(current, r.value, r.ts, rule.params.span);
    latest = r;
  }
  if (latest === null) return { condition: UNKNOWN, stats: current };
  const shown = hit ?? latest;
  return { condition: { status: hit !== null, value: shown.value, observedAt: shown.ts }, stats: current };
}
