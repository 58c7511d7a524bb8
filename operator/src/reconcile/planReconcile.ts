/**
 * What one reconcile of an EvaluatorShardSet does, decided in one pure function: no I/O, no clock,
 * no randomness. The executor (reconcileShardSet.ts) observes the world, calls `planReconcile`,
 * performs the plan and, when the plan says so, observes again and plans the next step.
 *
 * A change of shard count is a reshard N→N′ whose phase lives in status.reshard, so a restarted
 * operator resumes it (DESIGN §4). The steps, in the order a reshard passes them:
 *
 * | step           | when                                            | does                                              |
 * |----------------|-------------------------------------------------|---------------------------------------------------|
 * | `refused`      | the image is not allowed (--allowed-image-prefixes) | status only: nothing applied, deleted or moved; Ready False, Degraded True, one Warning Event |
 * | `paused`       | spec.paused                                     | status only: no Deployment, no tenant touched     |
 * | `settled`      | no reshard, committed count = target            | apply shards [0, N), delete the rest, place new tenants |
 * | `awaitShards`  | ScalingUp, a new shard is not available yet     | apply [0, max(N, N′)), place new tenants on the N running shards, come back in 5 s (Degraded after the scale-up timeout) |
 * | `startMoving`  | ScalingUp, every new shard is available         | persist phase MovingTenants                       |
 * | `commitMoves`  | MovingTenants                                   | one transaction: rewrite shard_index, bump the epoch |
 * | `recordCommit` | MovingTenants, the commit has run               | persist phase Draining with the commit's figures  |
 * | `drain`        | Draining a shrink, within one tick of the commit | removed shards keep running; come back at the end |
 * | `removeShards` | Draining, the drain is over (or a growth)       | delete shards ≥ N′, record lastReshard, clear the reshard |
 *
 * A plan with a `tenantStep` is provisional: the executor runs the step, reads the database again
 * and plans again (its status would otherwise report figures from before the step).
 */
import type * as k8s from "@kubernetes/client-node";
import {
  ANNOTATIONS,
  DEFAULTS,
  type EvaluatorShardSet,
  type EvaluatorShardSetStatus,
  type ReshardProgress,
} from "../api/types.ts";
import type { AssignmentSnapshot, CommitResult } from "../assignments/tenantAssignments.ts";
import type { AutoscalePlan } from "../autoscale/planAutoscale.ts";
import { buildShardDeployment, type ShardDeploymentConfig } from "../desired/buildShardDeployment.ts";
import { stableStringify } from "../desired/hash.ts";
import { shardIndexOf, shardSetSelector } from "../desired/names.ts";
import { CONDITION, EVENT_REASON, findCondition, REASON, setCondition } from "../status/conditions.ts";
import { type ConditionNote, deriveShardConditions, isAvailable } from "../status/shardConditions.ts";
import { imageAllowed } from "./imagePolicy.ts";

export interface ReconcileConfig {
  readonly shardDeployment: ShardDeploymentConfig;
  /** After this long waiting for new shards to become available, Degraded turns True (the wait goes on). */
  readonly scaleUpTimeoutMs: number;
  /** Extra time removed shards keep running after the drain interval (one tick), for clock skew. */
  readonly drainSlackMs: number;
  /** How often a settled set is reconciled again (assigns tenants created since the last reshard). */
  readonly resyncMs: number;
  /** How often a set in autoscaling mode Recommend or Auto reads its metrics and decides again. */
  readonly autoscaleIntervalMs: number;
  /**
   * Prefixes the evaluator image must start with (imagePolicy.ts); a set with another image is
   * refused. Undefined or empty: every image is allowed.
   */
  readonly allowedImagePrefixes?: readonly string[];
}

/** How often a reshard waiting for its new shards looks again. */
export const SCALE_UP_POLL_MS = 5_000;

/** What the operator last applied to one Deployment: the input hash and the generation it produced. */
export interface AppliedRecord {
  readonly hash: string;
  readonly generation: number;
}

/** The outcome of a tenant step this reconcile already ran. */
export type TenantStepOutcome =
  | { readonly kind: "placed"; readonly placed: number }
  | { readonly kind: "committed"; readonly result: CommitResult };

