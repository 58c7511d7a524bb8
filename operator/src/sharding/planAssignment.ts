/**
 * The tenant-assignment planner: which shard evaluates which tenant. Pure (no I/O, no clock, no
 * randomness); the reconcile loop reads tenants and their weights from the database, calls these
 * functions and writes `moves` back in one transaction.
 *
 * Approach: bounded loads in the spirit of Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing
 * with Bounded Loads" (SODA 2018). Every regular shard has a band [floor, capacity] =
 * [(1 − ε), (1 + ε)] × average (see {@link computeBalanceTarget}); a tenant stays where it is unless
 * its shard is removed, is over capacity, or has to give to a shard below the floor.
 *
 * 1. Giants (heavier than a shard's capacity) get a shard to themselves.
 * 2. Keep: on each regular shard over capacity, evict just enough load, heaviest tenant that still
 *    fits into the excess first (few moves, and the overshoot is below one tenant's weight).
 * 3. Place evicted, orphaned (removed shard) and new tenants heaviest first, each on the currently
 *    least-loaded regular shard (LPT).
 * 4. Fill: while a regular shard is below the floor (typically a new shard), pull the heaviest
 *    tenant that fits into its deficit from the most-loaded shard that was above average.
 * 5. Repeat from the result until a pass changes nothing (needed only with coarse tenants).
 *
 * Why these choices: keeping tenants in place unless a bound forces a move is what makes the
 * moved load track the minimum; heaviest-first placement onto the least-loaded shard bounds every
 * receiving shard by average + one tenant; the floor makes scale-up fill the new shards from the
 * fullest ones only, instead of waiting for the next rebalance.
 */

import {
  type BalanceTarget,
  balanceTargetOf,
  computeBalanceTarget,
  DEFAULT_EPSILON,
  movedTo,
} from "./balanceTarget.ts";

import type { TenantLoad } from "./tenantLoad.ts";

export { DEFAULT_EPSILON, MIN_TENANT_WEIGHT } from "./balanceTarget.ts";
export type { TenantLoad } from "./tenantLoad.ts";

/** One tenant whose shard changes. */
export interface TenantMove {
  readonly id: string;
  /** Previous shard (possibly a removed one), or `null` if the tenant was never placed. */
  readonly from: number | null;
  readonly to: number;
  /** Effective weight (see {@link TenantLoad.weight}). */
  readonly weight: number;
}

/** The outcome of planning: the full new assignment and how it differs from the current one. */
export interface AssignmentPlan {
  readonly shardCount: number;
  /** New shard of every tenant, in ascending id order (UTF-16 code units). */
  readonly assignment: ReadonlyMap<string, number>;
  /** Only tenants whose shard changes, including newly placed ones, in ascending id order. */
  readonly moves: readonly TenantMove[];
  /** Sum of weights of tenants that were placed before (`from` not null) and move. */
  readonly movedLoad: number;
  /** Lower bound on `movedLoad` for any balanced plan (see {@link computeBalanceTarget}). */
  readonly minimumMovedLoad: number;
  /** Load per shard after the plan, by shard index. */
  readonly loads: readonly number[];
  /** Max shard load / average shard load after the plan (1 when there is no load at all). */
  readonly maxOverAvg: number;
}

/** Options of {@link planAssignment}. */
export interface PlanOptions {
  /** Band half-width: regular shards end within [(1 − ε), (1 + ε)] × average. Default 0.1. */
  readonly epsilon?: number;
}

/**
 * Plans the assignment of `tenants` to shards `0 .. shardCount − 1`, moving as little load as the
 * balance band allows. Deterministic: the same tenants in any order give the same plan.
 *
 * Guarantees (ε = `options.epsilon`, avg = total / shardCount, w = the heaviest tenant), each
 * checked by property tests over uniform and Zipf-distributed weights:
 * - every tenant ends on exactly one live shard; a giant is alone on its shard;
 * - max/avg ≤ max(1 + ε, 1 + w / avg), so ≤ 1 + ε when no tenant exceeds ε × avg, and ≤ 1.25
 *   when none exceeds avg / 4 (and ε ≤ 0.25). No algorithm can promise 1.25 for w ≤ avg alone:
 *   N + 1 equal tenants on N shards put two on one shard, 2N/(N+1) × avg. A giant (w > capacity)
 *   sits alone, so its shard carries w, the least possible;
 * - planning the returned assignment again moves nothing (a fixed point);
 * - when no tenant exceeds ε × avg, tenants move only off removed shards, giants' shards and
 *   shards above the average, onto shards that were below it; when none exceeds a tenth of the
 *   new average, scaling a balanced assignment moves at most 1.1 × `minimumMovedLoad`. Coarser
 *   tenants overshoot by whole tenants.
 *
 * @throws RangeError if `shardCount` is not an integer ≥ 1, ε is negative, or ids repeat.
 */
