import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AnomalyStats, EMPTY_STATS, learnSample } from "../rules/anomaly.ts";
import { anomalyRule, patternRule, T0, thresholdRule, windowRule } from "../rules/fixtures.ts";
import { planTenant, type TenantPlan } from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import type { Reading, Rule } from "../rules/types.ts";
import type { Queryable } from "../store/pgStore.ts";
import {
  anomalyReplayCount,
  buildRebuildStatement,
  MAX_ANOMALY_REPLAY,
  type RebuildRow,
  readRebuiltState,
  rebuildSnapshot,
} from "./rebuild.ts";
import { advanceTick, emptySnapshot } from "./tenantSnapshot.ts";
import { encodeBuffer } from "./valueEncoding.ts";

const MIN = 60_000;
const fence = { seq: 7, judged: "1234:1234:" };

const rules: Rule[] = [
  thresholdRule({ id: "t", cooldown_seconds: 300 }),
  windowRule({ id: "w", window_seconds: 300, min_count: 2, params: { maxReadings: 3 } }),
  anomalyRule({ id: "n", metric: "hum", params: { span: 2, minSamples: 2 } }),
  patternRule({ id: "r", min_count: 2, window_seconds: 600, params: { kind: "rising" } }),
  patternRule({ id: "a", window_seconds: 120, params: { kind: "absent" } }),
];

function planAt(now: number, readings: Reading[] = [], ofRules: readonly Rule[] = rules): TenantPlan {
  return planTenant({
    tenantId: "t1",
    rules: ofRules,
    deviceIds: ["d1"],
    readingsByDeviceMetric: groupReadings(readings),
    now,
  });
}

const plan = planAt(T0);
const [T, W, N, R, A] = plan.pairs.map((p) => p.key) as [string, string, string, string, string];

/** A row of pair `pair` (1-based) with nothing in it; `o` sets columns. */
function row(pair: number, o: Partial<RebuildRow> = {}): RebuildRow {
  return {
    pair,
    readings: null,
    seen_fallback_ms: null,
    alert_state: null,
    alert_severity: null,
    alert_first_seen_ms: null,
    ...o,
  };
}

/** What the statement sends: `[ts, value]`, newest first. */
const newestFirst = (entries: readonly { ts: number; value: number }[]) =>
  [...entries].sort((a, b) => b.ts - a.ts).map((e) => [e.ts, e.value] as const);

describe("buildRebuildStatement", () => {
  it("is null for a plan without pairs, which reads nothing", async () => {
    const empty = planAt(T0, [], []);
    expect(buildRebuildStatement(empty, fence)).toBeNull();
    const db: Queryable = {
      query: () => Promise.reject(new Error("no query expected")),
    };
    const snapshot = await readRebuiltState(db, empty, fence, T0);
    expect(snapshot).toEqual({ ...emptySnapshot(), seq: 7, at: null });
  });

  it("sends the pairs as parallel arrays in plan order, with how many readings each needs", () => {
    const statement = buildRebuildStatement(plan, fence)!;
    expect(statement.name).toBe("eo_rebuild_state");
    expect(statement.text).toContain("FROM telemetry t");
    expect(statement.values).toEqual([
      "t1",
      "1234:1234:",
      T0,
      ["t", "w", "n", "r", "a"],
      ["d1", "d1", "d1", "d1", "d1"],
      ["temp", "temp", "hum", "temp", "temp"],
      [null, 300_000, null, 600_000, null],
      // threshold nothing; window maxLen; anomaly R = 20·span; rising K + 1; absent the newest one.
      [0, 3, 40, 3, 1],
      [false, false, false, false, true],
    ]);
  });
});

describe("anomalyReplayCount", () => {
  it("is 20·span, at least minSamples, at most the cap", () => {
    expect(anomalyReplayCount({ span: 100, minSamples: 10 })).toBe(2000);
    expect(anomalyReplayCount({ span: 2, minSamples: 50 })).toBe(50);
    expect(anomalyReplayCount({ span: 100_000, minSamples: 10 })).toBe(MAX_ANOMALY_REPLAY);
  });
});

