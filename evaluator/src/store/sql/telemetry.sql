-- New readings of a batch of tenants: for each tenant, ts in (its own lower bound, tick time].
-- The per-tenant bounds come in as parallel arrays (unnest), so one statement serves the batch,
-- each tenant through telemetry_tenant_id_ts_idx. One JSON array of [device, metric, ts_ms, value]
-- per tenant, sent as text: the evaluator parses a tenant's readings only when it evaluates that
-- tenant. ts is truncated to whole milliseconds (the rules' unit). In no particular order: the
-- evaluator sorts each (device, metric) itself, and an ORDER BY inside the aggregate costs the
-- server a sort per tenant (about a quarter of this statement's time).
-- $1 = tenant ids, $2 = lower bounds (epoch ms, exclusive), $3 = tick time (epoch ms, inclusive)
SELECT w.tenant_id,
       json_agg(json_build_array(t.device_id, t.metric, floor(extract(epoch FROM t.ts) * 1000)::float8, t.value))::text
         AS readings
  FROM unnest($1::text[], $2::float8[]) AS w (tenant_id, since_ms)
  JOIN telemetry t
    ON t.tenant_id = w.tenant_id
   AND t.ts > to_timestamp(w.since_ms / 1000)
   AND t.ts <= to_timestamp($3::float8 / 1000)
 GROUP BY w.tenant_id
