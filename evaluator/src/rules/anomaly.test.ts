import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AnomalyStats, anomalyCondition, EMPTY_STATS, isAnomalous, learnSample } from "./anomaly.ts";
import { anomalyRule, T0 } from "./fixtures.ts";
import type { Reading } from "./types.ts";

const at = (s: number, value: number): Reading => ({
  deviceId: "d1",
  metric: "temp",
  ts: T0 + s * 1000,
  value,
});

/** Statistics after learning 10, 12, 10, 12, ... (n samples, 1 s apart): mean 11, stddev 1. */
function learned(n: number): AnomalyStats {
  let s = EMPTY_STATS;
  for (let i = 0; i < n; i++) s = learnSample(s, i % 2 === 0 ? 10 : 12, T0 + i * 1000, 100);
  return s;
}

describe("learnSample", () => {
  it("is exactly the running mean and population variance up to span samples (Welford)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }),
        (xs) => {
          let s = EMPTY_STATS;
          xs.forEach((x, i) => {
            s = learnSample(s, x, i, 100);
          });
          const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
          const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
          expect(s.n).toBe(xs.length);
          expect(s.mean).toBeCloseTo(mean, 6);
          expect(Math.abs(s.variance - variance)).toBeLessThanOrEqual(1e-6 * Math.max(1, variance));
          expect(s.lastTs).toBe(xs.length - 1);
        },
      ),
    );
  });

  it("follows a level shift once past span (exponential weighting)", () => {
    let s = EMPTY_STATS;
    for (let i = 0; i < 20; i++) s = learnSample(s, 0, i, 10);
    for (let i = 20; i < 220; i++) s = learnSample(s, 100, i, 10);
    expect(s.mean).toBeGreaterThan(99.99);
    expect(s.variance).toBeLessThan(0.01);
  });
});

describe("isAnomalous (k = 3 around mean 11, stddev 1)", () => {
  const stats: AnomalyStats = { n: 10, mean: 11, variance: 1, lastTs: T0 };
  const params = anomalyRule().params;

  it.each<[string, number, Partial<typeof params>, boolean]>([
    ["3.5 σ above", 14.5, {}, true],
    ["2.9 σ above", 13.9, {}, false],
    ["exactly 3 σ is not beyond", 14, {}, false],
    ["3.5 σ below", 7.5, {}, true],
    ["above only: a low value is normal", 7.5, { direction: "above" }, false],
    ["below only: a high value is normal", 14.5, { direction: "below" }, false],
    ["below only: a low value", 7.5, { direction: "below" }, true],
    ["k = 4", 14.5, { k: 4 }, false],
    ["minStddev floor widens the band", 14.5, { minStddev: 2 }, false],
    ["not before minSamples", 100, { minSamples: 11 }, false],
  ])("%s", (_, x, override, expected) => {
    expect(isAnomalous(stats, x, { ...params, ...override })).toBe(expected);
  });

  it("a perfectly constant history flags any change (unless minStddev is set)", () => {
    let flat = EMPTY_STATS;
    for (let i = 0; i < 10; i++) flat = learnSample(flat, 5, i, 100);
    expect(isAnomalous(flat, 5, params)).toBe(false);
    expect(isAnomalous(flat, 5.01, params)).toBe(true);
    expect(isAnomalous(flat, 5.01, { ...params, minStddev: 0.1 })).toBe(false);
  });
});

describe("anomalyCondition", () => {
  const rule = anomalyRule();

  it("fires on a spike in the middle of the batch even if the latest reading is normal", () => {
    const out = anomalyCondition(rule, learned(10), [at(20, 11), at(21, 30), at(22, 11)]);
    expect(out.condition).toEqual({ status: true, value: 30, observedAt: T0 + 21_000 });
    expect(out.stats.n).toBe(13);
    expect(out.stats.lastTs).toBe(T0 + 22_000);
  });

  it("is false with normal readings, and shows the latest", () => {
    const out = anomalyCondition(rule, learned(10), [at(20, 10.5), at(21, 11.5)]);
    expect(out.condition).toEqual({ status: false, value: 11.5, observedAt: T0 + 21_000 });
  });

  it("is false while learning (fewer than minSamples), from empty statistics", () => {
    const readings = Array.from({ length: 10 }, (_, i) => at(i, i === 9 ? 1000 : 10));
    const out = anomalyCondition(rule, null, readings);
    expect(out.condition.status).toBe(false);
    expect(out.stats.n).toBe(10);
  });

  it("skips readings already learned (a retried tick does not count them twice)", () => {
    const stats = learned(10);
    const out = anomalyCondition(rule, stats, [at(5, 500), at(9, 500)]);
    expect(out.condition.status).toBeNull();
    expect(out.stats).toEqual(stats);
  });

  it("is unknown without new readings", () => {
    const stats = learned(10);
    expect(anomalyCondition(rule, stats, [])).toEqual({
      condition: { status: null, value: null, observedAt: null },
      stats,
    });
  });
});
