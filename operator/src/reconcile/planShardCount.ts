import { DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";

/**
 * The shard count the set should run (pure). `Off` and `Recommend` obey spec.shards exactly (the
 * GitOps knob). `Auto` keeps the autoscaler's last decision (status.desiredShards) within
 * min/max, starting from spec.shards; the autoscaler plugs in here.
 */
export function planShardCount(set: EvaluatorShardSet): number {
  const spec = set.spec;
  const mode = spec.autoscaling?.mode ?? "Off";
  const fixed = spec.shards ?? DEFAULTS.shards;
  if (mode !== "Auto") return fixed;
  const min = spec.autoscaling?.minShards ?? DEFAULTS.minShards;
  const max = spec.autoscaling?.maxShards ?? DEFAULTS.maxShards;
  const current = set.status?.desiredShards ?? fixed;
  return Math.min(max, Math.max(min, current));
}
