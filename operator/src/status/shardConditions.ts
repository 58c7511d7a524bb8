/**
 * Conditions and the ready count of a shard set, derived from its owned Deployments (pure).
 * The reconcile plan says what is in flight (`progressing`) and what is wrong (`degraded`); this
 * module turns that and the Deployments into the three standard conditions.
 */
import type * as k8s from "@kubernetes/client-node";
import type { Condition } from "../api/types.ts";
import { shardIndexOf } from "../desired/names.ts";
import { CONDITION, type ConditionInput, REASON, setCondition } from "./conditions.ts";

/** A reason and message for Progressing or Degraded. */
export interface ConditionNote {
  readonly reason: string;
  readonly message: string;
}

/** A Deployment that serves: one available replica, and its controller saw the latest spec. */
export function isAvailable(d: k8s.V1Deployment | undefined): boolean {
  if (!d) return false;
  const s = d.status;
  return (s?.availableReplicas ?? 0) >= 1 && (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
}

/** A Deployment whose latest spec is not yet fully rolled out and available. */
export function isRollingOut(d: k8s.V1Deployment): boolean {
  const s = d.status;
  const want = d.spec?.replicas ?? 1;
  return (
    (s?.observedGeneration ?? 0) < (d.metadata?.generation ?? 0) ||
    (s?.updatedReplicas ?? 0) < want ||
    (s?.availableReplicas ?? 0) < want
  );
}

export interface ShardConditionsInput {
  readonly previous: readonly Condition[] | undefined;
  /** The committed shard count: Ready means every one of shards [0, shards) is available. */
  readonly shards: number;
  /** The set's owned shard Deployments. */
  readonly deployments: readonly k8s.V1Deployment[];
  readonly progressing?: ConditionNote | undefined;
  readonly degraded?: ConditionNote | undefined;
  readonly nowIso: string;
  readonly generation: number | undefined;
}

/**
 * Ready (all committed shards available), Progressing (the given note, else RollingOut while a
 * Deployment rolls out, else Stable; Paused reads False) and Degraded (the given note, else
 * AsExpected). `lastTransitionTime` is kept for a condition whose status did not change.
 */
export function deriveShardConditions(input: ShardConditionsInput): {
  conditions: Condition[];
  readyShards: number;
} {
  const { shards, deployments, nowIso, generation } = input;
  const ready = Array.from({ length: shards }, (_, i) => i).filter((i) =>
    isAvailable(deployments.find((d) => shardIndexOf(d.metadata?.labels) === i)),
  ).length;
  let conditions = [...(input.previous ?? [])];
  const put = (c: ConditionInput) => {
    conditions = setCondition(conditions, c, nowIso, generation);
  };
  put({
    type: CONDITION.ready,
    status: shards > 0 && ready === shards ? "True" : "False",
    reason: shards > 0 && ready === shards ? REASON.allShardsReady : REASON.shardsNotReady,
    message: `${ready}/${shards} shards available`,
  });
  const progressing =
    input.progressing ??
    (deployments.some(isRollingOut)
      ? { reason: REASON.rollingOut, message: "shard Deployments are rolling out" }
      : undefined);
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
    input.degraded
      ? { type: CONDITION.degraded, status: "True", ...input.degraded }
      : { type: CONDITION.degraded, status: "False", reason: REASON.asExpected, message: "" },
  );
  return { conditions, readyShards: deployments.filter(isAvailable).length };
}
