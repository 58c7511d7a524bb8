-- The evaluation fence and the new readings of a batch of tenants, in ONE statement (one snapshot):
-- per tenant its fence (tenant_fences: seq, judged, eval_ms; seq 0 when it was never evaluated),
-- the snapshot of this statement (read_snapshot), and the readings visible in it that were not
-- visible in the snapshot the fence's last evaluation read with: exactly those no committed
-- evaluation has judged yet, whatever their ts and however late their insert committed (migration
-- 000008). The evaluation that commits with this seq stores read_snapshot as the new judged one.
-- A tenant's first evaluation (no fence row) reads only readings with ts after $2, so a tenant
-- with a long history does not judge all of it at once. Rows from before migration 000008 have no
-- ingest_xid and are never read.
-- Served by telemetry_tenant_id_ingest_xid_idx from the judged snapshot's xmin. One JSON array of
-- [device, metric, ts_ms, value] per tenant, sent as text: the evaluator parses a tenant's readings
-- only when it evaluates it. ts is truncated to whole milliseconds (the rules' unit). In no
-- particular order: the evaluator sorts each (device, metric) itself.
-- At most $3 + 1 readings of a tenant are read: reading_count is their number, and readings is
-- NULL when there are more than $3 (the tenant is over its readings limit and not evaluated this
-- tick, so no more than that is ever built or sent for it; its fence stays, nothing is lost).
-- $1 = tenant ids, $2 = lower ts bound of a first evaluation (epoch ms, exclusive),
-- $3 = the readings limit of one tenant (NULL: none)
WITH fence AS (
  SELECT w.tenant_id, f.seq, f.judged, f.eval_ms
    FROM unnest($1::text[]) AS w (tenant_id)
    LEFT JOIN tenant_fences f ON f.tenant_id = w.tenant_id
)
SELECT fence.tenant_id,
       coalesce(fence.seq, 0)::text AS seq,
       fence.judged::text AS judged,
       fence.eval_ms,
       pg_current_snapshot()::text AS read_snapshot,
       r.n AS reading_count,
       CASE WHEN $3::int IS NULL OR r.n <= $3::int THEN r.readings END AS readings
  FROM fence
  CROSS JOIN LATERAL (
    SELECT count(*)::int AS n,
           json_agg(json_build_array(t.device_id, t.metric,
                                     floor(extract(epoch FROM t.ts) * 1000)::float8, t.value))::text AS readings
      FROM (SELECT t.device_id, t.metric, t.ts, t.value
              FROM telemetry t
             WHERE t.tenant_id = fence.tenant_id
               AND t.ingest_xid >= coalesce(pg_snapshot_xmin(fence.judged), '0'::xid8)
               AND CASE WHEN fence.judged IS NULL THEN t.ts > to_timestamp($2::float8 / 1000)
                        ELSE NOT pg_visible_in_snapshot(t.ingest_xid, fence.judged) END
             LIMIT $3::int + 1) t
  ) r
