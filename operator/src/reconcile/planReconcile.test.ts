import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  ANNOTATIONS,
  type EvaluatorShardSet,
  type EvaluatorShardSetStatus,
  type ReshardProgress,
} from "../api/types.ts";
import type { AssignmentSnapshot, CommitResult } from "../assignments/tenantAssignments.ts";
import { buildShardDeployment, DEFAULT_SHARD_DEPLOYMENT_CONFIG } from "../desired/buildShardDeployment.ts";
import { imageAllowed } from "./imagePolicy.ts";
import {
  type AppliedRecord,
  planFailure,
  planReconcile,
  type ReconcileConfig,
  type ReconcileInput,
  type ReconcilePlan,
  SCALE_UP_POLL_MS,
  type TenantStepOutcome,
} from "./planReconcile.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();
const CONFIG: ReconcileConfig = {
  shardDeployment: DEFAULT_SHARD_DEPLOYMENT_CONFIG,
  scaleUpTimeoutMs: 300_000,
  drainSlackMs: 5_000,
  resyncMs: 30_000,
  autoscaleIntervalMs: 15_000,
};
/** Tick interval 60 s + drain slack 5 s: removed shards run this long after the commit. */
const DRAIN_MS = 65_000;

function shardSet(
  spec: Partial<EvaluatorShardSet["spec"]> = {},
  status?: EvaluatorShardSetStatus,
): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: { name: "alerts", namespace: "iot", uid: "uid-1", generation: 2, resourceVersion: "100" },
    spec: {
      shards: 3,
      evaluator: {
        image: "evaluator:1",
        tickIntervalSeconds: 60,
        databaseSecretRef: { name: "evaluator-db" },
        valkeySecretRef: { name: "evaluator-valkey", key: "uri" },
      },
      database: { secretRef: { name: "operator-db" } },
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}

/** Shard `i` as the cluster holds it after our apply: available unless told otherwise. */
function deployment(set: EvaluatorShardSet, i: number, available = true): k8s.V1Deployment {
  const d = buildShardDeployment(set, i, CONFIG.shardDeployment);
  d.metadata!.generation = 1;
  d.status = available
    ? { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 }
    : { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 0 };
  return d;
}

/** The operator's record of having applied these Deployments (so unchanged ones are skipped). */
function appliedFor(deployments: readonly k8s.V1Deployment[]): Map<string, AppliedRecord> {
  return new Map(
    deployments.map((d) => [
      `iot/${d.metadata!.name}`,
      { hash: d.metadata!.annotations![ANNOTATIONS.inputHash]!, generation: d.metadata!.generation! },
    ]),
  );
}

function input(
  set: EvaluatorShardSet,
  opts: {
    shards?: number[];
    unavailable?: number[];
    database?: AssignmentSnapshot;
    done?: TenantStepOutcome;
    now?: number;
    target?: number;
  } = {},
): ReconcileInput {
  const deployments = (opts.shards ?? []).map((i) => deployment(set, i, !opts.unavailable?.includes(i)));
  return {
    set,
    deployments,
    applied: appliedFor(deployments),
    database: opts.database,
    tenantStepDone: opts.done,
    target: opts.target ?? set.spec.shards ?? 1,
    now: T0 + (opts.now ?? 0),
    config: CONFIG,
  };
}

const names = (ds: readonly k8s.V1Deployment[]) => ds.map((d) => d.metadata!.name);
const reasons = (p: ReconcilePlan) => p.events.map((e) => e.reason);
const condition = (p: { status?: EvaluatorShardSetStatus }, type: string) =>
  p.status?.conditions?.find((c) => c.type === type);
const db = (shardCount: number | null, tenants = 10, epoch = 1): AssignmentSnapshot => ({
  shardCount,
  epoch,
  tenants,
  totalLoad: tenants,
});
const commit = (over: Partial<CommitResult> = {}): TenantStepOutcome => ({
  kind: "committed",
  result: {
    epoch: 2,
    shardCount: 4,
    tenants: 10,
    moved: 5,
    movedLoad: 50.123,
    minimumMovedLoad: 40,
    alreadyCommitted: false,
    ...over,
  },
});
const reshard = (
  phase: ReshardProgress["phase"],
  from: number,
  to: number,
  extra: Partial<ReshardProgress> = {},
) => ({ phase, from, to, startedAt: at(-10_000), ...extra }) as ReshardProgress;

