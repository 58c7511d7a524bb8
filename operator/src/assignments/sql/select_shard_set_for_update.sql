SELECT shard_count, epoch, last_reshard FROM shard_sets WHERE name = $1 FOR UPDATE
