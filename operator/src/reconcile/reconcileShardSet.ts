import type * as k8s from "@kubernetes/client-node";
import {
  ANNOTATIONS,
  DEFAULTS,
  type EvaluatorShardSet,
  type EvaluatorShardSetStatus,
  type ReshardProgress,
} from "../api/types.ts";
import type { TenantAssignments } from "../assignments/tenantAssignments.ts";
import type { HandlerResult } from "../controller/workQueue.ts";
import { buildShardDeployment, type ShardDeploymentConfig } from "../desired/buildShardDeployment.ts";
import { stableStringify } from "../desired/hash.ts";
import { shardIndexOf, shardSetSelector } from "../desired/names.ts";
import type { KubeWriter } from "../kube/kubeWriter.ts";
import type { Logger } from "../log.ts";
import { CONDITION, type ConditionInput, REASON, setCondition } from "../status/conditions.ts";
import { planShardCount } from "./planShardCount.ts";

/** Points where a test can make the operator crash (see `faults` below). */
export type FaultPoint =
  | "after-scale-up"
  | "before-commit"
  | "after-commit"
  | "before-delete"
  | "after-delete";

export interface ReconcileConfig {
  readonly shardDeployment: ShardDeploymentConfig;
  /** After this long waiting for new shards to become available, Degraded turns True (the wait goes on). */
  readonly scaleUpTimeoutMs: number;
  /** Extra time removed shards keep running after the drain interval (one tick), for clock skew. */
  readonly drainSlackMs: number;
  /** How often a settled set is reconciled again (assigns tenants created since the last reshard). */
  readonly resyncMs: number;
}

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
  readonly applied: Map<string, { hash: string; generation: number }>;
  /**
   * The set as our last status write left it, with the resourceVersions that write superseded.
   * A reconcile that runs before the informer has seen our write would otherwise act on an older
   * status (for instance finish a reshard twice).
   */
  readonly written: Map<string, { superseded: Set<string>; set: EvaluatorShardSet }>;
  readonly faults?: (point: FaultPoint) => void;
  readonly onTenantsMoved?: (set: EvaluatorShardSet, moved: number) => void;
}

/** A database that cannot be reached: reported as Degraded/DatabaseUnavailable, retried with backoff. */
export class DatabaseUnavailableError extends Error {
  override readonly name = "DatabaseUnavailableError";
}

