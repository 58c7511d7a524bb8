/**
 * Bounds on one tenant's evaluation, checked before anything expensive is built. Planning,
 * evaluating and storing a tenant run on the event loop and are proportional to its (rule, device)
 * pairs and its readings; neither the tenant budget (a timer, which cannot fire while the loop is
 * busy) nor the concurrency limit interrupts one huge tenant, which would stall every other tenant
 * of the shard, and its Valkey calls would stall every shard. A tenant over a limit is quarantined
 * for the tick: not evaluated, its fence unmoved, so its readings are judged once the limit is raised
 * (or the tenant shrinks). Pure, so it is unit-tested apart from the tick.
 */
import { countPairs, type TenantInput } from "../rules/planTenant.ts";

/** The limits of one tenant's evaluation (`TENANT_MAX_PAIRS`, `TENANT_MAX_READINGS`). */
export interface TenantLimits {
  /** (rule, device) pairs of one evaluation: the plan's size. */
  readonly maxPairs: number;
  /** Readings one evaluation judges (those since the tenant's fence). */
  readonly maxReadings: number;
}

/**
 * Defaults, sized on the product's largest tenant (2,000 sensors, reporting once a minute, a few
 * rules each):
 * - 50,000 pairs: 2,000 sensors × 25 unbound rules, 8× the 6,000 pairs of 2,000 sensors × 3 rules.
 *   On the development machine a 50,000-pair plan takes about 50 ms and 15–25 MB; counting the
 *   pairs of a tenant instead takes under 1 ms (28 ms for 100,000 devices).
 * - 200,000 readings: a tenant's first evaluation reads its last hour, 120,000 readings for 2,000
 *   sensors at one a minute; 200,000 readings parse and group in about 150 ms (about 70 MB of heap).
 * Ten unbound rules over 100,000 devices (1,000,000 pairs: a 2.1 s plan of 220 MB) are 20× over
 * the pair limit.
 */
export const DEFAULT_TENANT_LIMITS: TenantLimits = Object.freeze({ maxPairs: 50_000, maxReadings: 200_000 });

/** Which limit a tenant exceeded (the `limit` label of `evaluator_tenants_over_limit_total`). */
export type TenantLimitName = "pairs" | "readings";

export const TENANT_LIMIT_NAMES: readonly TenantLimitName[] = ["pairs", "readings"];

/**
 * A tenant over a limit: which one, the limit, and the tenant's count (pairs: exact; readings:
 * counted up to `cap + 1`, so a tenant far over the limit costs PostgreSQL no more than that).
 */
export interface LimitExceeded {
  readonly limit: TenantLimitName;
  readonly cap: number;
  readonly count: number;
}

/**
 * The readings limit, on the count the batch read returned (`TenantData.readingCount`, which the
 * SQL stops counting at `maxReadings + 1`), before any reading is parsed.
 */
export function checkReadings(readingCount: number, limits: TenantLimits): LimitExceeded | null {
  return readingCount > limits.maxReadings
    ? { limit: "readings", cap: limits.maxReadings, count: readingCount }
    : null;
}

/**
 * The pairs limit, on the count {@link countPairs} makes of the input (rules × matching devices,
 * without building the plan).
 */
export function checkPairs(input: TenantInput, limits: TenantLimits): LimitExceeded | null {
  const count = countPairs(input);
  return count > limits.maxPairs ? { limit: "pairs", cap: limits.maxPairs, count } : null;
}
