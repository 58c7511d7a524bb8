-- The tenants one shard evaluates this tick: its own (shard_index = $2) and those that left it
-- less than one tick interval ago, which it keeps evaluating during the hand-off. `handoff` marks
-- the tenants another shard may be evaluating too (moved in or out less than one interval ago):
-- those take the Valkey tick lease, so one evaluator does the work of a slot; the fence in
-- PostgreSQL (tenant_fences) keeps every evaluation exactly-once whether or not a lease was had.
-- Served by tenants_shard_set_shard_index_idx and tenants_shard_set_prev_shard_index_moved_at_idx.
-- $1 = shard set, $2 = shard index, $3 = tick time minus one interval (epoch ms)
SELECT id,
       coalesce(shard_index = $2, false) AS owned,
       (prev_shard_index IS NOT NULL AND moved_at > to_timestamp($3::float8 / 1000)) AS handoff
  FROM tenants
 WHERE shard_set = $1
   AND (shard_index = $2 OR (prev_shard_index = $2 AND moved_at > to_timestamp($3::float8 / 1000)))
 ORDER BY id
