-- The evaluation fence and the new readings of a batch of tenants, in ONE statement (one snapshot):
-- per tenant its fence (tenant_fences: seq, judged_xid, eval_ms; seq 0 when it was never
-- evaluated), the read position of this statement (read_xid: the oldest transaction still running
-- in its snapshot, so every row below it that will ever be visible already is), and the readings
-- with judged_xid <= ingest_xid < read_xid: exactly those no committed evaluation has judged yet,
-- whatever their ts and however late their insert committed (migration 000008). The evaluation
-- that commits with this seq moves the fence to read_xid.
-- A tenant's first evaluation (no fence row) reads only readings with ts after $2, so a tenant
-- with a long history does not judge all of it at once.
-- Served by telemetry_tenant_id_ingest_xid_idx. One JSON array of [device, metric, ts_ms, value]
-- per tenant, sent as text: the evaluator parses a tenant's readings only when it evaluates it. ts
-- is truncated to whole milliseconds (the rules' unit). In no particular order: the evaluator sorts
-- each (device, metric) itself.
-- $1 = tenant ids, $2 = lower ts bound of a first evaluation (epoch ms, exclusive)
WITH snap AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
),
fence AS (
  SELECT w.tenant_id, f.seq, f.judged_xid, f.eval_ms
    FROM unnest($1::text[]) AS w (tenant_id)
    LEFT JOIN tenant_fences f ON f.tenant_id = w.tenant_id
)
SELECT fence.tenant_id,
       coalesce(fence.seq, 0)::text AS seq,
       coalesce(fence.judged_xid, '0'::xid8)::text AS judged_xid,
       fence.eval_ms,
       snap.xmin::text AS read_xid,
       (SELECT json_agg(json_build_array(t.device_id, t.metric,
                                         floor(extract(epoch FROM t.ts) * 1000)::float8, t.value))::text
          FROM telemetry t
         WHERE t.tenant_id = fence.tenant_id
           AND t.ingest_xid >= coalesce(fence.judged_xid, '0'::xid8)
           AND t.ingest_xid < snap.xmin
           AND (fence.seq IS NOT NULL OR t.ts > to_timestamp($2::float8 / 1000))) AS readings
  FROM fence CROSS JOIN snap
