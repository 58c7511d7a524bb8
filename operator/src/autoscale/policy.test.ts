import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AutoscalingSpec, DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";
import { compileAutoscalerSpec, decideShards } from "./policy.ts";
import type {
  AutoscaleDecision,
  AutoscaleInput,
  AutoscalerMemory,
  AutoscalerSpec,
  SignalReading,
  SignalReadings,
} from "./types.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const S = 1000;

/** The autoscaling block as written in the CR, plus the fields not in the CRD/types yet. */
type AutoscalingInput = AutoscalingSpec & {
  minReshardIntervalSeconds?: number;
  targets?: AutoscalingSpec["targets"] & { loadPerShard?: number };
};

function shardSet(autoscaling: AutoscalingInput | undefined): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: { name: "rules", namespace: "iot", uid: "u-1" },
    spec: {
      ...(autoscaling ? { autoscaling } : {}),
      evaluator: {
        image: "evaluator:test",
        databaseSecretRef: { name: "db" },
        valkeySecretRef: { name: "vk" },
      },
      database: { secretRef: { name: "db" } },
    },
  };
}

/**
 * The CRD's defaults in mode Auto, with overrides; the rows' numbers read best with a queue target
 * of 100 per shard, so that one is set (the formula does not depend on it).
 */
function spec(overrides: AutoscalingInput = {}): AutoscalerSpec {
  return compileAutoscalerSpec(
    shardSet({
      mode: "Auto",
      prometheus: { url: "http://prom:9090" },
      ...overrides,
      targets: { queueDepthPerShard: 100, ...overrides.targets },
    }),
  );
}

const value = (v: number): SignalReading => ({ value: v });
const missing = (detail = "connect ECONNREFUSED"): SignalReading => ({ missing: "Unreachable", detail });
function readings(
  queueDepth: SignalReading | number,
  tickLatencyP95Seconds: SignalReading | number,
): SignalReadings {
  return {
    queueDepth: typeof queueDepth === "number" ? value(queueDepth) : queueDepth,
    tickLatencyP95Seconds:
      typeof tickLatencyP95Seconds === "number" ? value(tickLatencyP95Seconds) : tickLatencyP95Seconds,
    readAt: T0,
  };
}

const EMPTY: AutoscalerMemory = { recommendations: [], changes: [] };

function decide(
  partial: Partial<AutoscaleInput> & Pick<AutoscaleInput, "current" | "readings">,
): AutoscaleDecision {
  return decideShards({ spec: spec(), reshardInFlight: false, memory: EMPTY, now: T0, ...partial });
}

/**
 * Replays a trace every `stepSeconds`, carrying the memory, and carries out every decision at once
 * (current = desired, lastScaleTime = now): the reshard's duration is the simulator's business.
 */
function replay(
  s: AutoscalerSpec,
  start: number,
  steps: number,
  read: (t: number, current: number) => SignalReadings,
  stepSeconds = 15,
) {
  let current = start;
  let memory = EMPTY;
  let lastScaleTime: number | undefined;
  const counts: number[] = [];
  const decisions: AutoscaleDecision[] = [];
  let changes = 0;
  for (let i = 0; i < steps; i++) {
    const now = T0 + i * stepSeconds * S;
    const d = decideShards({
      spec: s,
      current,
      readings: read(i * stepSeconds, current),
      reshardInFlight: false,
      lastScaleTime,
      memory,
      now,
    });
    memory = d.memory;
    if (d.desired !== current) {
      changes++;
      current = d.desired;
      lastScaleTime = now;
    }
    counts.push(current);
    decisions.push(d);
  }
  return { counts, decisions, changes, final: current };
}

