-- Telemetry readings: the high-volume, append-mostly table.
--
-- Hot query: new readings of a batch of tenants since the previous tick
--   SELECT tenant_id, device_id, metric, ts, value FROM telemetry
--    WHERE tenant_id = ANY($1::text[]) AND ts > $2;
-- served by telemetry_tenant_id_ts_idx. Window rules read one series over a time range through the
-- primary key (tenant_id, device_id, metric, ts), which also makes re-delivered readings idempotent
-- (INSERT ... ON CONFLICT DO NOTHING).
--
-- Ingest wake-up: after each flush the ingest side runs NOTIFY telemetry_ingest (channel name is the
-- contract; the payload is not). Evaluators LISTEN on it only to wake early, coalesced, never more
-- often than their minimum interval. No trigger here: one NOTIFY per flush, not one per row.
--
-- ts is the reading's own time, so a reading that arrives late (ts behind the reader's watermark) is
-- not "new" by this query; readers that must see late data overlap their window by an allowed
-- lateness and rely on the alert dedup.
--
-- No foreign keys on purpose: they would cost a lookup per inserted row on the hottest write path,
-- and readings of a deleted tenant or device are removed by retention like any other.
--
-- Growth: when the table gets large, convert it to range partitions by ts (daily or weekly) so that
-- retention is DROP PARTITION instead of DELETE + VACUUM; ts is already in the primary key, as
-- partitioning requires. A BRIN index on ts then serves cross-tenant time scans (maintenance,
-- exports) cheaply because rows arrive roughly in ts order; it cannot replace the btree above,
-- which must narrow by tenant first.
CREATE TABLE telemetry (
  tenant_id text NOT NULL,
  device_id text NOT NULL,
  metric text NOT NULL,
  ts timestamptz NOT NULL,
  value double precision NOT NULL,
  PRIMARY KEY (tenant_id, device_id, metric, ts)
);

CREATE INDEX telemetry_tenant_id_ts_idx ON telemetry (tenant_id, ts);
