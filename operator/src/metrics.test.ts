import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { EvaluatorShardSet } from "./api/types.ts";
import { createOperatorMetrics } from "./metrics.ts";

/** The samples of `name` as `{labels} value` lines, sorted (prom-client's text format). */
async function samples(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .map((l) => l.slice(name.length))
    .sort();
}

function set(name: string, status: EvaluatorShardSet["status"]): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: { name, namespace: "iot", uid: name },
    spec: {},
    status,
  } as EvaluatorShardSet;
}

describe("the operator's shard counts and reshards per set", () => {
  it("export status.shards, desiredShards and readyShards of the cached sets at each scrape", async () => {
    const registry = new Registry();
    const m = createOperatorMetrics(registry);
    let sets = [set("alerts", { shards: 3, desiredShards: 4, readyShards: 2 }), set("fresh", {})];
    m.reportShardSets(() => sets);
    const alerts = '{namespace="iot",shardset="alerts"}';
    expect(await samples(registry, "evaluator_operator_shardset_shards")).toEqual([`${alerts} 3`]);
    expect(await samples(registry, "evaluator_operator_shardset_desired_shards")).toEqual([`${alerts} 4`]);
    expect(await samples(registry, "evaluator_operator_shardset_ready_shards")).toEqual([`${alerts} 2`]);

    // A set gone from the cache (deleted, or this replica no longer leads) takes its series along.
    sets = [];
    expect(await samples(registry, "evaluator_operator_shardset_shards")).toEqual([]);
  });

  it("count committed reshards from 0, so the first one is an increase", async () => {
    const registry = new Registry();
    const m = createOperatorMetrics(registry);
    m.reportShardSets(() => [set("alerts", { shards: 1 })]);
    const alerts = '{namespace="iot",shardset="alerts"}';
    expect(await samples(registry, "evaluator_operator_reshards_total")).toEqual([`${alerts} 0`]);
    expect(await samples(registry, "evaluator_operator_tenants_moved_total")).toEqual([`${alerts} 0`]);
    m.reshardCommitted("iot", "alerts", 17);
    expect(await samples(registry, "evaluator_operator_reshards_total")).toEqual([`${alerts} 1`]);
    expect(await samples(registry, "evaluator_operator_tenants_moved_total")).toEqual([`${alerts} 17`]);
  });
});

describe("the status gauges the alerting rules read", () => {
  const T = "2026-01-01T00:00:00Z";

  it("report conditions, a reshard's start and the tick interval of the cached sets, and nothing on a standby", async () => {
    const registry = new Registry();
    const m = createOperatorMetrics(registry);
    expect(await samples(registry, "evaluator_operator_shardset_condition")).toEqual([]);
    expect(await samples(registry, "evaluator_operator_shardset_tick_interval_seconds")).toEqual([]);

    let sets = [
      set("alerts", {
        conditions: [
          {
            type: "Degraded",
            status: "True",
            reason: "DatabaseUnavailable",
            message: "",
            lastTransitionTime: T,
          },
        ],
        reshard: { phase: "ScalingUp", from: 3, to: 4, startedAt: "2026-01-01T00:00:10Z" },
      }),
    ];
    m.reportShardSets(() => sets);
    const alerts = 'namespace="iot",shardset="alerts"';
    expect(await samples(registry, "evaluator_operator_shardset_condition")).toEqual([
      `{${alerts},condition="Degraded",reason="DatabaseUnavailable"} 1`,
    ]);
    expect(await samples(registry, "evaluator_operator_reshard_started_timestamp_seconds")).toEqual([
      `{${alerts},phase="ScalingUp"} 1767225610`,
    ]);
    // The default interval: the spec leaves it out.
    expect(await samples(registry, "evaluator_operator_shardset_tick_interval_seconds")).toEqual([
      `{${alerts}} 60`,
    ]);

    // The reshard finished and the condition changed: the old series are gone at the next scrape.
    sets = [
      set("alerts", {
        conditions: [
          { type: "Degraded", status: "False", reason: "AsExpected", message: "", lastTransitionTime: T },
        ],
      }),
    ];
    expect(await samples(registry, "evaluator_operator_shardset_condition")).toEqual([
      `{${alerts},condition="Degraded",reason="AsExpected"} 0`,
    ]);
    expect(await samples(registry, "evaluator_operator_reshard_started_timestamp_seconds")).toEqual([]);
  });
});
