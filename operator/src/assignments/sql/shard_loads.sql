-- $1 shard set → tenants and total load per shard_index (NULL = unassigned).
SELECT shard_index, count(*)::int AS tenants, coalesce(sum(weight), 0)::float8 AS load
  FROM tenants
 WHERE shard_set = $1
 GROUP BY shard_index
 ORDER BY shard_index NULLS LAST
