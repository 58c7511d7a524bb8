import type * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { EvaluatorShardSet } from "../api/types.ts";
import type { KubeWriter } from "../kube/kubeWriter.ts";
import { type ReconcileDeps, reconcileShardSet } from "./reconcileShardSet.ts";

function cache<T extends k8s.KubernetesObject>(objects: T[]): k8s.ObjectCache<T> {
  return {
    get: (name, namespace) =>
      objects.find((o) => o.metadata?.name === name && o.metadata?.namespace === namespace),
    list: (namespace) =>
      objects.filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  };
}

function deps(sets: EvaluatorShardSet[], released: string[]): ReconcileDeps {
  return {
    sets: cache(sets),
    deployments: cache<k8s.V1Deployment>([]),
    // A gone set must not be written to at all.
    kube: new Proxy({} as KubeWriter, {
      get: (_, verb) => () => {
        throw new Error(`unexpected write ${String(verb)}`);
      },
    }),
    assignments: () => Promise.reject(new Error("a gone set has no database to read")),
    releaseAssignments: async (key) => {
      released.push(key);
    },
    clock: { now: () => 0 },
    log: pino({ level: "silent" }),
    config: {} as ReconcileDeps["config"],
    applied: new Map(),
    written: new Map(),
  };
}

describe("reconcileShardSet of a set that is gone", () => {
  it("releases the set's database pool and does nothing else", async () => {
    const released: string[] = [];
    expect(await reconcileShardSet("iot/alerts", deps([], released))).toBeUndefined();
    expect(released).toEqual(["iot/alerts"]);
  });

  it("does the same for a set being deleted (deletionTimestamp set)", async () => {
    const released: string[] = [];
    const going = {
      metadata: { namespace: "iot", name: "alerts", deletionTimestamp: "2026-01-01T00:00:00Z" },
    } as unknown as EvaluatorShardSet;
    expect(await reconcileShardSet("iot/alerts", deps([going], released))).toBeUndefined();
    expect(released).toEqual(["iot/alerts"]);
  });
});
