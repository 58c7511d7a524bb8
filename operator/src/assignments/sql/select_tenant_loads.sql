-- $1 shard set → every tenant with its load and current shard.
SELECT id, weight, shard_index FROM tenants WHERE shard_set = $1