describe("planReconcile: a settled set", () => {
  it("without a database: applies missing shards, then writes nothing more once settled", () => {
    const set = shardSet({ shards: 3 }, { shards: 3 });
    const first = planReconcile(input(set, { shards: [0] }));
    expect(first.step).toBe("settled");
    expect(names(first.apply)).toEqual(["alerts-shard-1", "alerts-shard-2"]);
    expect(first.delete).toEqual([]);
    expect(first.next).toBe("done");

    expect(condition(first, "Ready")).toMatchObject({ status: "False", message: "1/3 shards available" });

    // Once the shards run, Ready turns True; planned again in the same world, nothing is written.
    const running = planReconcile(input(shardSet({ shards: 3 }, first.status), { shards: [0, 1, 2] }));
    expect(running.apply).toEqual([]);
    expect(condition(running, "Ready")).toMatchObject({ status: "True", message: "3/3 shards available" });
    const again = planReconcile(input(shardSet({ shards: 3 }, running.status), { shards: [0, 1, 2] }));
    expect(again).toMatchObject({ step: "settled", apply: [], delete: [], events: [], next: "done" });
    expect(again.status).toBeUndefined();
  });

  it("with a database: places new tenants first, then reports and comes back after the resync period", () => {
    const set = shardSet({ shards: 3 });
    const first = planReconcile(input(set, { shards: [0, 1, 2], database: db(3) }));
    expect(first).toMatchObject({ step: "settled", tenantStep: { kind: "placeNew" }, next: "replan" });
    expect(first.status).toBeUndefined();

    const second = planReconcile(
      input(set, { shards: [0, 1, 2], database: db(3, 12), done: { kind: "placed", placed: 2 } }),
    );
    expect(second.tenantStep).toBeUndefined();
    expect(second.next).toEqual({ requeueAfterMs: CONFIG.resyncMs });
    expect(second.status).toMatchObject({
      shards: 3,
      readyShards: 3,
      tenants: 12,
      epoch: 1,
      desiredShards: 3,
    });
    expect(condition(second, "Ready")).toMatchObject({ status: "True", reason: "AllShardsReady" });
    expect(condition(second, "Progressing")).toMatchObject({ status: "False", reason: "Stable" });
    expect(condition(second, "Degraded")).toMatchObject({ status: "False", reason: "AsExpected" });
  });

  it("deletes a stray shard (index beyond the count, or no index label) and records an Event for each", () => {
    const set = shardSet({ shards: 2 }, { shards: 2 });
    const i = input(set, { shards: [0, 1, 2] });
    const stray = deployment(set, 0);
    stray.metadata!.name = "alerts-shard-x";
    delete stray.metadata!.labels!["evaluator.iot.dev/shard"];
    const plan = planReconcile({ ...i, deployments: [...i.deployments, stray] });
    expect(plan.delete).toEqual(["alerts-shard-2", "alerts-shard-x"]);
    expect(reasons(plan)).toEqual(["ShardRemoved", "ShardRemoved"]);
    expect(plan.status?.readyShards).toBe(2); // the deleted ones no longer count
  });

  it("re-applies a shard whose spec someone changed (its generation moved past our apply)", () => {
    const set = shardSet({ shards: 1 }, { shards: 1 });
    const i = input(set, { shards: [0] });
    const edited = { ...i.deployments[0]!, metadata: { ...i.deployments[0]!.metadata, generation: 2 } };
    expect(names(planReconcile({ ...i, deployments: [edited] }).apply)).toEqual(["alerts-shard-0"]);
    // After an operator restart nothing is known about earlier applies: apply once, then skip.
    expect(names(planReconcile({ ...i, applied: new Map() }).apply)).toEqual(["alerts-shard-0"]);
  });

  it("reads the committed count from the database, not from a status that trails a crash", () => {
    const set = shardSet({ shards: 4 }, { shards: 2 });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(4) }));
    expect(plan.step).toBe("settled");
  });
});

