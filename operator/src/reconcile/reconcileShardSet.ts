/**
 * The executor of the one reconcile: observes an EvaluatorShardSet, its Deployments and its
 * database, asks `planReconcile` (pure) what to do, performs the plan, and repeats while the plan
 * says `replan`. Every decision is in planReconcile.ts; this file only reads and writes.
 */
import type * as k8s from "@kubernetes/client-node";
import { errorMessage, statusCode } from "../../../runtime/errors.ts";
import { DatabaseUnavailableError } from "../api/errors.ts";
import type { HandlerResult } from "../api/reconcileResult.ts";
import { ANNOTATIONS, DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";
import type { CommitResult, TenantAssignments } from "../assignments/tenantAssignments.ts";
import { planAutoscale, readsMetrics } from "../autoscale/planAutoscale.ts";
import type { AutoscaleDecision, SignalReadings } from "../autoscale/types.ts";
import { shardIndexOf } from "../desired/names.ts";
import type { KubeWriter } from "../kube/kubeWriter.ts";
import type { Logger } from "../log.ts";
import { EVENT_REASON } from "../status/conditions.ts";
import {
  type AppliedRecord,
  type PlannedEvent,
  planFailure,
  planReconcile,
  type ReconcileConfig,
  type ReconcilePlan,
  refusalOf,
  type TenantStepOutcome,
} from "./planReconcile.ts";

export type { ReconcileConfig } from "./planReconcile.ts";

/**
 * Points where a test can make the operator crash, one on each side of every durable reshard step
 * (the e2e crash tests kill the process there and check that a new one resumes).
 */
export type FaultPoint =
  | "after-scale-up"
  | "before-commit"
  | "after-commit"
  | "before-delete"
  | "after-delete";

export interface ReconcileDeps {
  readonly sets: k8s.ObjectCache<EvaluatorShardSet>;
  readonly deployments: k8s.ObjectCache<k8s.V1Deployment>;
  readonly kube: KubeWriter;
  /** The set's tenant assignments in PostgreSQL (undefined: run without a database, Deployments only). */
  readonly assignments?: (set: EvaluatorShardSet) => Promise<TenantAssignments>;
  /** The set (`namespace/name`) is gone or going: what `assignments` holds for it (a pool) is released. */
  readonly releaseAssignments?: (key: string) => Promise<void>;
  readonly clock: { now(): number };
  readonly log: Logger;
  readonly config: ReconcileConfig;
  /** What the operator last applied per Deployment (`ns/name` → input hash and resulting generation). */
  readonly applied: Map<string, AppliedRecord>;
  /**
   * The set as our last status write left it, with the resourceVersions that write superseded.
   * A reconcile that runs before the informer has seen our write would otherwise act on an older
   * status (for instance finish a reshard twice).
   */
  readonly written: Map<string, { superseded: Set<string>; set: EvaluatorShardSet }>;
  /** Crash hooks for tests, injected by a test entry point (never set in production). */
  readonly faults?: (point: FaultPoint) => void;
  readonly onTenantsMoved?: (set: EvaluatorShardSet, moved: number) => void;
  /**
   * Reads the set's autoscaling signals from Prometheus (mode Recommend and Auto). Never throws:
   * a failure is a missing reading. `runningShards` is the committed count (staleness check).
   */
  readonly signals?: (set: EvaluatorShardSet, runningShards: number) => Promise<SignalReadings>;
  /** Reports each autoscaling decision (the operator's metrics). */
  readonly onAutoscale?: (
    set: EvaluatorShardSet,
    decision: AutoscaleDecision,
    readings: SignalReadings,
  ) => void;
}

/**
 * Converges one EvaluatorShardSet (key `namespace/name`): level-triggered, idempotent, resumable
 * at any point. See planReconcile.ts for what each step decides.
 */
export async function reconcileShardSet(
  key: string,
  deps: ReconcileDeps,
): Promise<HandlerResult | undefined> {
  const [namespace, name] = key.split("/") as [string, string];
  const cached = deps.sets.get(name, namespace);
  // Gone or going: the owner references garbage-collect the shard Deployments.
  if (!cached || cached.metadata.deletionTimestamp) {
    await deps.releaseAssignments?.(key);
    return undefined;
  }
  const memo = deps.written.get(key);
  // resourceVersions are opaque: never compared for order, only matched against those we superseded.
  let set = memo?.superseded.has(cached.metadata.resourceVersion ?? "") ? memo.set : cached;
  if (set === cached) deps.written.delete(key);
  const log = deps.log.child({ shardset: key });
  const now = deps.clock.now();
  // Until the autoscaler has spoken in this reconcile, the count last reported stands.
  let target = set.status?.desiredShards ?? set.spec.shards ?? DEFAULTS.shards;
  // The owned Deployments as this reconcile leaves them: the cache, overlaid with our own writes.
  let deployments = deps.deployments
    .list(namespace)
    .filter((d) => d.metadata?.ownerReferences?.some((r) => r.controller && r.uid === set.metadata.uid));

  try {
    // A refused set (planReconcile says why) is only reported: its database and metrics, reached
    // through Secrets it names, are not even read.
    const refused = refusalOf(set, deps.config) !== undefined;
    const assignments = deps.assignments && !refused ? await deps.assignments(set) : undefined;
    let database = assignments ? await assignments.read() : undefined;
    const committed = database ? (database.shardCount ?? 0) : (set.status?.shards ?? 0);
    const readings =
      readsMetrics(set) && deps.signals && !refused ? await deps.signals(set, committed) : undefined;
    const autoscale = planAutoscale({ set, readings, committed, totalLoad: database?.totalLoad, now });
    target = autoscale.target;
    if (autoscale.decision) {
      log.debug({ decision: autoscale.decision, readings }, "Autoscaler decided");
      deps.onAutoscale?.(set, autoscale.decision, readings!);
    }
    let autoscaleEvents = autoscale.events;
    let tenantStepDone: TenantStepOutcome | undefined;
    for (;;) {
      const plan = planReconcile({
        set,
        deployments,
        applied: deps.applied,
        database,
        tenantStepDone,
        target,
        autoscale: { ...autoscale, reason: autoscale.decision?.reason },
        now,
        config: deps.config,
      });
      log.debug({ step: plan.step }, "Planned reconcile step");
      await applyAndDelete(plan);
      if (plan.tenantStep) {
        if (plan.tenantStep.kind === "commit") {
          deps.faults?.("before-commit");
          const result = assignments
            ? await assignments.commit(plan.tenantStep.shardCount)
            : noDatabaseCommit(set, plan.tenantStep.shardCount);
          deps.faults?.("after-commit");
          tenantStepDone = { kind: "committed", result };
          database = assignments ? await assignments.read() : undefined;
        } else {
          const placed = assignments ? await assignments.assignNew() : 0;
          tenantStepDone = { kind: "placed", placed };
          if (placed > 0) {
            log.info({ tenants: placed }, "Assigned new tenants");
            database = await assignments!.read();
          }
        }
      }
      if (plan.step === "startMoving") deps.faults?.("after-scale-up");
      if (plan.status) await writeStatus(plan.status);
      const last = plan.next !== "replan" && !plan.tenantStep;
      // The autoscaler's Events once per reconcile, after the status that explains them.
      const events = plan.status || last ? [...autoscaleEvents, ...plan.events] : plan.events;
      if (plan.status || last) autoscaleEvents = [];
      for (const e of events) await recordEvent(e);
      if (plan.tenantsMoved !== undefined) deps.onTenantsMoved?.(set, plan.tenantsMoved);
      if (plan.next === "replan" || plan.tenantStep) continue;
      return plan.next === "done" ? undefined : { requeueAfterMs: plan.next.requeueAfterMs };
    }
  } catch (err) {
    await reportFailure(err);
    throw err;
  }

  /** Server-side applies and deletes the plan's Deployments, keeping `deployments` current. */
  async function applyAndDelete(plan: ReconcilePlan): Promise<void> {
    for (const desired of plan.apply) {
      const dname = desired.metadata!.name!;
      const live = deployments.find((d) => d.metadata?.name === dname);
      const stored = await deps.kube.applyDeployment(desired);
      deps.applied.set(`${namespace}/${dname}`, {
        hash: desired.metadata!.annotations![ANNOTATIONS.inputHash]!,
        generation: stored.metadata?.generation ?? 0,
      });
      deployments = [...deployments.filter((d) => d !== live), stored];
      log.info(
        { deployment: dname, shard: shardIndexOf(desired.metadata?.labels), created: !live },
        "Applied Deployment",
      );
    }
    if (plan.step === "removeShards") deps.faults?.("before-delete");
    for (const dname of plan.delete) {
      await deps.kube.deleteDeployment(namespace, dname);
      deps.applied.delete(`${namespace}/${dname}`);
      deployments = deployments.filter((d) => d.metadata?.name !== dname);
      log.info({ deployment: dname }, "Deleted Deployment");
    }
    if (plan.step === "removeShards") deps.faults?.("after-delete");
  }

  async function writeStatus(status: NonNullable<ReconcilePlan["status"]>): Promise<void> {
    const superseded = deps.written.get(key)?.superseded ?? new Set<string>();
    if (set.metadata.resourceVersion) superseded.add(set.metadata.resourceVersion);
    set = await deps.kube.patchStatus(set, status);
    deps.written.set(key, { superseded, set });
  }

  /** Events are best effort: a failure to record one never fails the reconcile. */
  async function recordEvent(e: PlannedEvent): Promise<void> {
    try {
      await deps.kube.event(set, e.type, e.reason, e.message);
    } catch (err) {
      log.warn({ err: String(err), reason: e.reason }, "Could not record Event");
    }
  }

  async function reportFailure(err: unknown): Promise<void> {
    const failure = { reason: failureReason(err), message: errorMessage(err) };
    log.error({ err: failure.message, reason: failure.reason }, "Reconcile failed");
    const plan = planFailure({ set, deployments, target, now }, failure);
    await recordEvent(plan.event);
    try {
      if (plan.status) await writeStatus(plan.status);
    } catch (statusErr) {
      log.warn({ err: String(statusErr) }, "Could not report the failure in status");
    }
  }
}

/** Without a database there is nothing to move: the commit only records the count. */
function noDatabaseCommit(set: EvaluatorShardSet, shardCount: number): CommitResult {
  return {
    epoch: set.status?.epoch ?? 0,
    shardCount,
    tenants: set.status?.tenants ?? 0,
    moved: 0,
    movedLoad: 0,
    minimumMovedLoad: 0,
    alreadyCommitted: false,
  };
}

/** The condition and Event reason of a failed reconcile. */
function failureReason(err: unknown): string {
  if (err instanceof DatabaseUnavailableError) return EVENT_REASON.databaseUnavailable;
  if (statusCode(err) !== undefined) return EVENT_REASON.applyFailed;
  return EVENT_REASON.reconcileError;
}