describe("compileAutoscalerSpec", () => {
  it("applies the CRD's defaults, and 120 s / no load floor for the fields not in the CRD yet", () => {
    expect(compileAutoscalerSpec(shardSet(undefined))).toEqual({
      mode: "Off",
      minShards: 1,
      maxShards: 16,
      tolerance: 0.1,
      targets: {
        queueDepthPerShard: DEFAULTS.queueDepthPerShard,
        tickLatencySeconds: 30,
        loadPerShard: undefined,
      },
      scaleUp: { stabilizationWindowSeconds: 0, maxShardsChange: 4, periodSeconds: 60 },
      scaleDown: { stabilizationWindowSeconds: 300, maxShardsChange: 1, periodSeconds: 300 },
      minReshardIntervalSeconds: 120,
    });
  });

  it("reads every given field, minReshardIntervalSeconds and targets.loadPerShard included", () => {
    const compiled = spec({
      minShards: 2,
      maxShards: 40,
      tolerance: 0.2,
      targets: { queueDepthPerShard: 50, tickLatencySeconds: 20, loadPerShard: 1000 },
      scaleUp: { stabilizationWindowSeconds: 30, maxShardsChange: 2, periodSeconds: 120 },
      scaleDown: { stabilizationWindowSeconds: 600, maxShardsChange: 3, periodSeconds: 60 },
      minReshardIntervalSeconds: 0,
    });
    expect(compiled).toEqual({
      mode: "Auto",
      minShards: 2,
      maxShards: 40,
      tolerance: 0.2,
      targets: { queueDepthPerShard: 50, tickLatencySeconds: 20, loadPerShard: 1000 },
      scaleUp: { stabilizationWindowSeconds: 30, maxShardsChange: 2, periodSeconds: 120 },
      scaleDown: { stabilizationWindowSeconds: 600, maxShardsChange: 3, periodSeconds: 60 },
      minReshardIntervalSeconds: 0,
    });
  });

  it("falls back to the default for a value the schema would have rejected", () => {
    const compiled = compileAutoscalerSpec(
      shardSet({
        minShards: 8,
        maxShards: 4, // CEL rejects min > max: run at minShards
        tolerance: -1,
        targets: { queueDepthPerShard: 0, tickLatencySeconds: Number.NaN, loadPerShard: -5 },
        scaleUp: { maxShardsChange: 1.5 },
        minReshardIntervalSeconds: "soon" as unknown as number,
      }),
    );
    expect(compiled).toMatchObject({
      minShards: 8,
      maxShards: 8,
      tolerance: 0.1,
      minReshardIntervalSeconds: 120,
    });
    expect(compiled.targets).toEqual({
      queueDepthPerShard: DEFAULTS.queueDepthPerShard,
      tickLatencySeconds: 30,
      loadPerShard: undefined,
    });
    expect(compiled.scaleUp.maxShardsChange).toBe(4);
  });
});

interface Row {
  readonly name: string;
  readonly input: Partial<AutoscaleInput> & Pick<AutoscaleInput, "current" | "readings">;
  readonly recommended: number;
  readonly desired: number;
  readonly limits?: readonly string[];
  readonly reason?: string | RegExp;
}

