/**
 * What a balanced assignment of tenants to `shardCount` shards must look like, and the least load
 * any such assignment has to move from the current one. Shared by the planner and by whatever
 * wants to judge an assignment the planner did not make (the hashing baselines, for instance).
 */

import { hashTenantId } from "./hashing.ts";
import type { TenantLoad } from "./tenantLoad.ts";

/**
 * Weight that a tenant counts for at least. Weights are in evaluation units (devices × rules); a
 * tenant below one unit, with weight 0, a negative weight or a non-finite one (NaN, ±Infinity:
 * unknown, not huge) still costs a query per tick, and if it counted for nothing every empty tenant
 * would pile onto one shard instead of spreading.
 */
export const MIN_TENANT_WEIGHT = 1;

/** Default band half-width ε: regular shards may carry (1 − ε) to (1 + ε) × the average load. */
export const DEFAULT_EPSILON = 0.1;

/** The load a tenant counts for: its weight, raised to {@link MIN_TENANT_WEIGHT}. */
export function effectiveWeight(weight: number): number {
  return Number.isFinite(weight) && weight > MIN_TENANT_WEIGHT ? weight : MIN_TENANT_WEIGHT;
}

/**
 * The shard a tenant was on, as far as history goes: any non-negative integer, including a shard
 * that no longer exists (≥ shardCount). `null`, negative and fractional values mean "never placed".
 */
export function previousShardOf(shard: number | null): number | null {
  return shard !== null && Number.isInteger(shard) && shard >= 0 ? shard : null;
}

/** A tenant as the planner sees it. */
export interface PreparedTenant {
  readonly id: string;
  /** {@link effectiveWeight} of the input weight. */
  readonly weight: number;
  /** {@link hashTenantId} of the id: the tie-breaker between tenants of equal weight. */
  readonly hash: number;
  /** {@link previousShardOf} the input shard; may be a removed shard (≥ shardCount). */
  readonly from: number | null;
}

/** Tenants in canonical order, with the order of their ids alongside. */
export interface PreparedTenants {
  /** Heaviest first; equal weights by id hash, then by id. Indexes elsewhere refer to this order. */
  readonly tenants: readonly PreparedTenant[];
  /** Indexes into `tenants` in ascending id order (UTF-16 code units), for output. */
  readonly idOrder: Int32Array;
}

/**
 * The balance target for one shard count.
 *
 * A *giant* is a tenant heavier than the capacity of the shards left once the heavier giants have
 * a shard each: no shard holding it can be within (1 + ε) × average, so it gets a shard to itself
 * (the best possible for it) and the band below applies to the other, *regular*, shards.
 */
export interface BalanceTarget extends PreparedTenants {
  readonly shardCount: number;
  readonly epsilon: number;
  /** Sum of effective weights. */
  readonly totalLoad: number;
  /** totalLoad / shardCount: the denominator of max/avg. */
  readonly averageLoad: number;
  /** Number of giants; they are `tenants[0 .. giantCount)`. */
  readonly giantCount: number;
  /** Shard of each giant, by tenant index. */
  readonly giantShard: readonly number[];
  /** Per live shard: true when a giant owns it. */
  readonly dedicated: readonly boolean[];
  /** Average load of the regular shards (regular load / regular shard count; 0 when none). */
  readonly regularAverage: number;
  /** Upper end of the band: (1 + ε) × regularAverage. */
  readonly capacity: number;
  /** Lower end of the band: max(0, (1 − ε) × regularAverage). */
  readonly floor: number;
  /**
   * Rounding allowance for comparisons with the band (a billionth of the regular average), so a
   * load exactly on an edge counts as inside (average 1.3 gives a capacity of 1.4299999999999997).
   */
  readonly tolerance: number;
  /** Per live shard: load of the tenants currently on it. */
  readonly currentLoads: readonly number[];
  /** See {@link computeBalanceTarget}. */
  readonly minimumMovedLoad: number;
}