describe("planReconcile: paused", () => {
  it("touches no Deployment and no tenant; Progressing is False/Paused; a reshard in flight stays as it was", () => {
    const inFlight = reshard("ScalingUp", 2, 4);
    const set = shardSet({ shards: 4, paused: true }, { shards: 2, reshard: inFlight });
    const plan = planReconcile(input(set, { shards: [0], database: db(2) }));
    expect(plan).toMatchObject({ step: "paused", apply: [], delete: [], events: [], next: "done" });
    expect(plan.tenantStep).toBeUndefined();
    expect(plan.status?.reshard).toEqual(inFlight);
    expect(condition(plan, "Progressing")).toMatchObject({ status: "False", reason: "Paused" });
  });
});

describe("planReconcile: a growth 2 → 4", () => {
  const base = shardSet({ shards: 4 }, { shards: 2 });

  it("starts a reshard: applies shards 2 and 3, records the start, places new tenants on the two running shards", () => {
    const first = planReconcile(input(base, { shards: [0, 1], database: db(2) }));
    expect(first).toMatchObject({ step: "awaitShards", tenantStep: { kind: "placeNew" }, next: "replan" });
    expect(names(first.apply)).toEqual(["alerts-shard-2", "alerts-shard-3"]);
    expect(first.events).toEqual([]); // the start is recorded with the status, after the placement

    const second = planReconcile(
      input(base, {
        shards: [0, 1, 2, 3],
        unavailable: [2, 3],
        database: db(2),
        done: { kind: "placed", placed: 0 },
      }),
    );
    expect(second.step).toBe("awaitShards");
    expect(second.apply).toEqual([]);
    expect(second.next).toEqual({ requeueAfterMs: SCALE_UP_POLL_MS });
    expect(second.events).toEqual([
      { type: "Normal", reason: "ScalingUp", message: "Resharding from 2 to 4 shards" },
    ]);
    expect(second.status?.reshard).toEqual({ phase: "ScalingUp", from: 2, to: 4, startedAt: at(0) });
    expect(second.status?.shards).toBe(2);
    expect(condition(second, "Progressing")).toMatchObject({
      status: "True",
      reason: "ScalingUp",
      message: "waiting for shards 2, 3 to become available (0s)",
    });
    expect(condition(second, "Ready")).toMatchObject({ status: "True", message: "2/2 shards available" });
  });

  it("after the scale-up timeout turns Degraded (ShardsNotReady) and keeps waiting", () => {
    const set = shardSet(
      { shards: 4 },
      { shards: 2, reshard: reshard("ScalingUp", 2, 4, { startedAt: at(0) }) },
    );
    const plan = planReconcile(
      input(set, {
        shards: [0, 1, 2, 3],
        unavailable: [3],
        now: 300_001,
        done: { kind: "placed", placed: 0 },
      }),
    );
    expect(plan.step).toBe("awaitShards");
    expect(plan.next).toEqual({ requeueAfterMs: SCALE_UP_POLL_MS });
    expect(condition(plan, "Degraded")).toMatchObject({
      status: "True",
      reason: "ShardsNotReady",
      message: "waiting for shards 3 to become available (300s)",
    });
    expect(plan.events).toEqual([]); // the start was recorded when the reshard began
  });

  it("once the new shards are available (or on resume after a crash there), persists MovingTenants", () => {
    const set = shardSet({ shards: 4 }, { shards: 2, reshard: reshard("ScalingUp", 2, 4) });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(2) }));
    expect(plan.step).toBe("startMoving");
    expect(plan.tenantStep).toBeUndefined();
    expect(plan.next).toBe("replan");
    expect(plan.status?.reshard).toMatchObject({ phase: "MovingTenants", from: 2, to: 4 });
    expect(condition(plan, "Progressing")).toMatchObject({
      reason: "MovingTenants",
      message: "2 → 4 shards: MovingTenants",
    });
  });

  it("commits the moves (also on resume after a crash before the commit), writing no status first", () => {
    const set = shardSet({ shards: 4 }, { shards: 2, reshard: reshard("MovingTenants", 2, 4) });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(2) }));
    expect(plan).toMatchObject({
      step: "commitMoves",
      tenantStep: { kind: "commit", shardCount: 4 },
      next: "replan",
    });
    expect(plan.status).toBeUndefined();
  });

  it("records the commit: Draining with the epoch and the moved figures, an Event and the moved count", () => {
    const set = shardSet({ shards: 4 }, { shards: 2, reshard: reshard("MovingTenants", 2, 4) });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(4, 10, 2), done: commit() }));
    expect(plan.step).toBe("recordCommit");
    expect(plan.next).toBe("replan");
    expect(plan.tenantsMoved).toBe(5);
    expect(plan.status).toMatchObject({ shards: 4, epoch: 2, tenants: 10 });
    expect(plan.status?.reshard).toEqual({
      ...reshard("MovingTenants", 2, 4),
      phase: "Draining",
      epoch: 2,
      committedAt: at(0),
      moved: 5,
      movedLoad: 50.123,
      minimumMovedLoad: 40,
    });
    expect(plan.events).toEqual([
      {
        type: "Normal",
        reason: "MovingTenants",
        message: "Moved 5 tenants (load 50.12) to 4 shards, epoch 2",
      },
    ]);
  });

  it("on resume after a crash right after the commit, keeps the real commit's figures and records no second Event", () => {
    const set = shardSet(
      { shards: 4 },
      { shards: 2, reshard: reshard("MovingTenants", 2, 4, { moved: 7, movedLoad: 9, minimumMovedLoad: 8 }) },
    );
    const plan = planReconcile(
      input(set, {
        shards: [0, 1, 2, 3],
        database: db(4),
        done: commit({ alreadyCommitted: true, moved: 0 }),
      }),
    );
    expect(plan.step).toBe("recordCommit");
    expect(plan.status?.reshard).toMatchObject({
      phase: "Draining",
      moved: 7,
      movedLoad: 9,
      minimumMovedLoad: 8,
    });
    expect(plan.events).toEqual([]);
    expect(plan.tenantsMoved).toBeUndefined();
  });

  it("a growth has nothing to drain: it finishes at once and records lastReshard", () => {
    const draining = reshard("Draining", 2, 4, {
      committedAt: at(0),
      epoch: 2,
      moved: 5,
      movedLoad: 50,
      minimumMovedLoad: 40,
    });
    const set = shardSet({ shards: 4 }, { shards: 4, reshard: draining });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(4) }));
    expect(plan).toMatchObject({ step: "removeShards", delete: [], next: "done" });
    expect(plan.status?.reshard).toBeUndefined();
    expect(plan.status?.lastReshard).toEqual({
      from: 2,
      to: 4,
      moved: 5,
      movedLoad: 50,
      minimumMovedLoad: 40,
      durationSeconds: 10,
      finishedAt: at(0),
    });
    expect(plan.status?.lastScaleTime).toBe(at(0));
    expect(reasons(plan)).toEqual(["Resharded"]);
  });

  it("a new target during ScalingUp re-aims the reshard (nothing is committed yet)", () => {
    const set = shardSet({ shards: 5 }, { shards: 2, reshard: reshard("ScalingUp", 2, 4) });
    const plan = planReconcile(
      input(set, { shards: [0, 1, 2, 3], database: db(2), done: { kind: "placed", placed: 0 } }),
    );
    expect(plan.step).toBe("awaitShards");
    expect(names(plan.apply)).toEqual(["alerts-shard-4"]);
    expect(plan.status?.reshard).toMatchObject({ phase: "ScalingUp", from: 2, to: 5 });
    expect(plan.events).toEqual([]);
  });

  it("a new target after the commit does not re-aim it: the reshard finishes first", () => {
    const set = shardSet({ shards: 6 }, { shards: 2, reshard: reshard("MovingTenants", 2, 4) });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(2), target: 6 }));
    expect(plan.tenantStep).toEqual({ kind: "commit", shardCount: 4 });
  });
});

