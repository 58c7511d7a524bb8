import { describe, expect, it } from "vitest";
import type { EvaluatorShardSet, EvaluatorShardSetStatus } from "../api/types.ts";
import { memoryOf, planAutoscale } from "./planAutoscale.ts";
import type { SignalReading, SignalReadings } from "./types.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");

function set(
  mode: "Off" | "Recommend" | "Auto",
  status?: EvaluatorShardSetStatus,
  shards = 3,
): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: { name: "alerts", namespace: "iot", uid: "u", generation: 1 },
    spec: {
      shards,
      autoscaling: {
        mode,
        minShards: 1,
        maxShards: 8,
        targets: { queueDepthPerShard: 10, tickLatencySeconds: 30 },
        prometheus: { url: "http://prometheus:9090" },
      },
      evaluator: { image: "e", databaseSecretRef: { name: "d" }, valkeySecretRef: { name: "v" } },
      database: { secretRef: { name: "o" } },
    },
    ...(status ? { status } : {}),
  };
}

const value = (v: number): SignalReading => ({ value: v });
const gone: SignalReading = { missing: "Unreachable", detail: "connect ECONNREFUSED 10.0.0.1:9090" };
const readings = (queue: SignalReading, p95: SignalReading): SignalReadings => ({
  queueDepth: queue,
  tickLatencyP95Seconds: p95,
  readAt: T0,
});
const cond = (plan: ReturnType<typeof planAutoscale>, type: string) =>
  plan.conditions.find((c) => c.type === type);

