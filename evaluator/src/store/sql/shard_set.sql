-- The shard set's row: shard count and fencing epoch (informational for the evaluator, logged in
-- shard_config; membership comes from tenants, never from the count).
-- $1 = shard set name ("namespace/name")
SELECT shard_count, epoch::text AS epoch
  FROM shard_sets
 WHERE name = $1
