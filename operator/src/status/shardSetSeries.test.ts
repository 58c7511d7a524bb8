import { describe, expect, it } from "vitest";
import type { EvaluatorShardSet, EvaluatorShardSetStatus } from "../api/types.ts";
import { shardSetSeries } from "./shardSetSeries.ts";

function shardSet(
  name: string,
  status?: EvaluatorShardSetStatus,
  tickIntervalSeconds?: number,
): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: { name, namespace: "iot", uid: `uid-${name}` },
    spec: {
      shards: 3,
      evaluator: {
        image: "evaluator:1",
        ...(tickIntervalSeconds !== undefined ? { tickIntervalSeconds } : {}),
        databaseSecretRef: { name: "evaluator-db" },
        valkeySecretRef: { name: "evaluator-valkey" },
      },
      database: { secretRef: { name: "operator-db" } },
    },
    ...(status ? { status } : {}),
  };
}

const T = "2026-01-01T00:00:00Z";

describe("shardSetSeries", () => {
  it("exports every condition as 1 (True) or 0 (False, Unknown), with its reason", () => {
    const set = shardSet("alerts", {
      conditions: [
        { type: "Ready", status: "True", reason: "AllShardsReady", message: "", lastTransitionTime: T },
        { type: "Degraded", status: "False", reason: "AsExpected", message: "", lastTransitionTime: T },
        { type: "ScalingLimited", status: "True", reason: "AtMaximum", message: "", lastTransitionTime: T },
        {
          type: "MetricsAvailable",
          status: "Unknown",
          reason: "Pending",
          message: "",
          lastTransitionTime: T,
        },
      ],
    });
    expect(shardSetSeries([set]).conditions).toEqual([
      {
        labels: { namespace: "iot", shardset: "alerts", condition: "Ready", reason: "AllShardsReady" },
        value: 1,
      },
      {
        labels: { namespace: "iot", shardset: "alerts", condition: "Degraded", reason: "AsExpected" },
        value: 0,
      },
      {
        labels: { namespace: "iot", shardset: "alerts", condition: "ScalingLimited", reason: "AtMaximum" },
        value: 1,
      },
      {
        labels: { namespace: "iot", shardset: "alerts", condition: "MetricsAvailable", reason: "Pending" },
        value: 0,
      },
    ]);
  });

  it("exports a reshard in flight as its start time in Unix seconds, labelled with its phase", () => {
    const set = shardSet("alerts", {
      reshard: { phase: "Draining", from: 4, to: 3, startedAt: "2026-01-01T00:10:00.500Z" },
    });
    expect(shardSetSeries([set]).reshards).toEqual([
      {
        labels: { namespace: "iot", shardset: "alerts", phase: "Draining" },
        value: Date.parse("2026-01-01T00:10:00.500Z") / 1000,
      },
    ]);
  });

  it("exports no reshard series without a reshard in flight, or with a startedAt that does not parse", () => {
    const idle = shardSet("idle", { shards: 3 });
    const garbled = shardSet("garbled", {
      reshard: { phase: "ScalingUp", from: 3, to: 4, startedAt: "yesterday-ish" },
    });
    expect(shardSetSeries([idle, garbled]).reshards).toEqual([]);
  });

  it("exports each set's tick interval, the default when the spec leaves it out", () => {
    const series = shardSetSeries([shardSet("fast", undefined, 15), shardSet("default")]);
    expect(series.tickIntervals).toEqual([
      { labels: { namespace: "iot", shardset: "fast" }, value: 15 },
      { labels: { namespace: "iot", shardset: "default" }, value: 60 },
    ]);
    // A set without status (just created) has no condition series yet.
    expect(series.conditions).toEqual([]);
  });
});
