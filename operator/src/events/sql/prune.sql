-- Retention: deletes up to $2 events created before $1 (epoch ms), oldest first, whether a relay
-- has published them or not. Run until it deletes fewer than $2.
WITH doomed AS (
  SELECT id FROM alert_events WHERE created_at < to_timestamp($1::float8 / 1000) ORDER BY created_at LIMIT $2
)
DELETE FROM alert_events e USING doomed d WHERE e.id = d.id
