-- $1 shard set, $2 tenant ids, $3 new shard indexes, $4 whether the move is a hand-off
-- (true: remember the old shard in prev_shard_index and stamp moved_at, so the old shard keeps
-- evaluating the tenant for one more interval under the tick lease; false: a first placement).
-- One statement for every moved tenant (unnest), never one per row.
UPDATE tenants AS t
   SET prev_shard_index = CASE WHEN m.handoff THEN t.shard_index ELSE t.prev_shard_index END,
       moved_at = CASE WHEN m.handoff THEN now() ELSE t.moved_at END,
       shard_index = m.shard_index
  FROM unnest($2::text[], $3::int[], $4::bool[]) AS m(id, shard_index, handoff)
 WHERE t.shard_set = $1 AND t.id = m.id