const rows: Row[] = [
  // Per-signal proposals and the tolerance (HPA's algorithm details).
  {
    name: "HPA docs: 1 replica, metric 200m against 100m → 2",
    input: {
      spec: spec({ targets: { tickLatencySeconds: 0.1 } }),
      current: 1,
      readings: readings(100, 0.2),
    },
    recommended: 2,
    desired: 2,
    limits: [],
    reason: "tick p95 0.2s > target 0.1s (×2.00): 1 → 2 shards",
  },
  {
    name: "tick p95 desired = ceil(current × p95 / target): 3 shards at 42 s against 30 s → 5",
    input: { current: 3, readings: readings(300, 42) },
    recommended: 5,
    desired: 5,
    limits: [],
    reason: "tick p95 42.0s > target 30s (×1.40): 3 → 5 shards",
  },
  {
    name: "queue desired = ceil(total / queueDepthPerShard): 450 queued on 2 shards → 5",
    input: { current: 2, readings: readings(450, 30) },
    recommended: 5,
    desired: 5,
    reason: "queue depth 450 (225.0/shard) > target 100/shard (×2.25): 2 → 5 shards",
  },
  {
    name: "the highest signal wins: queue asks 6, tick p95 asks 5",
    input: { current: 3, readings: readings(600, 45) },
    recommended: 6,
    desired: 6,
    reason: /^queue depth 600/,
  },
  {
    name: "HPA docs: tolerance 0.1 keeps a 1.05 ratio unchanged (both signals)",
    input: { current: 3, readings: readings(315, 31.5) },
    recommended: 3,
    desired: 3,
    limits: [],
    reason:
      "holding 3 shards: queue depth 315 (105.0/shard) within 10% of target 100/shard, tick p95 31.5s within 10% of target 30s",
  },
  {
    name: "a ratio of exactly 1 + tolerance is within it (33 s against 30 s)",
    input: { current: 3, readings: readings(300, 33) },
    recommended: 3,
    desired: 3,
  },
  {
    name: "just outside the tolerance scales: 33.3 s on 3 shards → ceil(3.33) = 4",
    input: { current: 3, readings: readings(300, 33.3) },
    recommended: 4,
    desired: 4,
  },
  {
    name: "HPA docs: 4 replicas at 50 against 100 → 2 recommended; hysteresis keeps 3 (2 would run at 100%)",
    input: {
      spec: spec({ targets: { tickLatencySeconds: 100 }, scaleDown: { maxShardsChange: 4 } }),
      current: 4,
      readings: readings(0, 50),
    },
    recommended: 2,
    desired: 3,
    limits: ["Hysteresis"],
    reason:
      /4 → 3 shards \(recommended 2; at 2 shards tick p95 would be ×1\.00 of target \(must stay < ×0\.90\)\)/,
  },
  // Missing metrics (HPA: never scale down on a partial view; hold when blind).
  {
    name: "every signal missing → hold, MissingMetrics",
    input: { current: 3, readings: readings(missing(), missing("timeout")) },
    recommended: 3,
    desired: 3,
    limits: ["MissingMetrics"],
    reason:
      "holding 3 shards: queue depth missing (Unreachable: connect ECONNREFUSED), tick p95 missing (Unreachable: timeout)",
  },
  {
    name: "queue missing, tick p95 within tolerance → hold, MissingMetrics",
    input: { current: 3, readings: readings(missing(), 31) },
    recommended: 3,
    desired: 3,
    limits: ["MissingMetrics"],
    reason:
      "holding 3 shards: queue depth missing (Unreachable: connect ECONNREFUSED), tick p95 31.0s within 10% of target 30s",
  },
  {
    name: "queue missing, tick p95 asks for fewer → hold (never down on a partial view)",
    input: { current: 6, readings: readings(missing(), 10) },
    recommended: 6,
    desired: 6,
    limits: ["MissingMetrics"],
  },
  {
    name: "tick p95 missing, queue asks for more → scale up on the queue",
    input: { current: 3, readings: readings(700, { missing: "Empty", detail: "no series" }) },
    recommended: 7,
    desired: 7,
    limits: [],
    reason: "queue depth 700 (233.3/shard) > target 100/shard (×2.33): 3 → 7 shards",
  },
  // The tenant-load floor.
  {
    name: "load floor with no metrics (cold start): recommended 12, +4 per 60 s → 7",
    input: {
      spec: spec({ targets: { loadPerShard: 100 } }),
      current: 3,
      totalLoad: 1200,
      readings: readings(missing(), missing()),
    },
    recommended: 12,
    desired: 7,
    limits: ["RateLimited"],
    reason:
      /^tenant load 1200 at 100\/shard needs 12 \(queue depth missing .*\): 3 → 7 shards \(recommended 12; at most \+4 shards per 60s\)$/,
  },
  {
    name: "load floor above the signals: the floor wins",
    input: {
      spec: spec({ targets: { loadPerShard: 100 } }),
      current: 4,
      totalLoad: 550,
      readings: readings(400, 30),
    },
    recommended: 6,
    desired: 6,
  },
  {
    name: "load floor without targets.loadPerShard: no floor",
    input: { current: 3, totalLoad: 1_000_000, readings: readings(missing(), missing()) },
    recommended: 3,
    desired: 3,
    limits: ["MissingMetrics"],
  },
  {
    name: "load floor below the count: no effect, still never down while blind",
    input: {
      spec: spec({ targets: { loadPerShard: 100 } }),
      current: 5,
      totalLoad: 120,
      readings: readings(missing(), missing()),
    },
    recommended: 5,
    desired: 5,
    limits: ["MissingMetrics"],
  },
  // minShards / maxShards.
  {
    name: "asks above maxShards → AtMaximum",
    input: { current: 14, readings: readings(4000, 30) },
    recommended: 16,
    desired: 16,
    limits: ["AtMaximum"],
    reason: /14 → 16 shards \(recommended 16; capped at maxShards 16 \(asked for 40\)\)$/,
  },
  {
    name: "asks below minShards → AtMinimum",
    input: { spec: spec({ minShards: 2 }), current: 3, readings: readings(0, 0) },
    recommended: 2,
    desired: 2,
    limits: ["AtMinimum"],
  },
  {
    name: "running above a lowered maxShards → brought to it at once",
    input: { current: 20, readings: readings(2000, 30) },
    recommended: 16,
    desired: 16,
    limits: ["AtMaximum"],
  },
  {
    name: "load floor above maxShards → AtMaximum",
    input: {
      spec: spec({ targets: { loadPerShard: 10 } }),
      current: 16,
      totalLoad: 500,
      readings: readings(missing(), missing()),
    },
    recommended: 16,
    desired: 16,
    limits: ["AtMaximum"],
  },
  // Rate limits (HPA's Pods policy).
  {
    name: "scale-up: at most +4 per 60 s",
    input: { current: 2, readings: readings(1000, 30) },
    recommended: 10,
    desired: 6,
    limits: ["RateLimited"],
  },
  {
    name: "scale-up: +1 already within the period leaves +3 (from the count at the period's start)",
    input: {
      current: 3,
      readings: readings(1000, 30),
      memory: { recommendations: [], changes: [{ at: T0 - 30 * S, from: 2, to: 3 }] },
    },
    recommended: 10,
    desired: 6,
    limits: ["RateLimited"],
  },
  {
    name: "scale-up: a change exactly one period ago no longer counts",
    input: {
      current: 3,
      readings: readings(1000, 30),
      memory: { recommendations: [], changes: [{ at: T0 - 60 * S, from: 1, to: 3 }] },
    },
    recommended: 10,
    desired: 7,
  },
  {
    name: "scale-down: one shard removed within 300 s → no further removal",
    input: {
      current: 5,
      readings: readings(0, 6),
      memory: { recommendations: [], changes: [{ at: T0 - 200 * S, from: 6, to: 5 }] },
    },
    recommended: 1,
    desired: 5,
    limits: ["RateLimited"],
  },
  {
    name: "scale-down: default −1 per 300 s",
    input: { current: 5, readings: readings(0, 6) },
    recommended: 1,
    desired: 4,
    limits: ["RateLimited"],
  },
  // Hysteresis (what HPA lacks).
  {
    name: "hysteresis: 4 shards at 22 s ask 3, but 3 would run at 29.3 s (≥ 27 s) → hold 4",
    input: { current: 4, readings: readings(0, 22) },
    recommended: 3,
    desired: 4,
    limits: ["Hysteresis"],
    reason:
      /^holding 4 shards: .*\(recommended 3; at 3 shards tick p95 would be ×0\.98 of target \(must stay < ×0\.90\)\)$/,
  },
  {
    name: "hysteresis: 4 shards at 18 s → 3 (24 s < 27 s)",
    input: { current: 4, readings: readings(0, 18) },
    recommended: 3,
    desired: 3,
    limits: [],
  },
  {
    name: "hysteresis: the lowest count that stays below 90%: 6 shards at 10 s ask 2, 3 runs at 20 s",
    input: { spec: spec({ scaleDown: { maxShardsChange: 10 } }), current: 6, readings: readings(0, 10) },
    recommended: 2,
    desired: 3,
    limits: ["Hysteresis"],
  },
  {
    name: "hysteresis projects the queue too: 290 queued on 5 ask 3, but 3 would carry 96.7/shard (≥ 90) → 4",
    input: { spec: spec({ scaleDown: { maxShardsChange: 10 } }), current: 5, readings: readings(290, 5) },
    recommended: 3,
    desired: 4,
    limits: ["Hysteresis"],
    reason: /at 3 shards queue depth would be ×0\.97 of target/,
  },
  // Holds.
  {
    name: "reshard in flight → hold, recommended still computed",
    input: { current: 3, readings: readings(300, 42), reshardInFlight: true },
    recommended: 5,
    desired: 3,
    limits: ["ReshardInFlight"],
    reason:
      /^holding 3 shards: .*tick p95 42\.0s > target 30s \(×1\.40\) \(recommended 5; a reshard is in flight \(would go to 5\)\)$/,
  },
  {
    name: "reshard in flight, nothing to do → no limit",
    input: { current: 3, readings: readings(300, 30), reshardInFlight: true },
    recommended: 3,
    desired: 3,
    limits: [],
  },
  {
    name: "last reshard 60 s ago (< 120 s) → hold, ReshardInterval",
    input: { current: 3, readings: readings(300, 42), lastScaleTime: T0 - 60 * S },
    recommended: 5,
    desired: 3,
    limits: ["ReshardInterval"],
    reason: /last reshard 60s ago, next allowed in 60s \(would go to 5\)\)$/,
  },
  {
    name: "last reshard 120 s ago → allowed",
    input: { current: 3, readings: readings(300, 42), lastScaleTime: T0 - 120 * S },
    recommended: 5,
    desired: 5,
    limits: [],
  },
  // Stabilization (HPA behavior).
  {
    name: "scale-down window: a 6 recommended 299 s ago holds 6",
    input: {
      current: 6,
      readings: readings(0, 10),
      memory: { recommendations: [{ at: T0 - 299 * S, shards: 6 }], changes: [] },
    },
    recommended: 2,
    desired: 6,
    limits: ["Stabilizing"],
    reason: /\(recommended 2; highest recommendation in the last 300s is 6\)$/,
  },
  {
    name: "scale-down window: a 6 recommended 300 s ago has left it",
    input: {
      current: 6,
      readings: readings(0, 10),
      memory: { recommendations: [{ at: T0 - 300 * S, shards: 6 }], changes: [] },
    },
    recommended: 2,
    desired: 5,
    limits: ["RateLimited"], // hysteresis alone would allow 3
  },
  {
    name: "scale-down window: the highest recommendation of the window, not the current count",
    input: {
      spec: spec({ scaleDown: { maxShardsChange: 10 } }),
      current: 8,
      readings: readings(0, 5),
      memory: { recommendations: [{ at: T0 - 100 * S, shards: 5 }], changes: [] },
    },
    recommended: 2,
    desired: 5,
    limits: ["Stabilizing"],
  },
  {
    name: "scale-up window 60 s: the lowest recommendation of the window is used",
    input: {
      spec: spec({ scaleUp: { stabilizationWindowSeconds: 60 } }),
      current: 3,
      readings: readings(0, 60),
      memory: { recommendations: [{ at: T0 - 45 * S, shards: 4 }], changes: [] },
    },
    recommended: 6,
    desired: 4,
    limits: ["Stabilizing"],
  },
];

