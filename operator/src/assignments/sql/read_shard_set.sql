-- $1 shard set ("namespace/name") → its committed shard count, epoch and tenant count.
SELECT s.shard_count, s.epoch, s.last_reshard,
       (SELECT count(*) FROM tenants t WHERE t.shard_set = $1)::int AS tenants
  FROM (SELECT 1) AS one
  LEFT JOIN shard_sets s ON s.name = $1