describe("planReconcile: a shrink 4 → 2", () => {
  const committedAt = at(0);
  const draining = reshard("Draining", 4, 2, {
    committedAt,
    epoch: 3,
    moved: 4,
    movedLoad: 40,
    minimumMovedLoad: 40,
  });

  it("starts without waiting (no new shard) and records ScalingDown", () => {
    const set = shardSet({ shards: 2 }, { shards: 4 });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(4) }));
    expect(plan.step).toBe("startMoving");
    expect(plan.events).toEqual([
      { type: "Normal", reason: "ScalingDown", message: "Resharding from 4 to 2 shards" },
    ]);
    expect(plan.status?.reshard).toMatchObject({ phase: "MovingTenants", from: 4, to: 2, startedAt: at(0) });
  });

  it("keeps the removed shards running one tick interval plus the slack after the commit", () => {
    const set = shardSet({ shards: 2 }, { shards: 2, reshard: draining });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(2), now: 20_000 }));
    expect(plan).toMatchObject({
      step: "drain",
      apply: [],
      delete: [],
      next: { requeueAfterMs: DRAIN_MS - 20_000 },
    });
    expect(condition(plan, "Progressing")).toMatchObject({
      reason: "Draining",
      message: "shards 2, 3 keep running until one tick interval has passed since the commit",
    });
  });

  it("while draining, does not bring back a removed shard that is already gone", () => {
    const set = shardSet({ shards: 2 }, { shards: 2, reshard: draining });
    const plan = planReconcile(input(set, { shards: [0, 1, 2], database: db(2), now: 20_000 }));
    expect(plan.step).toBe("drain");
    expect(plan.apply).toEqual([]);
  });

  it("after the drain (or on resume after a crash before or after the delete), deletes the removed shards", () => {
    const set = shardSet({ shards: 2 }, { shards: 2, reshard: draining });
    const plan = planReconcile(input(set, { shards: [0, 1, 2, 3], database: db(2), now: DRAIN_MS }));
    expect(plan).toMatchObject({
      step: "removeShards",
      delete: ["alerts-shard-2", "alerts-shard-3"],
      next: "done",
    });
    expect(reasons(plan)).toEqual(["ShardRemoved", "ShardRemoved", "Resharded"]);
    expect(plan.status?.lastReshard).toMatchObject({ from: 4, to: 2, moved: 4, durationSeconds: 75 });
    expect(plan.status?.readyShards).toBe(2);

    const afterDelete = planReconcile(input(set, { shards: [0, 1], database: db(2), now: DRAIN_MS }));
    expect(afterDelete).toMatchObject({ step: "removeShards", delete: [] });
    expect(reasons(afterDelete)).toEqual(["Resharded"]);
  });
});