describe("decideShards", () => {
  it.each(rows)("$name", (row) => {
    const d = decide(row.input);
    expect({ recommended: d.recommended, desired: d.desired }).toEqual({
      recommended: row.recommended,
      desired: row.desired,
    });
    if (row.limits) expect(d.limits).toEqual(row.limits);
    if (typeof row.reason === "string") expect(d.reason).toBe(row.reason);
    else if (row.reason) expect(d.reason).toMatch(row.reason);
  });

  it("records a change only when desired ≠ current, and every recommendation", () => {
    const held = decide({ current: 3, readings: readings(300, 30) });
    expect(held.memory).toEqual({ recommendations: [{ at: T0, shards: 3 }], changes: [] });
    const moved = decide({ current: 3, readings: readings(300, 42) });
    expect(moved.memory).toEqual({
      recommendations: [{ at: T0, shards: 5 }],
      changes: [{ at: T0, from: 3, to: 5 }],
    });
  });

  it("records a missing reading as a recommendation of the current count", () => {
    const d = decide({ current: 4, readings: readings(missing(), missing()) });
    expect(d.memory.recommendations).toEqual([{ at: T0, shards: 4 }]);
  });

  it("prunes recommendations to the longest window and changes to the longest period", () => {
    const d = decide({
      current: 3,
      readings: readings(300, 30),
      memory: {
        recommendations: [
          { at: T0 - 300 * S, shards: 9 },
          { at: T0 - 299 * S, shards: 8 },
        ],
        changes: [
          { at: T0 - 300 * S, from: 1, to: 2 },
          { at: T0 - 10 * S, from: 2, to: 3 },
        ],
      },
    });
    expect(d.memory.recommendations).toEqual([
      { at: T0 - 299 * S, shards: 8 },
      { at: T0, shards: 3 },
    ]);
    expect(d.memory.changes).toEqual([{ at: T0 - 10 * S, from: 2, to: 3 }]);
  });

  it("keeps only the newest recommendation of each count (lossless for the windows' min and max)", () => {
    const d = decide({
      current: 5,
      readings: readings(500, 30),
      memory: {
        recommendations: [
          { at: T0 - 200 * S, shards: 5 },
          { at: T0 - 100 * S, shards: 6 },
          { at: T0 - 50 * S, shards: 5 },
        ],
        changes: [],
      },
    });
    expect(d.memory.recommendations).toEqual([
      { at: T0 - 100 * S, shards: 6 },
      { at: T0, shards: 5 },
    ]);
  });

  it("replaces a decision not carried out (Recommend mode) instead of counting it against the rate", () => {
    // 3 → 7 was decided 15 s ago but the count is still 3: deciding again must not rate-limit to 3.
    const d = decide({
      current: 3,
      readings: readings(700, 30),
      memory: {
        recommendations: [{ at: T0 - 15 * S, shards: 7 }],
        changes: [{ at: T0 - 15 * S, from: 3, to: 7 }],
      },
    });
    expect(d.desired).toBe(7);
    expect(d.memory.changes).toEqual([{ at: T0, from: 3, to: 7 }]);
  });

  it("keeps the changes as they are while a reshard is in flight", () => {
    const changes = [{ at: T0 - 15 * S, from: 3, to: 5 }];
    const d = decide({
      current: 3,
      readings: readings(300, 42),
      reshardInFlight: true,
      memory: { recommendations: [], changes },
    });
    expect(d.memory.changes).toEqual(changes);
  });

  it("reads a negative or non-finite value as missing", () => {
    const d = decide({ current: 3, readings: readings(-1, Number.POSITIVE_INFINITY) });
    expect(d).toMatchObject({ desired: 3, limits: ["MissingMetrics"] });
    expect(d.reason).toContain("queue depth missing (NotANumber: -1)");
  });
});