export interface ReconcileInput {
  /** The set, with the status our last write left (not an older one the cache may still hold). */
  readonly set: EvaluatorShardSet;
  /** The Deployments the set controls (owner reference), including what this reconcile wrote. */
  readonly deployments: readonly k8s.V1Deployment[];
  /** What the operator last applied, by `namespace/name` (skips no-op writes). */
  readonly applied: ReadonlyMap<string, AppliedRecord>;
  /** The set's tenant assignments in PostgreSQL; undefined when the operator runs without a database. */
  readonly database?: AssignmentSnapshot | undefined;
  /** The tenant step this reconcile already ran, if any. */
  readonly tenantStepDone?: TenantStepOutcome | undefined;
  /** The shard count the set should run (planAutoscale: spec.shards, or the autoscaler's decision in Auto). */
  readonly target: number;
  /**
   * The autoscaler's status fields and conditions for this reconcile (planAutoscale), merged into
   * every status this plan writes, and why it chose `target` (told in the reshard's start Event).
   */
  readonly autoscale?: Pick<AutoscalePlan, "status" | "conditions"> & {
    readonly reason?: string | undefined;
  };
  readonly now: number;
  readonly config: ReconcileConfig;
}

export type ReconcileStep =
  | "refused"
  | "paused"
  | "settled"
  | "awaitShards"
  | "startMoving"
  | "commitMoves"
  | "recordCommit"
  | "drain"
  | "removeShards";

/** A database step: place tenants created since the last reshard, or commit the reshard's moves. */
export type TenantStep =
  | { readonly kind: "placeNew" }
  | { readonly kind: "commit"; readonly shardCount: number };

export interface PlannedEvent {
  readonly type: "Normal" | "Warning";
  readonly reason: string;
  readonly message: string;
}

/** What to do; the executor performs it in this order: apply, delete, tenant step, status, events. */
export interface ReconcilePlan {
  readonly step: ReconcileStep;
  /** Desired Deployments whose inputs changed since the operator last applied them (server-side apply). */
  readonly apply: readonly k8s.V1Deployment[];
  /** Names of owned Deployments to delete. */
  readonly delete: readonly string[];
  /** When set, run it, read the database again and plan again; `status` is then undefined. */
  readonly tenantStep?: TenantStep;
  /** The status to write; undefined when nothing changed (or the plan is provisional). */
  readonly status?: EvaluatorShardSetStatus;
  readonly events: readonly PlannedEvent[];
  /** Tenants moved by the commit this plan records (for the operator's metric). */
  readonly tenantsMoved?: number;
  /** Plan again after this one (its writes are durable), come back later, or done until the next event. */
  readonly next: "replan" | { readonly requeueAfterMs: number } | "done";
}

/**
 * Decides the next step of converging one EvaluatorShardSet (see the table above). Called again
 * after every `next: "replan"`, so each plan covers exactly one durable step.
 */
export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const plan = planStep(input);
  // An autoscaled set decides again every interval, whatever the step waits for otherwise.
  if (!input.autoscale?.conditions.length || plan.next === "replan") return plan;
  const every = input.config.autoscaleIntervalMs;
  const next = plan.next === "done" ? every : Math.min(plan.next.requeueAfterMs, every);
  return { ...plan, next: { requeueAfterMs: next } };
}

/**
 * Why the operator will not run this set as specified, or undefined when it will: its evaluator
 * image does not start with an allowed prefix. The executor reads neither the set's database nor
 * its metrics then (both would use Secrets the set names).
 */
export function refusalOf(
  set: EvaluatorShardSet,
  config: Pick<ReconcileConfig, "allowedImagePrefixes">,
): ConditionNote | undefined {
  const prefixes = config.allowedImagePrefixes ?? [];
  const image = set.spec.evaluator.image;
  if (imageAllowed(image, prefixes)) return undefined;
  return {
    reason: REASON.imageNotAllowed,
    message:
      `spec.evaluator.image "${image}" does not start with an allowed prefix (${prefixes.join(", ")}): ` +
      "nothing is applied until it does",
  };
}

