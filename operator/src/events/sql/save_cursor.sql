-- Moves a relay's cursor forward (never back: a lagging second replica of the same name cannot
-- rewind it). $1 relay name, $2 xid (xid8 as text), $3 event id
INSERT INTO alert_event_cursors AS c (name, xid, event_id)
VALUES ($1, $2::xid8, $3::bigint)
ON CONFLICT (name) DO UPDATE
   SET xid = excluded.xid, event_id = excluded.event_id, updated_at = now()
 WHERE (c.xid, c.event_id) < (excluded.xid, excluded.event_id)
