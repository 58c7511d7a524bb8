import type { Condition } from "../api/types.ts";

/** Condition types of an EvaluatorShardSet. */
export const CONDITION = {
  ready: "Ready",
  progressing: "Progressing",
  degraded: "Degraded",
  metricsAvailable: "MetricsAvailable",
  scalingLimited: "ScalingLimited",
} as const;

/** Every condition reason the operator writes, in one place. */
export const REASON = {
  allShardsReady: "AllShardsReady",
  shardsNotReady: "ShardsNotReady",
  stable: "Stable",
  rollingOut: "RollingOut",
  scalingUp: "ScalingUp",
  scalingDown: "ScalingDown",
  movingTenants: "MovingTenants",
  draining: "Draining",
  paused: "Paused",
  asExpected: "AsExpected",
  invalidSpec: "InvalidSpec",
  /** spec.evaluator.image does not start with an allowed prefix (--allowed-image-prefixes). */
  imageNotAllowed: "ImageNotAllowed",
  applyFailed: "ApplyFailed",
  databaseUnavailable: "DatabaseUnavailable",
  reconcileError: "ReconcileError",
  metricsOk: "MetricsOk",
  metricsUnavailable: "MetricsUnavailable",
  metricsWarmingUp: "WarmingUp",
  autoscalingOff: "AutoscalingOff",
  withinBounds: "WithinBounds",
  atMinimum: "AtMinimum",
  atMaximum: "AtMaximum",
  rateLimited: "RateLimited",
} as const;

/**
 * Reasons of the Events the operator records. Those of a reshard's steps and of failures are the
 * condition reasons above, so an Event and the condition it explains read alike.
 */
export const EVENT_REASON = {
  scalingUp: REASON.scalingUp,
  scalingDown: REASON.scalingDown,
  movingTenants: REASON.movingTenants,
  resharded: "Resharded",
  shardRemoved: "ShardRemoved",
  databaseUnavailable: REASON.databaseUnavailable,
  applyFailed: REASON.applyFailed,
  reconcileError: REASON.reconcileError,
  imageNotAllowed: REASON.imageNotAllowed,
  metricsUnavailable: REASON.metricsUnavailable,
  metricsAvailable: "MetricsAvailable",
  recommendedShards: "RecommendedShards",
} as const;

export type ConditionInput = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

/**
 * Sets a condition, keeping `lastTransitionTime` when the status did not change (kubebuilder's
 * meta.SetStatusCondition). Returns a new list; the input is not modified.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: ConditionInput,
  now: string,
  observedGeneration?: number,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const merged: Condition = {
    ...next,
    lastTransitionTime: prev && prev.status === next.status ? prev.lastTransitionTime : now,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (i >= 0) list[i] = merged;
  else list.push(merged);
  return list;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
