/**
 * The planner's input row, shared by the balance target and the assignment planner (so neither
 * imports the other).
 */

/** A tenant, its evaluation load and where it is now. */
export interface TenantLoad {
  readonly id: string;
  /** Evaluation load (devices × rules). Below one unit, or not finite, counts as one unit. */
  readonly weight: number;
  /** Current shard; `null` (or a negative or fractional value) if never placed. May be ≥ shardCount. */
  readonly shard: number | null;
}
