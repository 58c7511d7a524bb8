-- $1 shard set, $2 shard count → are there tenants without a valid shard?
SELECT EXISTS (
  SELECT 1 FROM tenants WHERE shard_set = $1 AND (shard_index IS NULL OR shard_index >= $2)
) AS unplaced