describe("planReconcile: a new set", () => {
  it("places its tenants on the first shards only once they are available, and never places before a commit", () => {
    const set = shardSet({ shards: 3 });
    const first = planReconcile(input(set, { database: db(null, 5, 0) }));
    expect(first.step).toBe("awaitShards");
    expect(first.tenantStep).toBeUndefined(); // no committed shard yet: nobody to place tenants on
    expect(names(first.apply)).toEqual(["alerts-shard-0", "alerts-shard-1", "alerts-shard-2"]);
    expect(first.status?.reshard).toMatchObject({ phase: "ScalingUp", from: 0, to: 3 });
    expect(condition(first, "Ready")).toMatchObject({ status: "False", message: "0/0 shards available" });

    const set2 = shardSet({ shards: 3 }, { shards: 0, reshard: reshard("MovingTenants", 0, 3) });
    const recorded = planReconcile(
      input(set2, { shards: [0, 1, 2], database: db(3), done: commit({ tenants: 5 }) }),
    );
    expect(recorded.events.map((e) => e.message)).toEqual(["Placed 5 tenants on 3 shards, epoch 2"]);
  });
});

describe("planReconcile: run to a fixed point", () => {
  /**
   * Runs the planner the way the executor does, against an in-memory world where applied
   * Deployments become available at once and the database commits whatever it is asked.
   */
  function run(set: EvaluatorShardSet, shards: number[], database: AssignmentSnapshot, now = 0): string[] {
    const steps: string[] = [];
    let i = input(set, { shards, database, now });
    for (let n = 0; n < 20; n++) {
      const plan = planReconcile(i);
      steps.push(plan.step);
      let deployments = i.deployments.filter((d) => !plan.delete.includes(d.metadata!.name!));
      for (const d of plan.apply) {
        const live = { ...d, metadata: { ...d.metadata, generation: 1 }, status: deployment(set, 0).status! };
        deployments = [...deployments.filter((x) => x.metadata!.name !== d.metadata!.name), live];
      }
      let done = i.tenantStepDone;
      let db2 = i.database;
      if (plan.tenantStep?.kind === "commit") {
        done = commit({ shardCount: plan.tenantStep.shardCount });
        db2 = { ...db2!, shardCount: plan.tenantStep.shardCount };
      } else if (plan.tenantStep) done = { kind: "placed", placed: 0 };
      const written = plan.status ? { ...i.set, status: plan.status } : i.set;
      i = {
        ...i,
        set: written,
        deployments,
        applied: appliedFor(deployments),
        database: db2,
        tenantStepDone: done,
      };
      if (plan.next !== "replan" && !plan.tenantStep) return steps;
    }
    throw new Error(`no fixed point: ${steps.join(" → ")}`);
  }

  it.each([
    ["a settled set", 2, [0, 1], 2, ["settled", "settled"]],
    [
      "a growth whose shards come up at once",
      2,
      [0, 1],
      4,
      ["awaitShards", "startMoving", "commitMoves", "recordCommit", "removeShards"],
    ],
    ["a shrink", 4, [0, 1, 2, 3], 2, ["startMoving", "commitMoves", "recordCommit", "drain"]],
  ] as const)("%s", (_, committed, shards, target, steps) => {
    const set = shardSet({ shards: target }, { shards: committed });
    expect(run(set, [...shards], db(committed))).toEqual(steps);
  });

  it("a growth, polled again once the new shards are available, commits and finishes in one reconcile", () => {
    const set = shardSet({ shards: 4 }, { shards: 2, reshard: reshard("ScalingUp", 2, 4) });
    expect(run(set, [0, 1, 2, 3], db(2))).toEqual([
      "startMoving",
      "commitMoves",
      "recordCommit",
      "removeShards",
    ]);
  });
});