export function planAssignment(
  tenants: readonly TenantLoad[],
  shardCount: number,
  options: PlanOptions = {},
): AssignmentPlan {
  const epsilon = options.epsilon ?? DEFAULT_EPSILON;
  const original = computeBalanceTarget(tenants, shardCount, epsilon);
  let target = original;
  let to = planPass(target);
  // With coarse tenants one pass can leave a shard out of band (a big tenant placed on a shard
  // that cannot shed to make room). Re-planning from the result fixes that, and stopping only at a
  // fixed point makes planning the plan's own output a no-op, so a level-triggered reconcile
  // never reshuffles what it just planned. Fine-grained loads converge in the first pass.
  for (let pass = 1; pass < MAX_PASSES && changesAnything(target, to); pass++) {
    const next = balanceTargetOf(movedTo(target, to), shardCount, epsilon);
    const nextTo = planPass(next);
    if (!changesAnything(next, nextTo)) break;
    target = next;
    to = nextTo;
  }
  return buildPlan(original, to);
}

/** Passes after which {@link planAssignment} stops even if a further pass would still move tenants. */
const MAX_PASSES = 8;

/** True when `to` (canonical tenant order) differs from the tenants' current shards. */
function changesAnything(target: BalanceTarget, to: Int32Array): boolean {
  return target.tenants.some((tenant, t) => tenant.from !== to[t]);
}

/** One pass of the planner (steps 1–4 of the module comment); returns the shard per tenant index. */
function planPass(target: BalanceTarget): Int32Array {
  const { shardCount } = target;
  const prepared = target.tenants;
  const to = new Int32Array(prepared.length).fill(-1);
  const loads = new Float64Array(shardCount);

  for (let g = 0; g < target.giantCount; g++) {
    const shard = target.giantShard[g]!;
    to[g] = shard;
    loads[shard] = prepared[g]!.weight;
  }

  // Regular tenants still on a live regular shard, per shard, heaviest first (canonical order).
  const members: number[][] = Array.from({ length: shardCount }, () => []);
  const displaced: number[] = [];
  for (let t = target.giantCount; t < prepared.length; t++) {
    const from = prepared[t]!.from;
    if (from !== null && from < shardCount && !target.dedicated[from]) members[from]!.push(t);
    else displaced.push(t);
  }

  const regularShards: number[] = [];
  for (let s = 0; s < shardCount; s++) {
    if (target.dedicated[s]) continue;
    regularShards.push(s);
    const kept = keepWithinCapacity(members[s]!, target, displaced);
    members[s] = kept;
    let load = 0;
    for (const t of kept) {
      to[t] = s;
      load += prepared[t]!.weight;
    }
    loads[s] = load;
  }

  displaced.sort((a, b) => a - b); // canonical index order = heaviest first
  const heap = new LeastLoadedShards(regularShards, loads);
  for (const t of displaced) {
    to[t] = heap.peek();
    heap.addToTop(prepared[t]!.weight);
  }

  fillBelowFloor(target, regularShards, members, loads, to);
  return to;
}

/**
 * Places only the tenants that are on no live shard (never placed, or on a removed shard), each on
 * the currently least-loaded shard, heaviest first; no tenant on a live shard moves. This is the
 * cheap path for tenants created between reshards. Tenants on a removed shard are orphans nobody
 * evaluates, so they are placed too (their move keeps `from`); removing shards is a reshard and
 * belongs to {@link planAssignment}.
 *
 * `minimumMovedLoad` is still the lower bound for a balanced plan: when it is above 0 the current
 * assignment is out of band and a {@link planAssignment} would move that much.
 *
 * @throws RangeError if `shardCount` is not an integer ≥ 1 or ids repeat.
 */
export function placeNewTenants(tenants: readonly TenantLoad[], shardCount: number): AssignmentPlan {
  const target = computeBalanceTarget(tenants, shardCount, DEFAULT_EPSILON);
  const prepared = target.tenants;
  const to = new Int32Array(prepared.length).fill(-1);
  const loads = new Float64Array(shardCount);
  const unplaced: number[] = [];
  for (let t = 0; t < prepared.length; t++) {
    const { from, weight } = prepared[t]!;
    if (from !== null && from < shardCount) {
      to[t] = from;
      loads[from]! += weight;
    } else {
      unplaced.push(t); // already heaviest first
    }
  }
  const heap = new LeastLoadedShards(
    Array.from({ length: shardCount }, (_, s) => s),
    loads,
  );
  for (const t of unplaced) {
    to[t] = heap.peek();
    heap.addToTop(prepared[t]!.weight);
  }
  return buildPlan(target, to);
}