/**
 * Normalises the tenants, finds the giants and their shards, the band [floor, capacity] for the
 * regular shards, and the minimum load that must move.
 *
 * Giants keep their current shard when it is live and no heavier giant claims it; the others (new,
 * on a removed shard, or second on a shard) take the free shard with the least current load, which
 * is the cheapest shard to empty.
 *
 * `minimumMovedLoad` is a lower bound on the load of *previously placed* tenants (previous shard
 * not null, including removed shards) that any assignment must move so that every giant is alone
 * on the shard chosen for it here and every regular shard ends within [floor, capacity]. Integer
 * effects are ignored (as if load could be split), which is what makes it a bound that is cheap to
 * compute. It is max(out, in):
 * - out = load on removed shards (≥ shardCount)
 *       + load on a giant's shard other than that giant
 *       + Σ over regular shards of max(0, currentLoad − capacity);
 *   this load must leave where it is.
 * - in = Σ over regular shards of max(0, floor − currentLoad) − load of unplaced regular tenants;
 *   the regular shards below the floor must receive this much, and whatever unplaced tenants
 *   cannot cover has to come from moved ones.
 *
 * What that means per case, starting balanced (all shards near the old average):
 * - scale-down: everything on the removed shards (survivors below the floor are filled by it);
 * - scale-up by k shards: (1 − ε) × k × the new average, i.e. (1 − ε) × (N′ − N)/N′ × total,
 *   because a new shard is in the band once it reaches the floor (filling it to exactly the
 *   average would move ε more and buy nothing the band does not already guarantee);
 * - same shard count: only the excess above capacity and the deficit below the floor, so an
 *   assignment inside the band has a minimum of 0 and the planner leaves it alone.
 */
export function computeBalanceTarget(
  tenants: readonly TenantLoad[],
  shardCount: number,
  epsilon: number,
): BalanceTarget {
  if (!Number.isInteger(shardCount) || shardCount < 1) {
    throw new RangeError(`shardCount must be an integer ≥ 1, got ${shardCount}`);
  }
  if (!Number.isFinite(epsilon) || epsilon < 0) {
    throw new RangeError(`epsilon must be a finite number ≥ 0, got ${epsilon}`);
  }
  return balanceTargetOf(prepareTenants(tenants), shardCount, epsilon);
}

/**
 * {@link computeBalanceTarget} for tenants already prepared (validated and sorted), e.g. the same
 * tenants with the shards of a previous planner pass.
 */