describe("planFailure", () => {
  it("reports the failure as Degraded with its reason, as a Warning Event, and keeps the rest of the status", () => {
    const set = shardSet({ shards: 2 }, { shards: 2, epoch: 4, reshard: reshard("Draining", 3, 2) });
    const plan = planFailure(
      { set, deployments: [deployment(set, 0), deployment(set, 1)], target: 2, now: T0 },
      { reason: "DatabaseUnavailable", message: "database unreachable: ECONNREFUSED" },
    );
    expect(plan.event).toEqual({
      type: "Warning",
      reason: "DatabaseUnavailable",
      message: "database unreachable: ECONNREFUSED",
    });
    expect(condition(plan, "Degraded")).toMatchObject({ status: "True", reason: "DatabaseUnavailable" });
    expect(condition(plan, "Ready")).toMatchObject({ status: "True", message: "2/2 shards available" });
    expect(plan.status).toMatchObject({ shards: 2, epoch: 4, reshard: { phase: "Draining" } });
  });

  it("writes nothing when the same failure is already reported", () => {
    const set = shardSet({ shards: 1 }, { shards: 1 });
    const failure = { reason: "ApplyFailed", message: "forbidden" };
    const first = planFailure({ set, deployments: [], target: 1, now: T0 }, failure);
    const again = planFailure(
      { set: { ...set, status: first.status! }, deployments: [], target: 1, now: T0 + 1000 },
      failure,
    );
    expect(again.status).toBeUndefined();
    expect(again.event.reason).toBe("ApplyFailed");
  });
});

describe("planReconcile: the autoscaler's part", () => {
  const readings = {
    status: {
      recommendedShards: 4,
      metrics: { queueDepth: 12, tickLatencyP95Seconds: 41, readAt: at(0) },
      autoscaler: { reason: "tick p95 41s > target 30s", limits: [], recommendations: [], changes: [] },
    },
    conditions: [
      { type: "MetricsAvailable", status: "True" as const, reason: "MetricsOk", message: "ok" },
      { type: "ScalingLimited", status: "False" as const, reason: "WithinBounds", message: "" },
    ],
    reason: "tick p95 41s > target 30s (×1.37): 3 → 4 shards",
  };

  it("reports the readings and conditions, tells the reason in the start Event, and decides again every interval", () => {
    const set = shardSet({ shards: 3 }, { shards: 3 });
    const plan = planReconcile({ ...input(set, { shards: [0, 1, 2], target: 4 }), autoscale: readings });
    expect(plan.step).toBe("awaitShards");
    expect(plan.status).toMatchObject(readings.status);
    expect(condition(plan, "MetricsAvailable")).toMatchObject({ status: "True", reason: "MetricsOk" });
    expect(plan.events[0]?.message).toBe(
      "Resharding from 3 to 4 shards: tick p95 41s > target 30s (×1.37): 3 → 4 shards",
    );
    const settled = planReconcile({ ...input(set, { shards: [0, 1, 2], target: 3 }), autoscale: readings });
    expect(settled.next).toEqual({ requeueAfterMs: CONFIG.autoscaleIntervalMs });
  });

  it("in mode Off removes the autoscaler's fields and conditions instead of leaving them stale", () => {
    const stale = planReconcile({
      ...input(shardSet({ shards: 3 }, { shards: 3 }), { shards: [0, 1, 2] }),
      autoscale: readings,
    });
    const set = shardSet({ shards: 3 }, stale.status);
    const off = planReconcile({
      ...input(set, { shards: [0, 1, 2] }),
      autoscale: {
        status: { recommendedShards: undefined, metrics: undefined, autoscaler: undefined },
        conditions: [],
      },
    });
    expect(off.status?.recommendedShards).toBeUndefined();
    expect(off.status?.metrics).toBeUndefined();
    expect(off.status?.autoscaler).toBeUndefined();
    expect(off.status?.conditions?.map((c) => c.type).sort()).toEqual(["Degraded", "Progressing", "Ready"]);
    expect(off.next).toBe("done");
  });
});

