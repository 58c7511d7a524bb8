import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Condition } from "../api/types.ts";
import { deriveShardConditions, isAvailable, isRollingOut } from "./shardConditions.ts";

const NOW = "2026-01-01T00:00:00.000Z";
const LATER = "2026-01-01T00:01:00.000Z";

function shard(
  i: number,
  s: { gen?: number; observed?: number; updated?: number; available?: number },
): k8s.V1Deployment {
  return {
    metadata: {
      name: `alerts-shard-${i}`,
      generation: s.gen ?? 1,
      labels: { "evaluator.iot.dev/shard": String(i) },
    },
    spec: { replicas: 1, selector: {}, template: {} },
    status: {
      observedGeneration: s.observed ?? 1,
      updatedReplicas: s.updated ?? 1,
      availableReplicas: s.available ?? 1,
    },
  };
}
const ok = (i: number) => shard(i, {});
const type = (cs: Condition[], t: string) => cs.find((c) => c.type === t);

describe("isAvailable / isRollingOut", () => {
  it.each([
    ["available and observed", {}, true, false],
    ["no available replica", { available: 0 }, false, true],
    ["a newer spec not yet observed", { gen: 2, observed: 1 }, false, true],
    ["available, the new replica not updated yet", { updated: 0 }, true, true],
  ] as const)("%s", (_, s, available, rolling) => {
    expect(isAvailable(shard(0, s))).toBe(available);
    expect(isRollingOut(shard(0, s))).toBe(rolling);
  });
});

describe("deriveShardConditions", () => {
  it("Ready counts only the committed shards; readyShards counts every available owned shard", () => {
    const { conditions, readyShards } = deriveShardConditions({
      previous: undefined,
      shards: 2,
      deployments: [ok(0), shard(1, { available: 0 }), ok(2)],
      nowIso: NOW,
      generation: 3,
    });
    expect(type(conditions, "Ready")).toMatchObject({
      status: "False",
      reason: "ShardsNotReady",
      message: "1/2 shards available",
    });
    expect(type(conditions, "Ready")?.observedGeneration).toBe(3);
    expect(readyShards).toBe(2);
    expect(type(conditions, "Progressing")).toMatchObject({ status: "True", reason: "RollingOut" });
  });

  it("zero shards is never Ready", () => {
    const { conditions } = deriveShardConditions({
      previous: undefined,
      shards: 0,
      deployments: [],
      nowIso: NOW,
      generation: 1,
    });
    expect(type(conditions, "Ready")?.status).toBe("False");
    expect(type(conditions, "Progressing")).toMatchObject({ status: "False", reason: "Stable" });
  });

  it("a given note wins over RollingOut; Paused reads False; Degraded carries its note", () => {
    const { conditions } = deriveShardConditions({
      previous: undefined,
      shards: 1,
      deployments: [shard(0, { available: 0 })],
      progressing: { reason: "Paused", message: "paused" },
      degraded: { reason: "DatabaseUnavailable", message: "down" },
      nowIso: NOW,
      generation: 1,
    });
    expect(type(conditions, "Progressing")).toMatchObject({ status: "False", reason: "Paused" });
    expect(type(conditions, "Degraded")).toMatchObject({
      status: "True",
      reason: "DatabaseUnavailable",
      message: "down",
    });
  });

  it("keeps lastTransitionTime while a status holds, and moves it when the status flips", () => {
    const first = deriveShardConditions({
      previous: undefined,
      shards: 1,
      deployments: [ok(0)],
      nowIso: NOW,
      generation: 1,
    });
    const same = deriveShardConditions({
      previous: first.conditions,
      shards: 1,
      deployments: [ok(0)],
      nowIso: LATER,
      generation: 1,
    });
    expect(type(same.conditions, "Ready")?.lastTransitionTime).toBe(NOW);
    const flipped = deriveShardConditions({
      previous: first.conditions,
      shards: 1,
      deployments: [],
      nowIso: LATER,
      generation: 1,
    });
    expect(type(flipped.conditions, "Ready")?.lastTransitionTime).toBe(LATER);
  });
});