/**
 * Judges an assignment made by anyone (a hashing baseline, a previous plan) exactly as a plan is
 * judged: moves, moved load against the same minimum, loads and max/avg.
 *
 * @throws RangeError if a tenant is missing from `assignment` or mapped outside `0 .. shardCount − 1`.
 */
export function assessAssignment(
  tenants: readonly TenantLoad[],
  shardCount: number,
  assignment: ReadonlyMap<string, number>,
  options: PlanOptions = {},
): AssignmentPlan {
  const target = computeBalanceTarget(tenants, shardCount, options.epsilon ?? DEFAULT_EPSILON);
  const to = new Int32Array(target.tenants.length);
  target.tenants.forEach((tenant, t) => {
    const shard = assignment.get(tenant.id);
    if (shard === undefined || !Number.isInteger(shard) || shard < 0 || shard >= shardCount) {
      throw new RangeError(
        `tenant ${JSON.stringify(tenant.id)} is not assigned to a shard in [0, ${shardCount})`,
      );
    }
    to[t] = shard;
  });
  return buildPlan(target, to);
}

/**
 * Splits one shard's tenants (heaviest first) into those that stay and those that must leave so
 * the shard is within capacity; pushes the latter onto `evicted` and returns the former.
 *
 * Evicting the heaviest tenant that still fits into the remaining excess moves few tenants and
 * never overshoots until the end; if some excess is left, every remaining tenant is heavier than
 * it and the lightest of them goes, so the overshoot is below one tenant's weight. (Evicting the
 * lightest tenants first would shed the same load in many more moves.)
 */
function keepWithinCapacity(
  shardTenants: readonly number[],
  target: BalanceTarget,
  evicted: number[],
): number[] {
  const { tenants: prepared, capacity, floor, tolerance } = target;
  let load = 0;
  for (const t of shardTenants) load += prepared[t]!.weight;
  let excess = load - capacity;
  if (excess <= tolerance) return [...shardTenants];

  const leaves = new Uint8Array(shardTenants.length);
  for (let i = 0; i < shardTenants.length && excess > tolerance; i++) {
    const weight = prepared[shardTenants[i]!]!.weight;
    if (weight <= excess + tolerance) {
      leaves[i] = 1;
      excess -= weight;
    }
  }
  if (excess > tolerance) {
    // Every tenant left is heavier than the excess. The lightest goes, unless that would drop the
    // shard below the floor: then no tenant fits the band here, and emptying the shard would only
    // make room for another to be moved in. Staying keeps the load below floor + that tenant.
    for (let i = shardTenants.length - 1; i >= 0; i--) {
      if (leaves[i] === 1) continue;
      const weight = prepared[shardTenants[i]!]!.weight;
      if (capacity + excess - weight >= floor - tolerance) {
        leaves[i] = 1;
        excess -= weight;
      }
      break;
    }
    // That tenant may cover what lighter evictees were chosen for (7 × 100 and 55 × 1 with 162
    // to shed: 100 + 55 × 1 + 100 → 100 + 100); let the lightest stay while the excess is covered.
    for (let i = shardTenants.length - 1; i >= 0 && excess < 0; i--) {
      if (leaves[i] === 0) continue;
      const weight = prepared[shardTenants[i]!]!.weight;
      if (excess + weight <= tolerance) {
        leaves[i] = 0;
        excess += weight;
      }
    }
  }
  const kept: number[] = [];
  shardTenants.forEach((t, i) => {
    if (leaves[i] === 1) evicted.push(t);
    else kept.push(t);
  });
  return kept;
}

/**
 * Tops up regular shards below the floor (new shards, or shards emptied by a giant) from shards
 * whose load was above the regular average before the plan, taking only tenants that were already
 * there. A pull never makes the giver lighter than the receiver nor drops it below the floor, so
 * the maximum load never rises; the heaviest tenant that fits the deficit is preferred, and one
 * that overshoots is taken only if it overshoots by less than the deficit it closes.
 */