describe("planReconcile: the image policy (--allowed-image-prefixes)", () => {
  it.each([
    // An empty list allows every image.
    ["anything:1", [], true],
    // A prefix ending in "/", ":" or "@" allows whatever starts with it.
    ["registry.example.com/team/evaluator:1.2", ["registry.example.com/team/"], true],
    ["registry.example.com/team/sub/evaluator:1", ["registry.example.com/team/"], true],
    ["registry.example.com/team-evil/evaluator:1", ["registry.example.com/team/"], false],
    ["registry.example.com/team/evaluator:1.2.3", ["registry.example.com/team/evaluator:"], true],
    ["registry.example.com/team/evaluator@sha256:0a1b", ["registry.example.com/team/evaluator@"], true],
    // Any other prefix holding a "/" allows the repository itself, a path below it, a tag, a digest...
    ["registry.example.com/team/evaluator:1.2", ["registry.example.com/team"], true],
    ["registry.example.com/team:1", ["registry.example.com/team"], true],
    ["registry.example.com/team/evaluator", ["registry.example.com/team/evaluator"], true],
    ["registry.example.com/team/evaluator:1.2", ["registry.example.com/team/evaluator"], true],
    ["registry.example.com/team/evaluator@sha256:0a1b", ["registry.example.com/team/evaluator"], true],
    [
      "registry.example.com/team/evaluator:1.2@sha256:0a1b",
      ["registry.example.com/team/evaluator:1.2"],
      true,
    ],
    // ...never a sibling that merely shares the characters.
    ["registry.example.com/team-evil/evaluator:1", ["registry.example.com/team"], false],
    ["registry.example.com/teamevil:1", ["registry.example.com/team"], false],
    ["registry.example.com/team/evaluator-evil:1", ["registry.example.com/team/evaluator"], false],
    ["registry.example.com/team/evaluator:1.2.3", ["registry.example.com/team/evaluator:1.2"], false],
    ["registry.example.com/team/evaluator:1.2-evil", ["registry.example.com/team/evaluator:1.2"], false],
    // A registry host alone allows its repositories only: not another host, port or Docker Hub image.
    ["registry.example.com/team/evaluator:1", ["registry.example.com"], true],
    ["registry.example.com.evil.io/team/evaluator:1", ["registry.example.com"], false],
    ["registry.example.com:5000/team/evaluator:1", ["registry.example.com"], false],
    ["registry.example.com:5000/team/evaluator:1", ["registry.example.com:5000"], true],
    ["registry.example.com:1", ["registry.example.com"], false],
    ["registry.example.com", ["registry.example.com"], false],
    // The image as written: no registry is added, so a short name matches only a short prefix.
    ["evaluator:1", ["docker.io/library/"], false],
    ["docker.io/library/evaluator:1", ["docker.io/library/"], true],
    // Several prefixes: any one of them.
    ["ghcr.io/example/evaluator:1", ["registry.example.com/team/", "ghcr.io/example/"], true],
    ["quay.io/example/evaluator:1", ["registry.example.com/team/", "ghcr.io/example/"], false],
  ] as const)("%s under %j: %s", (image, prefixes, allowed) => {
    expect(imageAllowed(image, prefixes)).toBe(allowed);
  });

  const policy: ReconcileConfig = { ...CONFIG, allowedImagePrefixes: ["registry.example.com/team/"] };
  const refused = (p: ReconcilePlan) => p.step === "refused";
  const imageMessage =
    'spec.evaluator.image "evaluator:1" does not start with an allowed prefix (registry.example.com/team/): ' +
    "nothing is applied until it does";

  it("refuses a new set with another image: nothing applied or moved, Ready False and Degraded True, one Warning Event", () => {
    const set = shardSet({ shards: 3 });
    const plan = planReconcile({ ...input(set, { database: db(null, 5, 0) }), config: policy });
    expect(plan).toMatchObject({ step: "refused", apply: [], delete: [], next: "done" });
    expect(plan.tenantStep).toBeUndefined();
    expect(plan.events).toEqual([{ type: "Warning", reason: "ImageNotAllowed", message: imageMessage }]);
    expect(condition(plan, "Ready")).toMatchObject({
      status: "False",
      reason: "ImageNotAllowed",
      message: imageMessage,
    });
    expect(condition(plan, "Degraded")).toMatchObject({ status: "True", reason: "ImageNotAllowed" });
    expect(plan.status?.reshard).toBeUndefined(); // no reshard started

    // Planned again with the status written: no second Event, nothing to write.
    const again = planReconcile({
      ...input(shardSet({ shards: 3 }, plan.status), { database: db(null, 5, 0), now: 30_000 }),
      config: policy,
    });
    expect(again).toMatchObject({ step: "refused", apply: [], delete: [], events: [] });
    expect(again.status).toBeUndefined();
  });

  it("leaves a running set's shards as they are (no update, no delete) and its reshard where it was", () => {
    const inFlight = reshard("ScalingUp", 2, 4);
    const set = shardSet({ shards: 4 }, { shards: 2, desiredShards: 4, reshard: inFlight });
    const i = input(set, { shards: [0, 1, 2, 9], database: db(2) });
    // The image changed since the shards were applied: an allowed image would re-apply all of them.
    const changed = shardSet(
      { ...set.spec, evaluator: { ...set.spec.evaluator, image: "evaluator:2" } },
      set.status,
    );
    expect(names(planReconcile({ ...i, set: changed }).apply)).toHaveLength(4);
    const plan = planReconcile({ ...i, set: changed, config: policy });
    expect(plan).toMatchObject({ step: "refused", apply: [], delete: [] });
    expect(plan.tenantStep).toBeUndefined();
    expect(plan.status).toMatchObject({ shards: 2, desiredShards: 4, reshard: inFlight, readyShards: 4 });
    expect(condition(plan, "Ready")).toMatchObject({ status: "False", reason: "ImageNotAllowed" });
    expect(reasons(plan)).toEqual(["ImageNotAllowed"]);
  });

  it("refuses a paused set too, and tells a new image in a new Event", () => {
    const first = planReconcile({ ...input(shardSet({ shards: 1, paused: true })), config: policy });
    expect(refused(first)).toBe(true);
    const set = shardSet({ shards: 1, paused: true }, first.status);
    const other = shardSet(
      { ...set.spec, evaluator: { ...set.spec.evaluator, image: "evaluator:2" } },
      first.status,
    );
    expect(planReconcile({ ...input(set), config: policy }).events).toEqual([]);
    expect(planReconcile({ ...input(other), config: policy }).events.map((e) => e.message)).toEqual([
      imageMessage.replace("evaluator:1", "evaluator:2"),
    ]);
  });

  it("runs an allowed image as usual, and clears the refusal once the image is fixed", () => {
    const bad = planReconcile({ ...input(shardSet({ shards: 2 })), config: policy });
    const fixed = shardSet({ shards: 2 }, bad.status);
    fixed.spec.evaluator.image = "registry.example.com/team/evaluator:1";
    const plan = planReconcile({ ...input(fixed), config: policy });
    expect(plan.step).toBe("awaitShards");
    expect(names(plan.apply)).toEqual(["alerts-shard-0", "alerts-shard-1"]);
    expect(condition(plan, "Degraded")).toMatchObject({ status: "False", reason: "AsExpected" });
    expect(condition(plan, "Ready")?.reason).not.toBe("ImageNotAllowed");
  });
});