describe("decideShards over time (15 s steps, decisions carried out at once)", () => {
  const noInterval = spec({ minReshardIntervalSeconds: 0 });

  it("HPA docs: scale-down after the 300 s window, keeping the highest recommendation meanwhile", () => {
    // 4 shards on target for 5 minutes, then the tick p95 halves (50%: asks for 2).
    const run = replay(noInterval, 4, 60, (t) => readings(0, t < 300 ? 30 : 15));
    const firstDown = run.counts.findIndex((n) => n < 4);
    // The last on-target recommendation (4) was made at t = 285 s; it leaves the window at 585 s.
    expect(firstDown * 15).toBe(585);
    expect(run.decisions[38]!.limits).toEqual(["Stabilizing"]);
    expect(run.counts[firstDown]).toBe(3); // −1 per 300 s (and 3 runs at 20 s < 27 s)
  });

  it("HPA docs: a scale-up limited to 4 shards per 60 s", () => {
    const run = replay(noInterval, 2, 16, () => readings(1600, 30)); // queue asks for 16
    expect(run.counts.slice(0, 13)).toEqual([6, 6, 6, 6, 10, 10, 10, 10, 14, 14, 14, 14, 16]);
    expect(run.decisions[1]!.limits).toEqual(["RateLimited"]);
  });

  it("a square wave around the target, shorter than the scale-down window, does not flap", () => {
    // Load alternates 4.8 ↔ 3.2 shards' worth every 2 minutes (target: 30 s at 1 shard's worth per shard… ×30/n).
    const p95 = (t: number, n: number) => ((Math.floor(t / 120) % 2 === 0 ? 4.8 : 3.2) * 30) / n;
    const steady = replay(noInterval, 4, 480, (t, n) => readings(0, p95(t, n)));
    expect(steady.changes).toBe(1); // 4 → 5 on the first high, then 5 holds
    expect(steady.final).toBe(5);
    // Without the window the same wave moves the count every period: the window is what stops it.
    const noWindow = spec({
      minReshardIntervalSeconds: 0,
      scaleDown: { stabilizationWindowSeconds: 0, maxShardsChange: 4, periodSeconds: 15 },
    });
    expect(replay(noWindow, 4, 480, (t, n) => readings(0, p95(t, n))).changes).toBeGreaterThan(20);
  });

  it("an outage that ends does not cause a sudden drop: the window restarts from the hold", () => {
    // 6 shards on target; Prometheus unreachable for 10 minutes; then readings that ask for 3.
    const run = replay(noInterval, 6, 80, (t) =>
      t < 300 ? readings(0, 30) : t < 900 ? readings(missing(), missing()) : readings(0, 14),
    );
    expect(run.counts.slice(0, 60)).toEqual(new Array(60).fill(6)); // through the outage
    // The holds recorded during the outage (the last at 885 s) keep 6 until 1185 s.
    const firstDown = run.counts.findIndex((n) => n < 6);
    expect(firstDown * 15).toBe(1185);
    expect(run.decisions.slice(20, 60).every((d) => d.limits.includes("MissingMetrics"))).toBe(true);
  });

  it("missing metrics never scale down, whatever the present signal says", () => {
    const run = replay(noInterval, 8, 200, () => readings(missing(), 3));
    expect(run.changes).toBe(0);
  });

  it("partial missing with the other signal asking up scales up", () => {
    const run = replay(noInterval, 2, 20, () => readings(1000, missing()));
    expect(run.final).toBe(10);
  });

  it("the load floor sizes a cold start before any metric exists", () => {
    const s = spec({ minReshardIntervalSeconds: 0, targets: { loadPerShard: 100 } });
    let current = 1;
    let memory = EMPTY;
    for (let i = 0; i < 10; i++) {
      const d = decideShards({
        spec: s,
        current,
        totalLoad: 1150,
        readings: readings(
          { missing: "Empty", detail: "no series" },
          { missing: "Empty", detail: "no series" },
        ),
        reshardInFlight: false,
        memory,
        now: T0 + i * 15 * S,
      });
      memory = d.memory;
      current = d.desired;
    }
    expect(current).toBe(12);
  });

  it("hysteresis prevents a down-then-up ping-pong", () => {
    // 88 s of tick work: 22 s on 4 shards (asks for 3), 29.3 s on 3 (within tolerance), and every
    // 10 minutes a 15% blip that on 3 shards reads 33.7 s (asks for 4 again).
    const work = (t: number) => (t % 600 < 60 ? 88 * 1.15 : 88);
    const run = replay(noInterval, 4, 480, (t, n) => readings(0, work(t) / n));
    expect(run.changes).toBe(0);
    expect(run.decisions.filter((d) => d.limits.includes("Hysteresis")).length).toBeGreaterThan(0);
    // The ping-pong it prevents: on 3 shards the blip asks for 4.
    expect(decide({ current: 3, readings: readings(0, (88 * 1.15) / 3) }).desired).toBe(4);
  });

  it("the in-flight hold and the reshard interval delay a decision without losing it", () => {
    const r = readings(300, 42);
    const first = decide({ current: 3, readings: r, reshardInFlight: true });
    const second = decide({
      current: 3,
      readings: r,
      memory: first.memory,
      lastScaleTime: T0,
      now: T0 + 60 * S,
    });
    const third = decide({
      current: 3,
      readings: r,
      memory: second.memory,
      lastScaleTime: T0,
      now: T0 + 120 * S,
    });
    expect([first.desired, second.desired, third.desired]).toEqual([3, 3, 5]);
    expect([first.limits, second.limits, third.limits]).toEqual([
      ["ReshardInFlight"],
      ["ReshardInterval"],
      [],
    ]);
  });
});

