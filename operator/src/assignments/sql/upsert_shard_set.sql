-- $1 shard set. Makes sure the row exists (shard_count 0 = never committed), then locks it.
INSERT INTO shard_sets (name, shard_count) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING;
