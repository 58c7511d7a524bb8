/**
 * The database side of a shard set: which tenant belongs to which shard. Implemented against
 * PostgreSQL in pgTenantAssignments.ts; the reconcile only sees this interface.
 */
export interface AssignmentSnapshot {
  /** Shard count the tenants are committed to (null when the set has never been committed). */
  readonly shardCount: number | null;
  readonly epoch: number;
  readonly tenants: number;
  /** Sum of the tenants' load (devices × rules, at least one unit each): the autoscaler's load floor. */
  readonly totalLoad: number;
}

export interface CommitResult {
  readonly epoch: number;
  readonly shardCount: number;
  readonly tenants: number;
  readonly moved: number;
  readonly movedLoad: number;
  readonly minimumMovedLoad: number;
  /** True when the database already held this shard count (a resumed reshard); nothing was rewritten. */
  readonly alreadyCommitted: boolean;
}

export interface TenantAssignments {
  read(): Promise<AssignmentSnapshot>;
  /**
   * In one transaction under the set's advisory lock: plans the move to `shardCount`, rewrites
   * shard_index (setting prev_shard_index and moved_at of moved tenants) and bumps the epoch.
   * Idempotent: when the database already holds `shardCount`, only unassigned tenants are placed.
   */
  commit(shardCount: number): Promise<CommitResult>;
  /** Places tenants without a shard (created since the last reshard) on the least-loaded shards. */
  assignNew(): Promise<number>;
}