function available(d: k8s.V1Deployment | undefined): boolean {
  if (!d) return false;
  const s = d.status;
  return (s?.availableReplicas ?? 0) >= 1 && (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
}

function rollingOut(d: k8s.V1Deployment): boolean {
  const s = d.status;
  const want = d.spec?.replicas ?? 1;
  return (
    (s?.observedGeneration ?? 0) < (d.metadata?.generation ?? 0) ||
    (s?.updatedReplicas ?? 0) < want ||
    (s?.availableReplicas ?? 0) < want
  );
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Converges one EvaluatorShardSet (key `namespace/name`), reading the world from the informer
 * caches and the database every time: level-triggered, idempotent, resumable at any point.
 *
 * A change of shard count is a reshard N→N′ whose phase lives in status.reshard, so a restarted
 * operator resumes it (DESIGN §4):
 *  1. ScalingUp: apply the Deployments of all shards in [0, max(N, N′)); wait until the new ones are available;
 *  2. MovingTenants: one transaction rewrites shard_index of the moved tenants and bumps the epoch;
 *  3. Draining: removed shards keep running one tick interval past the commit (they still evaluate the
 *     tenants that just left them, and the tick lease keeps that exactly-once), then they are deleted.
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
  const status: EvaluatorShardSetStatus = structuredClone(set.status ?? {});
  try {
    return await converge();
  } catch (err) {
    await reportFailure(err);
    throw err;
  }

  async function converge(): Promise<HandlerResult | undefined> {
    const now = deps.clock.now();
    const nowIso = new Date(now).toISOString();
    const generation = set.metadata.generation;
    const target = planShardCount(set);
    const tickMs = (set.spec.evaluator.tickIntervalSeconds ?? DEFAULTS.tickIntervalSeconds) * 1000;
    status.selector = shardSetSelector(name);
    status.desiredShards = target;
    if (generation !== undefined) status.observedGeneration = generation;

    const assignments = deps.assignments ? await deps.assignments(set) : undefined;
    const snapshot = assignments ? await assignments.read() : undefined;
    /** Places unassigned tenants on the `count` committed shards, moving nobody else. */
    const placeNewTenants = async (count: number): Promise<void> => {
      if (!assignments || count === 0) return;
      const placed = await assignments.assignNew();
      if (placed > 0) {
        log.info({ tenants: placed }, "Assigned new tenants");
        status.tenants = (await assignments.read()).tenants;
      }
    };
    // The database is the truth about tenants; status is only its report (it may trail a crash).
    const committed = snapshot ? (snapshot.shardCount ?? 0) : (status.shards ?? 0);
    if (snapshot) {
      status.epoch = snapshot.epoch;
      status.tenants = snapshot.tenants;
    }

    if (set.spec.paused) {
      return finish(committed, {
        ...REASON_PAUSED,
        message: "spec.paused is true: no scaling and no tenant moves",
      });
    }

    let reshard: ReshardProgress | undefined = status.reshard;
    if (!reshard && committed !== target) {
      reshard = { phase: "ScalingUp", from: committed, to: target, startedAt: nowIso };
      await event(
        "Normal",
        committed < target ? REASON.scalingUp : REASON.scalingDown,
        `Resharding from ${committed} to ${target} shards`,
      );
    } else if (reshard && reshard.phase === "ScalingUp" && reshard.to !== target) {
      // Nothing is committed yet: aim the reshard at the new target instead.
      reshard = { ...reshard, to: target };
    }

    let requeueAfterMs: number | undefined;
    let waitingMessage: string | undefined;
    for (;;) {
      if (!reshard) {
        await applyShards(committed, committed);
        break;
      }
      const widest = Math.max(reshard.from, reshard.to);
      // While draining, removed shards that still run keep running, but one that is gone (deleted
      // before a crash, or by hand) is not brought back: its tenants already have a new owner.
      await applyShards(reshard.phase === "Draining" ? reshard.to : widest, widest);

      if (reshard.phase === "ScalingUp") {
        const fresh = range(reshard.to).filter((i) => i >= reshard!.from);
        const notReady = fresh.filter((i) => !available(deploymentAt(i)));
        if (notReady.length > 0) {
          // The committed shards run meanwhile: tenants created since are placed on them now, not
          // left unevaluated until the new shards come up (which may take until an operator fixes them).
          await placeNewTenants(committed);
          const waited = now - Date.parse(reshard.startedAt);
          waitingMessage = `waiting for shards ${notReady.join(", ")} to become available (${Math.round(waited / 1000)}s)`;
          status.reshard = reshard;
          if (waited > deps.config.scaleUpTimeoutMs) {
            return finish(
              committed,
              undefined,
              { reason: REASON.shardsNotReady, message: waitingMessage },
              5_000,
            );
          }
          return finish(committed, { reason: REASON.scalingUp, message: waitingMessage }, undefined, 5_000);
        }
        deps.faults?.("after-scale-up");
        reshard = { ...reshard, phase: "MovingTenants" };
        await persist(committed, reshard);
        continue;
      }

      if (reshard.phase === "MovingTenants") {
        deps.faults?.("before-commit");
        const result = assignments
          ? await assignments.commit(reshard.to)
          : {
              epoch: status.epoch ?? 0,
              tenants: status.tenants ?? 0,
              moved: 0,
              movedLoad: 0,
              minimumMovedLoad: 0,
              alreadyCommitted: false,
            };
        deps.faults?.("after-commit");
        reshard = {
          ...reshard,
          phase: "Draining",
          epoch: result.epoch,
          committedAt: nowIso,
          // A resumed commit finds nothing left to move; keep the figures of the real one.
          moved: result.alreadyCommitted ? (reshard.moved ?? 0) : result.moved,
          movedLoad: result.alreadyCommitted ? (reshard.movedLoad ?? 0) : result.movedLoad,
          minimumMovedLoad: result.alreadyCommitted
            ? (reshard.minimumMovedLoad ?? 0)
            : result.minimumMovedLoad,
        };
        status.epoch = result.epoch;
        status.tenants = result.tenants;
        if (!result.alreadyCommitted) {
          deps.onTenantsMoved?.(set, result.moved);
          await event(
            "Normal",
            REASON.movingTenants,
            reshard.from === 0
              ? `Placed ${result.tenants} tenants on ${reshard.to} shards, epoch ${result.epoch}`
              : `Moved ${result.moved} tenants (load ${round(result.movedLoad)}) to ${reshard.to} shards, epoch ${result.epoch}`,
          );
        }
        await persist(reshard.to, reshard);
        continue;
      }

      // Draining
      const drainUntil = Date.parse(reshard.committedAt ?? nowIso) + tickMs + deps.config.drainSlackMs;
      if (reshard.to < reshard.from && now < drainUntil) {
        waitingMessage = `shards ${range(reshard.from)
          .filter((i) => i >= reshard!.to)
          .join(", ")} keep running until one tick interval has passed since the commit`;
        requeueAfterMs = drainUntil - now;
        status.reshard = reshard;
        return finish(
          reshard.to,
          { reason: REASON.draining, message: waitingMessage },
          undefined,
          requeueAfterMs,
        );
      }
      deps.faults?.("before-delete");
      await applyShards(reshard.to, reshard.to);
      deps.faults?.("after-delete");
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
      await event("Normal", "Resharded", `Now running ${reshard.to} shards (from ${reshard.from})`);
      return finish(reshard.to, undefined, undefined, undefined, true);
    }

    // Settled: place tenants created since the last reshard (no reshard, nobody else moves).
    await placeNewTenants(committed);
    return finish(committed, undefined, undefined, assignments ? deps.config.resyncMs : undefined);
  }

  function deploymentAt(i: number): k8s.V1Deployment | undefined {
    return ownedDeployments().find((d) => shardIndexOf(d.metadata?.labels) === i);
  }

  function ownedDeployments(): k8s.V1Deployment[] {
    return deps.deployments
      .list(namespace)
      .filter((d) => d.metadata?.ownerReferences?.some((r) => r.controller && r.uid === set.metadata.uid));
  }

  /**
   * Applies shards [0, apply) (skipping those already as desired) and deletes every owned shard
   * at index ≥ keep (or without a valid index).
   */
  async function applyShards(apply: number, keep: number): Promise<void> {
    const owned = ownedDeployments();
    for (const i of range(apply)) {
      const desired = buildShardDeployment(set, i, deps.config.shardDeployment);
      const dname = desired.metadata!.name!;
      const hash = desired.metadata!.annotations![ANNOTATIONS.inputHash]!;
      const live = owned.find((d) => d.metadata?.name === dname);
      const last = deps.applied.get(`${namespace}/${dname}`);
      // Skip no-op writes: same inputs, and nobody changed the spec since our apply (generation).
      if (
        live &&
        live.metadata?.annotations?.[ANNOTATIONS.inputHash] === hash &&
        last?.hash === hash &&
        last.generation === live.metadata?.generation
      ) {
        continue;
      }
      const stored = await deps.kube.applyDeployment(desired);
      deps.applied.set(`${namespace}/${dname}`, { hash, generation: stored.metadata?.generation ?? 0 });
      log.info({ deployment: dname, shard: i, created: !live }, "Applied Deployment");
    }
    for (const d of owned) {
      const i = shardIndexOf(d.metadata?.labels);
      if (i !== undefined && i < keep) continue;
      await deps.kube.deleteDeployment(namespace, d.metadata!.name!);
      deps.applied.delete(`${namespace}/${d.metadata!.name}`);
      log.info({ deployment: d.metadata?.name, shard: i }, "Deleted Deployment");
      await event("Normal", "ShardRemoved", `Deleted Deployment ${d.metadata?.name}`);
    }
  }

  /** Writes status now (a reshard phase must be durable before the next step runs). */
  async function persist(shards: number, reshard: ReshardProgress): Promise<void> {
    status.shards = shards;
    status.reshard = reshard;
    fillConditions(shards, {
      reason: phaseReason(reshard),
      message: `${reshard.from} → ${reshard.to} shards: ${reshard.phase}`,
    });
    await writeStatus();
  }

  async function finish(
    shards: number,
    progressing?: { reason: string; message: string },
    degraded?: { reason: string; message: string },
    requeueAfterMs?: number,
    reshardDone = false,
  ): Promise<HandlerResult | undefined> {
    status.shards = shards;
    if (reshardDone) delete status.reshard;
    fillConditions(shards, progressing, degraded);
    await writeStatus();
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }

  function fillConditions(
    shards: number,
    progressing?: { reason: string; message: string },
    degraded?: { reason: string; message: string },
  ): void {
    const nowIso = new Date(deps.clock.now()).toISOString();
    const gen = set.metadata.generation;
    const owned = ownedDeployments();
    const ready = range(shards).filter((i) => available(deploymentAt(i))).length;
    status.readyShards = owned.filter((d) => available(d)).length;
    const put = (c: ConditionInput) => {
      status.conditions = setCondition(status.conditions, c, nowIso, gen);
    };
    put(
      shards > 0 && ready === shards
        ? {
            type: CONDITION.ready,
            status: "True",
            reason: REASON.allShardsReady,
            message: `${ready}/${shards} shards available`,
          }
        : {
            type: CONDITION.ready,
            status: "False",
            reason: REASON.shardsNotReady,
            message: `${ready}/${shards} shards available`,
          },
    );
    if (!progressing && owned.some(rollingOut)) {
      progressing = { reason: REASON.rollingOut, message: "shard Deployments are rolling out" };
    }
    put(
      progressing
        ? {
            type: CONDITION.progressing,
            status: progressing.reason === REASON.paused ? "False" : "True",
            ...progressing,
          }
        : {
            type: CONDITION.progressing,
            status: "False",
            reason: REASON.stable,
            message: `${shards} shards, nothing in flight`,
          },
    );
    put(
      degraded
        ? { type: CONDITION.degraded, status: "True", ...degraded }
        : { type: CONDITION.degraded, status: "False", reason: REASON.asExpected, message: "" },
    );
  }

  async function writeStatus(): Promise<void> {
    if (stableStringify(set.status ?? {}) === stableStringify(status)) return;
    const superseded = deps.written.get(key)?.superseded ?? new Set<string>();
    if (set.metadata.resourceVersion) superseded.add(set.metadata.resourceVersion);
    set = await deps.kube.patchStatus(set, status);
    deps.written.set(key, { superseded, set });
  }

  async function event(type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    try {
      await deps.kube.event(set, type, reason, message);
    } catch (err) {
      log.warn({ err: String(err), reason }, "Could not record Event");
    }
  }

  async function reportFailure(err: unknown): Promise<void> {
    const reason =
      err instanceof DatabaseUnavailableError
        ? REASON.databaseUnavailable
        : isApiError(err)
          ? REASON.applyFailed
          : REASON.reconcileError;
    const message = errorMessage(err);
    log.error({ err: message, reason }, "Reconcile failed");
    await event("Warning", reason, message);
    try {
      fillConditions(status.shards ?? 0, undefined, { reason, message });
      await writeStatus();
    } catch (statusErr) {
      log.warn({ err: String(statusErr) }, "Could not report the failure in status");
    }
  }
}

const REASON_PAUSED = { reason: REASON.paused } as const;

function phaseReason(r: ReshardProgress): string {
  return r.phase === "ScalingUp"
    ? REASON.scalingUp
    : r.phase === "MovingTenants"
      ? REASON.movingTenants
      : REASON.draining;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function isApiError(err: unknown): boolean {
  return typeof (err as { code?: unknown })?.code === "number";
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
