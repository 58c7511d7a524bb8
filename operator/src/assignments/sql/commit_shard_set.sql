-- $1 shard set, $2 new shard count, $3 whether to bump the fencing epoch, $4 last reshard summary.
UPDATE shard_sets
   SET shard_count = $2,
       epoch = epoch + CASE WHEN $3::bool THEN 1 ELSE 0 END,
       last_reshard = COALESCE($4::jsonb, last_reshard)
 WHERE name = $1
RETURNING epoch