describe("decideShards properties", () => {
  const readingArb = fc.oneof(
    fc.double({ min: 0, max: 5000, noNaN: true }).map((v): SignalReading => ({ value: v })),
    fc.constantFrom<SignalReading>(
      { missing: "Unreachable", detail: "x" },
      { missing: "Empty", detail: "no series" },
      { missing: "Stale", detail: "1 of 3 shards" },
    ),
  );
  const latencyArb = fc.oneof(
    fc.double({ min: 0, max: 300, noNaN: true }).map((v): SignalReading => ({ value: v })),
    fc.constant<SignalReading>({ missing: "QueryError", detail: "bad_data" }),
  );
  const inputArb = fc
    .record({
      min: fc.integer({ min: 1, max: 10 }),
      span: fc.integer({ min: 0, max: 20 }),
      tolerance: fc.double({ min: 0, max: 0.5, noNaN: true }),
      upWindow: fc.integer({ min: 0, max: 600 }),
      downWindow: fc.integer({ min: 0, max: 600 }),
      upChange: fc.integer({ min: 1, max: 8 }),
      downChange: fc.integer({ min: 1, max: 8 }),
      interval: fc.integer({ min: 0, max: 300 }),
      loadPerShard: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
      totalLoad: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }),
      current: fc.integer({ min: 1, max: 40 }),
      queue: readingArb,
      latency: latencyArb,
      inFlight: fc.boolean(),
      lastScaleAgo: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }),
      recommendations: fc.array(
        fc.record({ ago: fc.integer({ min: 0, max: 900 }), shards: fc.integer({ min: 1, max: 40 }) }),
        {
          maxLength: 8,
        },
      ),
      changes: fc.array(
        fc.record({
          ago: fc.integer({ min: 1, max: 900 }),
          from: fc.integer({ min: 1, max: 40 }),
          to: fc.integer({ min: 1, max: 40 }),
        }),
        { maxLength: 4 },
      ),
    })
    .map(
      (g): AutoscaleInput => ({
        spec: spec({
          minShards: g.min,
          maxShards: g.min + g.span,
          tolerance: g.tolerance,
          targets: { ...(g.loadPerShard !== undefined ? { loadPerShard: g.loadPerShard } : {}) },
          scaleUp: { stabilizationWindowSeconds: g.upWindow, maxShardsChange: g.upChange, periodSeconds: 60 },
          scaleDown: {
            stabilizationWindowSeconds: g.downWindow,
            maxShardsChange: g.downChange,
            periodSeconds: 300,
          },
          minReshardIntervalSeconds: g.interval,
        }),
        current: g.current,
        readings: { queueDepth: g.queue, tickLatencyP95Seconds: g.latency, readAt: T0 },
        totalLoad: g.totalLoad,
        reshardInFlight: g.inFlight,
        lastScaleTime: g.lastScaleAgo === undefined ? undefined : T0 - g.lastScaleAgo * S,
        memory: {
          recommendations: g.recommendations
            .map((r) => ({ at: T0 - r.ago * S, shards: r.shards }))
            .sort((a, b) => a.at - b.at),
          changes: g.changes
            .map((c) => ({ at: T0 - c.ago * S, from: c.from, to: c.to }))
            .sort((a, b) => a.at - b.at),
        },
        now: T0,
      }),
    );

  it("recommends within [min, max]; decides within it unless a hold keeps an out-of-range count", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const d = decideShards(input);
        const { minShards, maxShards } = input.spec;
        expect(d.recommended).toBeGreaterThanOrEqual(minShards);
        expect(d.recommended).toBeLessThanOrEqual(maxShards);
        const inRange = input.current >= minShards && input.current <= maxShards;
        if (inRange || !d.limits.some((l) => l === "ReshardInFlight" || l === "ReshardInterval")) {
          expect(d.desired).toBeGreaterThanOrEqual(minShards);
          expect(d.desired).toBeLessThanOrEqual(maxShards);
        }
      }),
    );
  });

  it("moves from current towards the recommendation, never past it", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const d = decideShards(input);
        expect(d.desired).toBeGreaterThanOrEqual(Math.min(input.current, d.recommended));
        expect(d.desired).toBeLessThanOrEqual(Math.max(input.current, d.recommended));
        if (d.desired !== d.recommended) expect(d.limits.length).toBeGreaterThan(0);
      }),
    );
  });

  it("never goes below current while any signal is missing (unless above maxShards)", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        fc.pre("missing" in input.readings.queueDepth || "missing" in input.readings.tickLatencyP95Seconds);
        fc.pre(input.current <= input.spec.maxShards);
        expect(decideShards(input).desired).toBeGreaterThanOrEqual(input.current);
      }),
    );
  });

  it("never scales down within the scale-down window after a recommendation ≥ current", () => {
    fc.assert(
      fc.property(inputArb, fc.integer({ min: 0, max: 600 }), (input, ago) => {
        fc.pre(input.current <= input.spec.maxShards && input.current >= input.spec.minShards);
        fc.pre(ago < input.spec.scaleDown.stabilizationWindowSeconds);
        const withHigher: AutoscaleInput = {
          ...input,
          memory: {
            ...input.memory,
            recommendations: [
              ...input.memory.recommendations,
              { at: T0 - ago * S, shards: input.current },
            ].sort((a, b) => a.at - b.at),
          },
        };
        expect(decideShards(withHigher).desired).toBeGreaterThanOrEqual(input.current);
      }),
    );
  });

  it("adds a change to the memory exactly when desired ≠ current (and not in flight)", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const d = decideShards(input);
        const last = d.memory.changes.at(-1);
        if (d.desired !== input.current) expect(last).toEqual({ at: T0, from: input.current, to: d.desired });
        else expect(d.memory.changes.some((c) => c.at === T0)).toBe(false);
      }),
    );
  });
});