function planStep(input: ReconcileInput): ReconcilePlan {
  const { set, now, target, config } = input;
  const nowIso = new Date(now).toISOString();
  const refusal = refusalOf(set, config);
  if (refusal) return planRefusal(input, refusal, nowIso);
  const status = baseStatus(set, target, input.autoscale, nowIso);
  const snapshot = input.database;
  if (snapshot) {
    status.epoch = snapshot.epoch;
    status.tenants = snapshot.tenants;
  }
  // The database is the truth about tenants; status is only its report (it may trail a crash).
  const committed = snapshot ? (snapshot.shardCount ?? 0) : (status.shards ?? 0);
  // Tenants created since the last reshard are placed on the committed shards, once per reconcile.
  const placeNew = snapshot !== undefined && committed > 0 && input.tenantStepDone === undefined;
  const ctx: Ctx = { input, status, nowIso };

  if (set.spec.paused) {
    return {
      step: "paused",
      apply: [],
      delete: [],
      events: [],
      ...settle(ctx, committed, {
        progressing: {
          reason: REASON.paused,
          message: "spec.paused is true: no scaling and no tenant moves",
        },
      }),
      next: "done",
    };
  }

  let reshard = status.reshard;
  const events: PlannedEvent[] = [];
  if (!reshard && committed !== target) {
    reshard = { phase: "ScalingUp", from: committed, to: target, startedAt: nowIso };
    events.push({
      type: "Normal",
      reason: committed < target ? EVENT_REASON.scalingUp : EVENT_REASON.scalingDown,
      message: `Resharding from ${committed} to ${target} shards${input.autoscale?.reason ? `: ${input.autoscale.reason}` : ""}`,
    });
  } else if (reshard?.phase === "ScalingUp" && reshard.to !== target) {
    // Nothing is committed yet: aim the reshard at the new target instead.
    reshard = { ...reshard, to: target };
  }

  if (!reshard) {
    const writes = shardWrites(input, committed, committed);
    if (placeNew) return { step: "settled", ...writes, tenantStep: { kind: "placeNew" }, next: "replan" };
    return {
      step: "settled",
      ...writes,
      ...settle(ctx, committed, { deleted: writes.delete }),
      next: snapshot ? { requeueAfterMs: config.resyncMs } : "done",
    };
  }

  const widest = Math.max(reshard.from, reshard.to);
  switch (reshard.phase) {
    case "ScalingUp": {
      const writes = shardWrites(input, widest, widest);
      const notReady = range(reshard.to)
        .filter((i) => i >= reshard.from)
        .filter((i) => !isAvailable(deploymentAt(input.deployments, i)));
      if (notReady.length === 0) {
        return {
          step: "startMoving",
          ...writes,
          events: [...events, ...writes.events],
          ...persist(ctx, committed, { ...reshard, phase: "MovingTenants" }, writes.delete),
          next: "replan",
        };
      }
      // The committed shards run meanwhile: tenants created since are placed on them now, not
      // left unevaluated until the new shards come up (which may take until someone fixes them).
      if (placeNew)
        return { step: "awaitShards", ...writes, tenantStep: { kind: "placeNew" }, next: "replan" };
      const waited = now - Date.parse(reshard.startedAt);
      const message = `waiting for shards ${notReady.join(", ")} to become available (${Math.round(waited / 1000)}s)`;
      status.reshard = reshard;
      return {
        step: "awaitShards",
        ...writes,
        events: [...events, ...writes.events],
        ...settle(
          ctx,
          committed,
          waited > config.scaleUpTimeoutMs
            ? { degraded: { reason: REASON.shardsNotReady, message }, deleted: writes.delete }
            : { progressing: { reason: REASON.scalingUp, message }, deleted: writes.delete },
        ),
        next: { requeueAfterMs: SCALE_UP_POLL_MS },
      };
    }

    case "MovingTenants": {
      const writes = shardWrites(input, widest, widest);
      const done = input.tenantStepDone;
      if (done?.kind !== "committed") {
        return {
          step: "commitMoves",
          ...writes,
          tenantStep: { kind: "commit", shardCount: reshard.to },
          next: "replan",
        };
      }
      const result = done.result;
      const resumed = result.alreadyCommitted;
      status.epoch = result.epoch;
      status.tenants = result.tenants;
      const draining: ReshardProgress = {
        ...reshard,
        phase: "Draining",
        epoch: result.epoch,
        committedAt: nowIso,
        // A resumed commit finds nothing left to move; keep the figures of the real one.
        moved: resumed ? (reshard.moved ?? 0) : result.moved,
        movedLoad: resumed ? (reshard.movedLoad ?? 0) : result.movedLoad,
        minimumMovedLoad: resumed ? (reshard.minimumMovedLoad ?? 0) : result.minimumMovedLoad,
      };
      if (!resumed) {
        writes.events.push({
          type: "Normal",
          reason: EVENT_REASON.movingTenants,
          message:
            reshard.from === 0
              ? `Placed ${result.tenants} tenants on ${reshard.to} shards, epoch ${result.epoch}`
              : `Moved ${result.moved} tenants (load ${round(result.movedLoad)}) to ${reshard.to} shards, epoch ${result.epoch}`,
        });
      }
      return {
        step: "recordCommit",
        ...writes,
        ...persist(ctx, reshard.to, draining, writes.delete),
        ...(resumed ? {} : { tenantsMoved: result.moved }),
        next: "replan",
      };
    }

    case "Draining": {
      const drainUntil = Date.parse(reshard.committedAt ?? nowIso) + tickMsOf(set) + config.drainSlackMs;
      if (reshard.to < reshard.from && now < drainUntil) {
        // While draining, removed shards that still run keep running, but one that is gone (deleted
        // before a crash, or by hand) is not brought back: its tenants already have a new owner.
        const writes = shardWrites(input, reshard.to, widest);
        const message = `shards ${range(reshard.from)
          .filter((i) => i >= reshard.to)
          .join(", ")} keep running until one tick interval has passed since the commit`;
        status.reshard = reshard;
        return {
          step: "drain",
          ...writes,
          ...settle(ctx, reshard.to, {
            progressing: { reason: REASON.draining, message },
            deleted: writes.delete,
          }),
          next: { requeueAfterMs: drainUntil - now },
        };
      }
      const writes = shardWrites(input, reshard.to, reshard.to);
      status.lastReshard = {
        from: reshard.from,
        to: reshard.to,
        moved: reshard.moved ?? 0,
        movedLoad: reshard.movedLoad ?? 0,
        minimumMovedLoad: reshard.minimumMovedLoad ?? 0,
        durationSeconds: Math.max(0, (now - Date.parse(reshard.startedAt)) / 1000),
        finishedAt: nowIso,
      };
      status.lastScaleTime = nowIso;
      delete status.reshard;
      writes.events.push({
        type: "Normal",
        reason: EVENT_REASON.resharded,
        message: `Now running ${reshard.to} shards (from ${reshard.from})`,
      });
      return {
        step: "removeShards",
        ...writes,
        ...settle(ctx, reshard.to, { deleted: writes.delete }),
        next: "done",
      };
    }
  }
}

