-- The next events after a relay's cursor, in read order (migration 000009): (xid, id) after the
-- cursor, and only rows whose inserting transaction is below the xmin of this statement's snapshot.
-- Every transaction below it has ended, so a later read never finds a row before a position this
-- one returned: rows of a transaction still open (or one that commits after this snapshot) come
-- with a later read, whatever their id.
-- $1 cursor xid (xid8 as text), $2 cursor event id, $3 at most this many rows
SELECT id::text, xid::text, tenant_id, rule_id, device_id, kind, severity, alert_id::text, fingerprint,
       seq::text, tick_at, payload, created_at
  FROM alert_events
 WHERE (xid, id) > ($1::xid8, $2::bigint)
   AND xid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY xid, id
 LIMIT $3