export function balanceTargetOf(
  { tenants: prepared, idOrder }: PreparedTenants,
  shardCount: number,
  epsilon: number,
): BalanceTarget {
  let totalLoad = 0;
  for (const tenant of prepared) totalLoad += tenant.weight;

  // Peel off giants heaviest first: each is compared with the capacity of the shards that remain.
  let regularLoad = totalLoad;
  let regularShards = shardCount;
  let giantCount = 0;
  while (giantCount < prepared.length && regularShards > 1) {
    const weight = prepared[giantCount]!.weight;
    const average = regularLoad / regularShards;
    if (weight <= average + epsilon * average + 1e-9 * average) break;
    regularLoad -= weight;
    regularShards -= 1;
    giantCount += 1;
  }

  const currentLoads = new Array<number>(shardCount).fill(0);
  for (const tenant of prepared) {
    if (tenant.from !== null && tenant.from < shardCount) currentLoads[tenant.from]! += tenant.weight;
  }

  const owner = new Array<number>(shardCount).fill(-1);
  const giantShard = new Array<number>(giantCount).fill(-1);
  const homeless: number[] = [];
  for (let g = 0; g < giantCount; g++) {
    const from = prepared[g]!.from;
    if (from !== null && from < shardCount && owner[from] === -1) {
      owner[from] = g;
      giantShard[g] = from;
    } else {
      homeless.push(g);
    }
  }
  for (const g of homeless) {
    // Unclaimed shards hold no giant (a giant's shard is always claimed by its heaviest giant),
    // so the least-loaded free shard is the cheapest one to empty for this giant.
    let best = -1;
    for (let s = 0; s < shardCount; s++) {
      if (owner[s] !== -1) continue;
      if (best === -1 || currentLoads[s]! < currentLoads[best]!) best = s;
    }
    owner[best] = g;
    giantShard[g] = best;
  }
  const dedicated = owner.map((g) => g !== -1);

  const regularAverage = regularShards > 0 ? regularLoad / regularShards : 0;
  const capacity = regularAverage + epsilon * regularAverage;
  const floor = Math.max(0, regularAverage - epsilon * regularAverage);
  const tolerance = 1e-9 * regularAverage;

  let mustLeave = 0;
  let unplacedRegular = 0;
  for (let t = 0; t < prepared.length; t++) {
    const { from, weight } = prepared[t]!;
    if (from === null) {
      if (t >= giantCount) unplacedRegular += weight;
    } else if (from >= shardCount) {
      mustLeave += weight;
    } else if (dedicated[from] && owner[from] !== t) {
      mustLeave += weight;
    }
  }
  let deficit = 0;
  for (let s = 0; s < shardCount; s++) {
    if (dedicated[s]) continue;
    const load = currentLoads[s]!;
    if (load > capacity + tolerance) mustLeave += load - capacity;
    if (load < floor - tolerance) deficit += floor - load;
  }
  const minimumMovedLoad = Math.max(mustLeave, deficit - unplacedRegular, 0);

  return {
    shardCount,
    epsilon,
    tenants: prepared,
    idOrder,
    totalLoad,
    averageLoad: totalLoad / shardCount,
    giantCount,
    giantShard,
    dedicated,
    regularAverage,
    capacity,
    floor,
    tolerance,
    currentLoads,
    minimumMovedLoad,
  };
}

/**
 * Effective weights, hashes and previous shards, in canonical order: heaviest first, then by id
 * hash, then by id. Every later choice walks this order, so input order never matters.
 *
 * @throws RangeError if two tenants share an id.
 */
export function prepareTenants(tenants: readonly TenantLoad[]): PreparedTenants {
  const n = tenants.length;
  // The default sort compares strings by UTF-16 code units, not by locale, and does it natively.
  const sortedIds = tenants.map((t) => t.id).sort();
  for (let r = 1; r < n; r++) {
    if (sortedIds[r] === sortedIds[r - 1]) {
      throw new RangeError(`duplicate tenant id ${JSON.stringify(sortedIds[r])}`);
    }
  }
  const rankOfId = new Map<string, number>();
  sortedIds.forEach((id, r) => {
    rankOfId.set(id, r);
  });

  const weight = new Float64Array(n);
  const hash = new Uint32Array(n);
  const rank = new Int32Array(n);
  tenants.forEach((tenant, i) => {
    weight[i] = effectiveWeight(tenant.weight);
    hash[i] = hashTenantId(tenant.id);
    rank[i] = rankOfId.get(tenant.id)!;
  });
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => weight[b]! - weight[a]! || hash[a]! - hash[b]! || rank[a]! - rank[b]!);

  const idOrder = new Int32Array(n);
  const prepared = order.map((i, t): PreparedTenant => {
    idOrder[rank[i]!] = t;
    const tenant = tenants[i]!;
    return { id: tenant.id, weight: weight[i]!, hash: hash[i]!, from: previousShardOf(tenant.shard) };
  });
  return { tenants: prepared, idOrder };
}

/** The same prepared tenants, now on the shards in `to` (indexed like `prepared.tenants`). */
export function movedTo(prepared: PreparedTenants, to: Int32Array): PreparedTenants {
  const tenants = prepared.tenants.map(
    ({ id, weight, hash }, t): PreparedTenant => ({ id, weight, hash, from: to[t]! }),
  );
  return { tenants, idOrder: prepared.idOrder };
}
