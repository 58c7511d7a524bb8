-- The next events after a relay's cursor, in read order (migration 000009): (xid, id) after the
-- cursor, and only rows whose inserting transaction is below the xmin of this statement's snapshot.
-- Every transaction below it has ended, so a later read never finds a row before a position this
-- one returned: rows of a transaction still open (or one that commits after this snapshot) come
-- with a later read, whatever their id.
-- The ORDER BY names the table's columns (e.xid, e.id): a bare `xid, id` would name the output
-- columns, the text casts, and order "100" before "99" (and xid 100000 before 99999), so LIMIT
-- would take later events first and the cursor would pass over earlier ones.
-- $1 cursor xid (xid8 as text), $2 cursor event id, $3 at most this many rows
SELECT e.id::text AS id, e.xid::text AS xid, e.tenant_id, e.rule_id, e.device_id, e.kind, e.severity,
       e.alert_id::text AS alert_id, e.fingerprint, e.seq::text AS seq, e.tick_at, e.payload, e.created_at
  FROM alert_events e
 WHERE (e.xid, e.id) > ($1::xid8, $2::bigint)
   AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY e.xid, e.id
 LIMIT $3