function fillBelowFloor(
  target: BalanceTarget,
  regularShards: readonly number[],
  members: number[][],
  loads: Float64Array,
  to: Int32Array,
): void {
  const { floor, regularAverage, currentLoads, tenants, tolerance } = target;
  const receivers = regularShards
    .filter((s) => loads[s]! < floor - tolerance)
    .sort((a, b) => loads[a]! - loads[b]! || a - b);
  if (receivers.length === 0) return;

  // Givers' own tenants, lightest first, so "heaviest that fits" is a binary search and taking
  // it (the last of its weight run) shifts only heavier entries.
  const givers = regularShards.filter((s) => currentLoads[s]! > regularAverage);
  const pool = new Map<number, number[]>();
  for (const s of givers) pool.set(s, [...members[s]!].reverse());
  const weightOf = (t: number): number => tenants[t]!.weight;

  for (const receiver of receivers) {
    while (loads[receiver]! < floor - tolerance) {
      const need = floor - loads[receiver]!;
      const byLoad = givers
        .filter((s) => loads[s]! > regularAverage)
        .sort((a, b) => loads[b]! - loads[a]! || a - b);
      let pick: { giver: number; index: number } | null = null;
      for (const giver of byLoad) {
        const limit = Math.min(need, loads[giver]! - floor, (loads[giver]! - loads[receiver]!) / 2);
        const list = pool.get(giver)!;
        const index = lastAtMost(list, limit, weightOf);
        if (index >= 0) {
          pick = { giver, index };
          break;
        }
      }
      if (pick === null) {
        // Nothing fits the deficit: accept the lightest tenant that overshoots less than it helps.
        for (const giver of byLoad) {
          const list = pool.get(giver)!;
          if (list.length === 0) continue;
          const weight = weightOf(list[0]!);
          const giverAfter = loads[giver]! - weight;
          if (weight < 2 * need && giverAfter >= floor && giverAfter >= loads[receiver]! + weight) {
            pick = { giver, index: 0 };
            break;
          }
        }
      }
      if (pick === null) break;
      const list = pool.get(pick.giver)!;
      const t = list[pick.index]!;
      list.splice(pick.index, 1);
      to[t] = receiver;
      loads[pick.giver]! -= weightOf(t);
      loads[receiver]! += weightOf(t);
    }
  }
}

/** Index of the last entry of an ascending-by-weight list with weight ≤ limit, or −1. */
function lastAtMost(list: readonly number[], limit: number, weightOf: (t: number) => number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (weightOf(list[mid]!) <= limit) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Turns a tenant → shard array (canonical tenant order) into an {@link AssignmentPlan}. */
function buildPlan(target: BalanceTarget, to: Int32Array): AssignmentPlan {
  const { tenants, shardCount } = target;
  const loads = new Array<number>(shardCount).fill(0);
  tenants.forEach((tenant, t) => {
    loads[to[t]!]! += tenant.weight;
  });

  const assignment = new Map<string, number>();
  const moves: TenantMove[] = [];
  let movedLoad = 0;
  for (const t of target.idOrder) {
    const { id, from, weight } = tenants[t]!;
    const shard = to[t]!;
    assignment.set(id, shard);
    if (from === shard) continue;
    moves.push({ id, from, to: shard, weight });
    if (from !== null) movedLoad += weight;
  }

  const maxLoad = loads.reduce((max, load) => Math.max(max, load), 0);
  return {
    shardCount,
    assignment,
    moves,
    movedLoad,
    minimumMovedLoad: target.minimumMovedLoad,
    loads,
    maxOverAvg: target.totalLoad > 0 ? maxLoad / target.averageLoad : 1,
  };
}

/**
 * Min-heap of shards by current load (ties: lower shard index), over a shared loads array. Only
 * the top ever changes, so "add weight to the least-loaded shard" is one sift-down.
 */
class LeastLoadedShards {
  private readonly heap: number[];
  private readonly loads: Float64Array;

  constructor(shards: readonly number[], loads: Float64Array) {
    this.heap = [...shards];
    this.loads = loads;
    for (let i = (this.heap.length >>> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /** The least-loaded shard. */
  peek(): number {
    return this.heap[0]!;
  }

  /** Adds `weight` to the least-loaded shard and restores heap order. */
  addToTop(weight: number): void {
    this.loads[this.heap[0]!]! += weight;
    this.siftDown(0);
  }

  private less(a: number, b: number): boolean {
    const la = this.loads[a]!;
    const lb = this.loads[b]!;
    return la < lb || (la === lb && a < b);
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) return;
      const right = left + 1;
      const child = right < heap.length && this.less(heap[right]!, heap[left]!) ? right : left;
      if (!this.less(heap[child]!, heap[i]!)) return;
      [heap[i], heap[child]] = [heap[child]!, heap[i]!];
      i = child;
    }
  }
}
