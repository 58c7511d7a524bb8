-- The figures of the last committed reshard (from, to, moved tenants, moved load, minimum load),
-- written in the same transaction as the reassignment. An operator that crashed between that
-- commit and its status write reads them back, so the reported reshard is the real one.
ALTER TABLE shard_sets ADD COLUMN last_reshard jsonb;
