-- $1 shard set ("namespace/name") → its committed shard count, epoch, tenant count and total tenant
-- load (each weight counted as the planner counts it: at least one unit).
SELECT s.shard_count, s.epoch, s.last_reshard,
       (SELECT count(*) FROM tenants t WHERE t.shard_set = $1)::int AS tenants,
       (SELECT coalesce(sum(greatest(coalesce(t.weight, 1), 1)), 0)
          FROM tenants t WHERE t.shard_set = $1)::float8 AS total_load
  FROM (SELECT 1) AS one
  LEFT JOIN shard_sets s ON s.name = $1