describe("planAutoscale", () => {
  it("mode Off: spec.shards, no readings kept, no autoscaler condition", () => {
    const plan = planAutoscale({
      set: set("Off"),
      readings: undefined,
      committed: 2,
      totalLoad: 10,
      now: T0,
    });
    expect(plan).toMatchObject({ target: 3, conditions: [], events: [] });
    expect(plan.status).toEqual({ recommendedShards: undefined, metrics: undefined, autoscaler: undefined });
  });

  it("mode Auto: converges to the decision and reports readings, reason and MetricsAvailable", () => {
    const plan = planAutoscale({
      set: set("Auto"),
      readings: readings(value(0), value(60)),
      committed: 3,
      totalLoad: 10,
      now: T0,
    });
    expect(plan.target).toBe(6); // p95 60 s against 30 s: twice the shards
    expect(plan.status.recommendedShards).toBe(6);
    expect(plan.status.metrics).toEqual({
      queueDepth: 0,
      tickLatencyP95Seconds: 60,
      readAt: "2026-01-01T00:00:00.000Z",
    });
    expect(plan.status.autoscaler?.reason).toContain("3 → 6");
    expect(plan.status.autoscaler?.changes).toEqual([{ at: "2026-01-01T00:00:00.000Z", from: 3, to: 6 }]);
    expect(cond(plan, "MetricsAvailable")).toMatchObject({ status: "True", reason: "MetricsOk" });
    expect(cond(plan, "ScalingLimited")).toMatchObject({ status: "False", reason: "WithinBounds" });
    expect(plan.events).toEqual([]); // the reshard's own Event tells the change
  });

  it("mode Auto at the maximum: ScalingLimited True/AtMaximum", () => {
    const plan = planAutoscale({
      set: set("Auto"),
      readings: readings(value(0), value(300)),
      committed: 3,
      totalLoad: 1,
      now: T0,
    });
    expect(plan.target).toBe(7); // 4 more at most per period: 3 → 7, and 30 would be over the max of 8 anyway
    expect(cond(plan, "ScalingLimited")?.status).toBe("True");
    expect(["AtMaximum", "RateLimited"]).toContain(cond(plan, "ScalingLimited")?.reason);
  });

  it("mode Auto with a reshard in flight keeps the reshard's target", () => {
    const inFlight = set("Auto", {
      reshard: { phase: "ScalingUp", from: 3, to: 5, startedAt: "2026-01-01T00:00:00Z" },
    });
    const plan = planAutoscale({
      set: inFlight,
      readings: readings(value(0), value(90)),
      committed: 3,
      totalLoad: 1,
      now: T0,
    });
    expect(plan.target).toBe(5);
    expect(plan.decision?.limits).toContain("ReshardInFlight");
  });

  it("mode Recommend: spec.shards runs; the recommendation and an Event only when it changes", () => {
    const first = planAutoscale({
      set: set("Recommend"),
      readings: readings(value(0), value(60)),
      committed: 3,
      totalLoad: 1,
      now: T0,
    });
    expect(first.target).toBe(3);
    expect(first.status.recommendedShards).toBe(6);
    expect(first.events).toEqual([
      expect.objectContaining({
        type: "Normal",
        reason: "RecommendedShards",
        message: expect.stringContaining("Recommending 6 shards (spec.shards is 3)"),
      }),
    ]);
    const again = planAutoscale({
      set: set("Recommend", { ...first.status, conditions: [] }),
      readings: readings(value(0), value(60)),
      committed: 3,
      totalLoad: 1,
      now: T0 + 15_000,
    });
    expect(again.events.filter((e) => e.reason === "RecommendedShards")).toEqual([]);
  });

  it("missing metrics hold the count, say why, and tell the transition once each way", () => {
    const down = planAutoscale({
      set: set("Auto"),
      readings: readings(gone, gone),
      committed: 3,
      totalLoad: 1,
      now: T0,
    });
    expect(down.target).toBe(3);
    expect(cond(down, "MetricsAvailable")).toMatchObject({ status: "False", reason: "MetricsUnavailable" });
    expect(cond(down, "MetricsAvailable")?.message).toContain(
      "queue depth Unreachable (connect ECONNREFUSED 10.0.0.1:9090)",
    );
    expect(down.events.map((e) => [e.type, e.reason])).toEqual([["Warning", "MetricsUnavailable"]]);
    expect(down.status.metrics).toEqual({ readAt: "2026-01-01T00:00:00.000Z" });

    const conditions = down.conditions.map((c) => ({ ...c, lastTransitionTime: "2026-01-01T00:00:00Z" }));
    const stillDown = planAutoscale({
      set: set("Auto", { ...down.status, conditions }),
      readings: readings(gone, gone),
      committed: 3,
      totalLoad: 1,
      now: T0 + 15_000,
    });
    expect(stillDown.events).toEqual([]);
    const back = planAutoscale({
      set: set("Auto", { ...down.status, conditions }),
      readings: readings(value(0), value(20)),
      committed: 3,
      totalLoad: 1,
      now: T0 + 30_000,
    });
    expect(back.events.map((e) => [e.type, e.reason])).toEqual([["Normal", "MetricsAvailable"]]);
    expect(back.target).toBe(3); // a low reading right after an outage does not drop shards (the window restarted)
  });

  it("new shards not reporting yet hold the count without an outage warning; an old one missing warns", () => {
    const warming: SignalReading = {
      missing: "WarmingUp",
      detail: "no series yet for new shards 3, 4 (5 running)",
    };
    const plan = planAutoscale({
      set: set("Auto"),
      readings: readings(warming, value(5)),
      committed: 5,
      totalLoad: 1,
      now: T0,
    });
    expect(plan.target).toBe(5);
    expect(cond(plan, "MetricsAvailable")).toMatchObject({ status: "True", reason: "WarmingUp" });
    expect(plan.events).toEqual([]);
    const mixed = planAutoscale({
      set: set("Auto"),
      readings: readings(warming, gone),
      committed: 5,
      totalLoad: 1,
      now: T0,
    });
    expect(cond(mixed, "MetricsAvailable")).toMatchObject({ status: "False", reason: "MetricsUnavailable" });
    expect(mixed.events.map((e) => e.reason)).toEqual(["MetricsUnavailable"]);
  });

  it("keeps its memory in status across reconciles (ISO timestamps ↔ ms)", () => {
    const first = planAutoscale({
      set: set("Auto"),
      readings: readings(value(0), value(30)),
      committed: 3,
      totalLoad: 1,
      now: T0,
    });
    const memory = memoryOf(first.status.autoscaler);
    expect(memory.recommendations).toEqual(first.decision?.memory.recommendations);
  });
});