describe("rebuildSnapshot", () => {
  it("covers every pair of the plan at the fence's seq, and ignores rows outside the plan", () => {
    const snapshot = rebuildSnapshot(plan, [row(0), row(6, { alert_state: "open" })], fence, T0);
    expect([snapshot.seq, snapshot.at]).toEqual([7, null]);
    expect(rebuildSnapshot(plan, [], { ...fence, evalMs: T0 - MIN }, T0).at).toBe(T0 - MIN);
    expect([...snapshot.covered]).toEqual([T, W, N, R, A]);
    expect(snapshot.buffers.size + snapshot.alerts.size + snapshot.anomalies.size).toBe(0);
    expect(snapshot.seen.size + snapshot.cooldownUntil.size).toBe(0);
  });

  it("keeps the newest maxLen judged readings inside the window, oldest first, future ones included", () => {
    const entries = [
      { ts: T0 - 300_000, value: 1 }, // at the cutoff: outside the left-open window
      { ts: T0 - 240_000, value: 2 },
      { ts: T0 - 120_000, value: 3 },
      { ts: T0 - 1000, value: 4 },
      { ts: T0 + 5000, value: 5 }, // device clock ahead: counts, as in appendToWindow
    ];
    const rows = [row(2, { readings: newestFirst(entries) }), row(4, { readings: newestFirst(entries) })];
    const snapshot = rebuildSnapshot(plan, rows, fence, T0);
    const newest = entries.slice(2);
    expect(snapshot.buffers.get(W)).toEqual({ entries: newest, stored: encodeBuffer(newest) });
    // The rising pattern keeps K + 1 = 3 within its 600 s window.
    expect(snapshot.buffers.get(R)?.entries).toEqual(newest);

    // Fewer than maxLen, none in the window → no buffer.
    const old = rebuildSnapshot(plan, [row(2, { readings: [[T0 - 400_000, 9]] })], fence, T0);
    expect(old.buffers.has(W)).toBe(false);
    // Rows in any order, non-finite members skipped.
    const shuffled = rebuildSnapshot(
      plan,
      [
        row(2, {
          readings: [
            [T0 - 2000, 1],
            [T0 - 1000, Number.NaN],
            [T0 - 3000, 2],
          ],
        }),
      ],
      fence,
      T0,
    );
    expect(shuffled.buffers.get(W)?.entries).toEqual([
      { ts: T0 - 3000, value: 2 },
      { ts: T0 - 2000, value: 1 },
    ]);
  });

  it("leaves a window buffer equal to the uninterrupted one once this tick's readings are appended", () => {
    const tick = fc.array(
      fc.record({
        offset: fc.integer({ min: -3 * MIN, max: 2 * MIN }),
        value: fc.integer({ min: 0, max: 9 }),
      }),
      { maxLength: 4 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(tick, { minLength: 1, maxLength: 12 }),
        (windowMinutes, maxReadings, ticks) => {
          const rule = windowRule({
            id: "w",
            window_seconds: windowMinutes * 60,
            min_count: 1,
            params: { maxReadings },
          });
          const used = new Set<number>();
          // Tick k at T0 + k·MIN; readings around it (late ones and ahead-of-clock ones), one per ts,
          // as the telemetry primary key guarantees.
          const readingsOf = ticks.map((list, k) =>
            list
              .map((r) => ({ deviceId: "d1", metric: "temp", ts: T0 + k * MIN + r.offset, value: r.value }))
              .filter((r) => !used.has(r.ts) && used.add(r.ts)),
          );
          const last = ticks.length - 1;
          const uninterrupted = emptySnapshot();
          for (let k = 0; k < last; k++)
            advanceTick(uninterrupted, planAt(T0 + k * MIN, readingsOf[k], [rule]), 0);

          // PostgreSQL: every reading judged before the last tick, as the statement selects them.
          const lastPlan = planAt(T0 + last * MIN, readingsOf[last], [rule]);
          const cutoff = lastPlan.now - rule.windowSeconds * 1000;
          const judged = readingsOf
            .slice(0, last)
            .flat()
            .filter((r) => r.ts > cutoff)
            .sort((a, b) => b.ts - a.ts)
            .slice(0, maxReadings);
          const rebuilt = rebuildSnapshot(lastPlan, [row(1, { readings: newestFirst(judged) })], fence, 0);

          const a = advanceTick(uninterrupted, lastPlan, 0).state.pairs.get(lastPlan.pairs[0]!.key);
          const b = advanceTick(rebuilt, lastPlan, 0).state.pairs.get(lastPlan.pairs[0]!.key);
          expect(b?.buffer).toEqual(a?.buffer);
          expect(rebuilt.buffers.get(lastPlan.pairs[0]!.key)?.stored).toBe(
            uninterrupted.buffers.get(lastPlan.pairs[0]!.key)?.stored,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("replays the newest R judged readings: the uninterrupted statistics up to R, within the bound after", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.array(fc.integer({ min: -50, max: 150 }), { minLength: 1, maxLength: 300 }),
        (span, values) => {
          const rule = anomalyRule({ id: "n", metric: "hum", params: { span, minSamples: 2 } });
          const p = planAt(T0, [], [rule]);
          let uninterrupted: AnomalyStats = EMPTY_STATS;
          values.forEach((v, i) => {
            uninterrupted = learnSample(uninterrupted, v, T0 - (values.length - i) * 1000, span);
          });
          const r = anomalyReplayCount(rule.params);
          const readings = values
            .map((v, i) => [T0 - (values.length - i) * 1000, v] as const)
            .reverse()
            .slice(0, r);
          const rebuilt = rebuildSnapshot(p, [row(1, { readings })], fence, T0).anomalies.get(
            p.pairs[0]!.key,
          )!;
          if (values.length <= r) {
            expect(rebuilt).toEqual(uninterrupted);
            return;
          }
          const range = Math.max(...values) - Math.min(...values);
          const w = (1 - 1 / span) ** (r - span);
          expect(rebuilt.n).toBe(r);
          expect(rebuilt.lastTs).toBe(uninterrupted.lastTs);
          expect(Math.abs(rebuilt.mean - uninterrupted.mean)).toBeLessThanOrEqual(w * range + 1e-9);
          expect(Math.abs(rebuilt.variance - uninterrupted.variance)).toBeLessThanOrEqual(
            39 * w * range * range + 1e-9,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("learns nothing without readings and skips a repeated timestamp", () => {
    expect(rebuildSnapshot(plan, [row(3)], fence, T0).anomalies.has(N)).toBe(false);
    const stats = rebuildSnapshot(
      plan,
      [
        row(3, {
          // Two readings truncated onto one millisecond: only the first learned counts.
          readings: [
            [T0 - 1000, 99],
            [T0 - 1000, 12],
            [T0 - 2000, 10],
          ],
        }),
      ],
      fence,
      T0,
    ).anomalies.get(N);
    const expected = learnSample(learnSample(EMPTY_STATS, 10, T0 - 2000, 2), 12, T0 - 1000, 2);
    expect(stats).toEqual(expected);
  });

  it("takes last-seen from the newest judged reading, else the pair's earliest possible first sight", () => {
    const fromReading = rebuildSnapshot(
      plan,
      [row(5, { readings: [[T0 - 90 * MIN, 1]], seen_fallback_ms: T0 - MIN })],
      fence,
      T0,
    );
    expect(fromReading.seen.get(A)).toBe(String(T0 - 90 * MIN));
    const fallback = rebuildSnapshot(plan, [row(5, { seen_fallback_ms: T0 - MIN })], fence, T0);
    expect(fallback.seen.get(A)).toBe(String(T0 - MIN));
    // Nothing known: absent, and advanceTick seeds it with this tick's time.
    const unknown = rebuildSnapshot(plan, [row(5)], fence, T0);
    expect(unknown.seen.has(A)).toBe(false);
    expect(advanceTick(unknown, plan, T0).state.pairs.get(A)?.lastSeen).toBe(T0);
  });

  it("rebuilds firing lifecycles from open alerts and cooldowns from the newest alert", () => {
    const snapshot = rebuildSnapshot(
      plan,
      [
        // Threshold (cooldown 300 s): resolved, fired 200 s before the wall clock → 100 s left.
        row(1, { alert_state: "resolved", alert_severity: "warning", alert_first_seen_ms: T0 - 200_000 }),
        // Window (no cooldown): open and escalated.
        row(2, { alert_state: "open", alert_severity: "critical", alert_first_seen_ms: T0 - 10 * MIN }),
        // Unknown severity: not a lifecycle state this release can hold.
        row(4, { alert_state: "open", alert_severity: "fatal", alert_first_seen_ms: T0 - MIN }),
      ],
      fence,
      T0 + 1000,
    );
    expect(snapshot.alerts).toEqual(
      new Map([[W, { active: true, since: T0 - 10 * MIN, severity: "critical" }]]),
    );
    expect(snapshot.cooldownUntil).toEqual(new Map([[T, T0 + 100_000]]));
    // A cooldown that ended by the wall clock is not kept.
    const later = rebuildSnapshot(
      plan,
      [row(1, { alert_state: "open", alert_severity: "warning", alert_first_seen_ms: T0 - 300_000 })],
      fence,
      T0,
    );
    expect(later.cooldownUntil.size).toBe(0);
    expect(later.alerts.get(T)).toEqual({ active: true, since: T0 - 300_000, severity: "warning" });
  });
});
