-- Events after a relay's cursor (published or not yet readable), for the backlog gauge; counted up
-- to $3 so a huge backlog costs a bounded scan. $1 cursor xid (xid8 as text), $2 cursor event id
SELECT count(*)::int AS backlog
  FROM (SELECT 1 FROM alert_events WHERE (xid, id) > ($1::xid8, $2::bigint) LIMIT $3) b
