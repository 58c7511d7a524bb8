import { createHash } from "node:crypto";

/**
 * A PostgreSQL advisory lock key (signed 64-bit) derived from a readable name: the first 8 bytes of
 * its SHA-256. Deriving keys from names keeps unrelated locks of the product from colliding by
 * accident, and lets anyone recompute a key to look it up in `pg_locks`.
 */
export function advisoryLockKey(name: string): bigint {
  return createHash("sha256").update(name, "utf8").digest().readBigInt64BE(0);
}

/** Name of the lock that serializes migration runners on one database. */
export const MIGRATION_LOCK_NAME = "evaluator-operator:schema-migrations";

/** Key of the lock that serializes migration runners on one database. */
export const MIGRATION_LOCK_KEY: bigint = advisoryLockKey(MIGRATION_LOCK_NAME);
