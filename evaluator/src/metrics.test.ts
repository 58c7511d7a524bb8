import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createEvaluatorMetrics, TICK_DURATION_BUCKETS } from "./metrics.ts";

/**
 * PromQL's `histogram_quantile` over one histogram's cumulative buckets (Prometheus
 * `bucketQuantile`): the bucket holding rank q·count, linear interpolation inside it (from 0 in
 * the first bucket), and the largest finite bound when the rank falls in the `+Inf` bucket.
 */
function histogramQuantile(q: number, buckets: readonly { le: number; count: number }[]): number {
  const total = buckets.at(-1)!.count;
  const rank = q * total;
  const i = buckets.findIndex((b) => b.count >= rank);
  const upper = buckets[i]!;
  if (upper.le === Number.POSITIVE_INFINITY) return buckets[buckets.length - 2]!.le;
  const lower = i === 0 ? { le: 0, count: 0 } : buckets[i - 1]!;
  return lower.le + ((upper.le - lower.le) * (rank - lower.count)) / (upper.count - lower.count);
}

/** p95 of `evaluator_tick_duration_seconds` after observing `durations` on a fresh registry. */
async function p95Of(durations: readonly number[]): Promise<number> {
  const metrics = createEvaluatorMetrics(new Registry());
  for (const d of durations) metrics.tickDuration.observe(d);
  const { values } = await metrics.tickDuration.get();
  const buckets = values
    .filter((v) => v.metricName === "evaluator_tick_duration_seconds_bucket")
    .map((v) => ({
      le: v.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(v.labels.le),
      count: v.value,
    }));
  return histogramQuantile(0.95, buckets);
}

/** Tick intervals an EvaluatorShardSet allows (5–3600 s), plus the test intervals and the default. */
const INTERVALS = [1, 2, 5, 10, 15, 30, 60, 90, 120, 300, 600, 900, 1800, 3600];

describe("evaluator_tick_duration_seconds buckets", () => {
  it("are increasing and reach four times the longest allowed interval", () => {
    expect([...TICK_DURATION_BUCKETS].sort((a, b) => a - b)).toEqual(TICK_DURATION_BUCKETS);
    expect(new Set(TICK_DURATION_BUCKETS).size).toBe(TICK_DURATION_BUCKETS.length);
    for (const interval of INTERVALS)
      expect(TICK_DURATION_BUCKETS.at(-1)!).toBeGreaterThanOrEqual(4 * interval);
  });

  it("are at most 1.5× apart between 10 s and 1 h (a quantile is off by less than a bucket)", () => {
    const mid = TICK_DURATION_BUCKETS.filter((b) => b >= 10 && b <= 3600);
    for (let i = 1; i < mid.length; i++) expect(mid[i]! / mid[i - 1]!).toBeLessThanOrEqual(1.5);
  });

  it.each(INTERVALS)(
    "measure a p95 above the interval (I = %i s): overrunning ticks read above I",
    async (interval) => {
      // Ticks that take 1.5 and 3 intervals (a shard far behind) read as such, not capped near I.
      const over = await p95Of(Array.from({ length: 100 }, () => 1.5 * interval));
      expect(over).toBeGreaterThan(interval);
      // Interpolation spreads a bucket's ticks over its width: at most the bound above 1.5·I.
      expect(over).toBeLessThanOrEqual(TICK_DURATION_BUCKETS.find((b) => b >= 1.5 * interval)!);
      const far = await p95Of(Array.from({ length: 100 }, () => 3 * interval));
      expect(far).toBeGreaterThan(2 * interval);
      // And healthy ticks (a fifth of the interval) read below it.
      expect(await p95Of(Array.from({ length: 100 }, () => interval / 5))).toBeLessThan(interval);
    },
  );

  it("cap a p95 in the +Inf bucket at the largest finite bound", async () => {
    expect(await p95Of([20_000, 20_000])).toBe(TICK_DURATION_BUCKETS.at(-1));
  });
});

describe("evaluator_queue_depth_held", () => {
  it("is registered next to the instantaneous gauge and starts at 0", async () => {
    const registry = new Registry();
    const metrics = createEvaluatorMetrics(registry);
    expect((await metrics.queueDepthHeld.get()).values).toEqual([{ value: 0, labels: {} }]);
    metrics.queueDepthHeld.set(7);
    expect(await registry.metrics()).toMatch(
      /^# TYPE evaluator_queue_depth_held gauge\nevaluator_queue_depth_held 7$/m,
    );
    expect(await registry.metrics()).toMatch(/^evaluator_queue_depth 0$/m);
  });
});

describe("evaluator_tick_interval_seconds", () => {
  it("exports the interval the alerting rules compare the tick latency with", async () => {
    const registry = new Registry();
    const metrics = createEvaluatorMetrics(registry);
    metrics.tickInterval.set(60);
    expect(await registry.metrics()).toMatch(
      /^# TYPE evaluator_tick_interval_seconds gauge\nevaluator_tick_interval_seconds 60$/m,
    );
  });
});
