-- A relay's cursor: the (xid, id) of the last event whose publish was acknowledged. No row: none yet.
-- $1 relay name
SELECT xid::text, event_id::text FROM alert_event_cursors WHERE name = $1