/**
 * The status to report when a reconcile failed: Degraded with the failure's reason, the rest as
 * last written. Ready and Progressing are derived from the Deployments as usual.
 */
export function planFailure(
  input: Pick<ReconcileInput, "set" | "deployments" | "target" | "now">,
  failure: ConditionNote,
): { status?: EvaluatorShardSetStatus; event: PlannedEvent } {
  const status = baseStatus(input.set, input.target, undefined, "");
  const ctx: Ctx = { input, status, nowIso: new Date(input.now).toISOString() };
  return {
    ...settle(ctx, status.shards ?? 0, { degraded: failure }),
    event: { type: "Warning", ...failure },
  };
}

/**
 * A set the operator refuses to run as specified: nothing is applied, deleted or moved, so shards
 * applied before keep running as they are, and a reshard in flight waits in status until the spec
 * (or the policy) is fixed. Ready turns False and Degraded True with the refusal; the Warning
 * Event is recorded once, not again while the same refusal stands.
 */
function planRefusal(input: ReconcileInput, refusal: ConditionNote, nowIso: string): ReconcilePlan {
  const { set } = input;
  // Nothing was decided: the count and the autoscaler's fields stay as last reported.
  const status = baseStatus(set, set.status?.desiredShards ?? input.target, undefined, nowIso);
  const ctx: Ctx = { input, status, nowIso };
  const stored = findCondition(set.status?.conditions, CONDITION.degraded);
  const told =
    stored?.status === "True" && stored.reason === refusal.reason && stored.message === refusal.message;
  return {
    step: "refused",
    apply: [],
    delete: [],
    events: told ? [] : [{ type: "Warning", ...refusal }],
    ...settle(ctx, status.shards ?? 0, { degraded: refusal, notReady: refusal }),
    next: "done",
  };
}

interface Ctx {
  readonly input: Pick<ReconcileInput, "set" | "deployments">;
  /** The status being planned (a copy; mutated freely). */
  readonly status: EvaluatorShardSetStatus;
  readonly nowIso: string;
}

/** The set's status with the fields every reconcile refreshes, the autoscaler's among them. */
function baseStatus(
  set: EvaluatorShardSet,
  target: number,
  autoscale: ReconcileInput["autoscale"],
  nowIso: string,
): EvaluatorShardSetStatus {
  const status: EvaluatorShardSetStatus = structuredClone(set.status ?? {});
  status.selector = shardSetSelector(set.metadata.name);
  status.desiredShards = target;
  if (set.metadata.generation !== undefined) status.observedGeneration = set.metadata.generation;
  if (!autoscale) return status;
  for (const [key, value] of Object.entries(autoscale.status) as [keyof typeof autoscale.status, unknown][]) {
    if (value === undefined) delete status[key];
    else (status as Record<string, unknown>)[key] = structuredClone(value);
  }
  // Mode Off: the autoscaler's conditions go (it is not running), rather than linger as stale.
  if (autoscale.conditions.length === 0) {
    status.conditions = status.conditions?.filter(
      (c) => c.type !== CONDITION.metricsAvailable && c.type !== CONDITION.scalingLimited,
    );
  }
  for (const c of autoscale.conditions) {
    status.conditions = setCondition(status.conditions, c, nowIso, set.metadata.generation);
  }
  return status;
}

