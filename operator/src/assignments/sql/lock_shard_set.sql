-- $1 advisory lock key of the shard set. Transaction-scoped: released by COMMIT or ROLLBACK, so a
-- crashed operator can never leave it held.
SELECT pg_advisory_xact_lock($1::bigint)
