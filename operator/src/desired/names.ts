import { LABELS } from "../api/types.ts";

/** Deterministic child name: `${set}-shard-${i}` (never random, so applies are idempotent). */
export function shardDeploymentName(setName: string, index: number): string {
  return `${setName}-shard-${index}`;
}

/** Label selector of all shard pods of a set (status.selector, for the scale subresource and HPA). */
export function shardSetSelector(setName: string): string {
  return `${LABELS.shardSet}=${setName}`;
}

/** The shard index a child carries in its label, or undefined when missing or malformed. */
export function shardIndexOf(labels: Record<string, string> | undefined): number | undefined {
  const raw = labels?.[LABELS.shard];
  if (raw === undefined || !/^(0|[1-9]\d*)$/.test(raw)) return undefined;
  return Number(raw);
}