/**
 * Fills shards, readyShards and conditions; returns the status only if it differs from the stored
 * one. `notReady` turns Ready False whatever the shards (the set does not run as specified).
 */
function settle(
  ctx: Ctx,
  shards: number,
  notes: {
    progressing?: ConditionNote;
    degraded?: ConditionNote;
    notReady?: ConditionNote;
    deleted?: readonly string[];
  },
): { status?: EvaluatorShardSetStatus } {
  const { input, status } = ctx;
  const deleted = new Set(notes.deleted ?? []);
  const derived = deriveShardConditions({
    previous: status.conditions,
    shards,
    deployments: input.deployments.filter((d) => !deleted.has(d.metadata?.name ?? "")),
    progressing: notes.progressing,
    degraded: notes.degraded,
    nowIso: ctx.nowIso,
    generation: input.set.metadata.generation,
  });
  status.shards = shards;
  status.readyShards = derived.readyShards;
  status.conditions = notes.notReady
    ? setCondition(
        derived.conditions,
        { type: CONDITION.ready, status: "False", ...notes.notReady },
        ctx.nowIso,
        input.set.metadata.generation,
      )
    : derived.conditions;
  return stableStringify(input.set.status ?? {}) === stableStringify(status) ? {} : { status };
}

/** A reshard phase, made durable before the next step runs. */
function persist(
  ctx: Ctx,
  shards: number,
  reshard: ReshardProgress,
  deleted: readonly string[],
): { status?: EvaluatorShardSetStatus } {
  ctx.status.reshard = reshard;
  return settle(ctx, shards, {
    progressing: {
      reason: phaseReason(reshard),
      message: `${reshard.from} → ${reshard.to} shards: ${reshard.phase}`,
    },
    deleted,
  });
}

/**
 * Shards [0, applyCount) as built, skipping those already as desired, and every owned shard at
 * index ≥ keep (or without a valid index) to delete.
 */
function shardWrites(
  input: ReconcileInput,
  applyCount: number,
  keep: number,
): { apply: k8s.V1Deployment[]; delete: string[]; events: PlannedEvent[] } {
  const { set, deployments, applied, config } = input;
  const apply: k8s.V1Deployment[] = [];
  for (const i of range(applyCount)) {
    const desired = buildShardDeployment(set, i, config.shardDeployment);
    const name = desired.metadata!.name!;
    const hash = desired.metadata!.annotations![ANNOTATIONS.inputHash]!;
    const live = deployments.find((d) => d.metadata?.name === name);
    const last = applied.get(`${set.metadata.namespace}/${name}`);
    // Skip no-op writes: same inputs, and nobody changed the spec since our apply (generation).
    const unchanged =
      live?.metadata?.annotations?.[ANNOTATIONS.inputHash] === hash &&
      last?.hash === hash &&
      last.generation === live.metadata?.generation;
    if (!unchanged) apply.push(desired);
  }
  const remove = deployments
    .filter((d) => {
      const i = shardIndexOf(d.metadata?.labels);
      return i === undefined || i >= keep;
    })
    .map((d) => d.metadata!.name!);
  return {
    apply,
    delete: remove,
    events: remove.map((name) => ({
      type: "Normal" as const,
      reason: EVENT_REASON.shardRemoved,
      message: `Deleted Deployment ${name}`,
    })),
  };
}

function deploymentAt(deployments: readonly k8s.V1Deployment[], i: number): k8s.V1Deployment | undefined {
  return deployments.find((d) => shardIndexOf(d.metadata?.labels) === i);
}

function tickMsOf(set: EvaluatorShardSet): number {
  return (set.spec.evaluator.tickIntervalSeconds ?? DEFAULTS.tickIntervalSeconds) * 1000;
}

function phaseReason(r: ReshardProgress): string {
  return r.phase === "ScalingUp"
    ? REASON.scalingUp
    : r.phase === "MovingTenants"
      ? REASON.movingTenants
      : REASON.draining;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
