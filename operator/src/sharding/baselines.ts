/**
 * Two weight-blind ways to shard tenants, kept as yardsticks for the planner (its benchmark and
 * tests judge them with {@link assessAssignment}, exactly as plans are judged):
 * - hash mod N: simple, but a change of N moves almost every tenant;
 * - rendezvous (highest random weight): moves only what it must, but ignores weights, so loads
 *   are as uneven as the tenants are.
 */

import { createHash } from "node:crypto";
import { fmix32, hashTenantId } from "./hashing.ts";
import {
  type AssignmentPlan,
  assessAssignment,
  type PlanOptions,
  type TenantLoad,
} from "./planAssignment.ts";

/** A weight-blind sharding function: tenant id and shard count → shard in [0, shardCount). */
export type HashSharding = (id: string, shardCount: number) => number;

/** `sha256(id) mod shardCount`, reading the first 8 bytes of the digest as an unsigned integer. */
export function modHashShard(id: string, shardCount: number): number {
  const digest = createHash("sha256").update(id, "utf8").digest();
  return Number(digest.readBigUInt64BE(0) % BigInt(shardCount));
}

/**
 * Rendezvous hashing: the shard with the highest score hash(id, shard) wins. Adding a shard moves
 * only the tenants it now wins; removing one moves only its tenants.
 */
export function rendezvousShard(id: string, shardCount: number): number {
  const tenantHash = hashTenantId(id);
  let best = 0;
  let bestScore = -1;
  for (let shard = 0; shard < shardCount; shard++) {
    // Two rounds of mixing so neighbouring shard numbers give unrelated scores.
    const score = fmix32(tenantHash ^ fmix32(Math.imul(shard + 1, 0x9e3779b9)));
    if (score > bestScore) {
      best = shard;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Assigns every tenant with `sharding` (ignoring weights and current shards) and judges the result
 * against the tenants' current shards, like a plan.
 */
export function planByHashing(
  tenants: readonly TenantLoad[],
  shardCount: number,
  sharding: HashSharding,
  options: PlanOptions = {},
): AssignmentPlan {
  const assignment = new Map<string, number>();
  for (const tenant of tenants) assignment.set(tenant.id, sharding(tenant.id, shardCount));
  return assessAssignment(tenants, shardCount, assignment, options);
}
