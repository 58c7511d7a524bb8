/**
 * The executor of the one reconcile: observes an EvaluatorShardSet, its Deployments and its
 * database, asks `planReconcile` (pure) what to do, performs the plan, and repeats while the plan
 * says `replan`. Every decision is in planReconcile.ts; this file only reads and writes.
 */
import type * as k8s from "@kubernetes/client-node";
import { DatabaseUnavailableError } from "../api/errors.ts";
import type { HandlerResult } from "../api/reconcileResult.ts";
import { ANNOTATIONS, type EvaluatorShardSet } from "../api/types.ts";
import type { CommitResult, TenantAssignments } from "../assignments/tenantAssignments.ts";
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
  type TenantStepOutcome,
} from "./planReconcile.ts";
import { planShardCount } from "./planShardCount.ts";

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
  if (!cached || cached.metadata.deletionTimestamp) return undefined;
  const memo = deps.written.get(key);
  // resourceVersions are opaque: never compared for order, only matched against those we superseded.
  let set = memo?.superseded.has(cached.metadata.resourceVersion ?? "") ? memo.set : cached;
  if (set === cached) deps.written.delete(key);
  const log = deps.log.child({ shardset: key });
  const now = deps.clock.now();
  const target = planShardCount(set);
  // The owned Deployments as this reconcile leaves them: the cache, overlaid with our own writes.
  let deployments = deps.deployments
    .list(namespace)
    .filter((d) => d.metadata?.ownerReferences?.some((r) => r.controller && r.uid === set.metadata.uid));

  try {
    const assignments = deps.assignments ? await deps.assignments(set) : undefined;
    let database = assignments ? await assignments.read() : undefined;
    let tenantStepDone: TenantStepOutcome | undefined;
    for (;;) {
      const plan = planReconcile({
        set,
        deployments,
        applied: deps.applied,
        database,
        tenantStepDone,
        target,
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
      for (const e of plan.events) await recordEvent(e);
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
  // Kubernetes API errors carry the HTTP status as a numeric `code`.
  if (typeof (err as { code?: unknown })?.code === "number") return EVENT_REASON.applyFailed;
  return EVENT_REASON.reconcileError;
}

/** A short, single-line message for status and Events (API errors carry their Status body). */
export function errorMessage(err: unknown): string {
  const e = err as { body?: unknown; message?: string };
  if (typeof e?.body === "string") {
    try {
      const parsed = JSON.parse(e.body) as { message?: string };
      if (parsed.message) return parsed.message.slice(0, 512);
    } catch {
      // not JSON: fall through to the message
    }
  }
  return String(e?.message ?? err)
    .split("\n")[0]!
    .slice(0, 512);
}
