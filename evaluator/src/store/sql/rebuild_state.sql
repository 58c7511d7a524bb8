-- What ONE tenant's evaluation state was after its last committed evaluation, rebuilt from
-- PostgreSQL when Valkey holds none of the fence's seq (flush, failover, a lagging write); the
-- evaluator turns the rows into a snapshot (state/rebuild.ts). A reading counts when the committed
-- evaluations judged it: its insert visible in the fence's judged snapshot, or no ingest_xid at all
-- (rows from before the fence, judged by definition); readings with a non-finite ts or value were never
-- judged by any rule (readingsFor drops them), so they are left out too.
--
-- One row per pair that has anything to rebuild (pair = 1-based position in the arrays):
--   readings            JSON [[ts_ms, value], …] of (device, metric), newest first, at most `take`:
--                       window pairs the newest maxLen with ts > $3 − window (no upper bound),
--                       anomaly pairs the newest R, absent pairs the newest one (any age).
--                       Each pair is one backward range scan of the telemetry primary key
--                       (tenant_id, device_id, metric, ts) that stops after `take` judged rows.
--   seen_fallback_ms    absent pairs without a judged reading: the latest of the tenant's first
--                       evaluation, the device's and the rule's created_at (when the pair was first
--                       seen is not stored; this approximates it, see state/rebuild.ts).
--   alert_*             the pair's newest alert row (highest id, any state): while an alert is open
--                       no newer row of its fingerprint can be inserted, so an open row is always
--                       the newest one; likewise its newest alert_suppressions row (a fire held
--                       back by maintenance, whose lifecycle is firing too). Of the two: an open
--                       alert, else an open suppression (state 'open': firing since its
--                       first_seen), else the later first_seen (the cooldown's start). Read for
--                       the whole tenant at once: a per-pair lookup has no index to order by (both
--                       tables have (tenant_id, rule_id) only), so this costs a scan of the
--                       tenant's alert and suppression history of the plan's rules.
-- ts are truncated to whole milliseconds, as telemetry.sql does.
-- $1 tenant id, $2 the judged snapshot (tenant_fences.judged as text; NULL = only rows without
-- ingest_xid), $3 tick time (ms); pairs as parallel arrays in plan order: $4 rule ids,
-- $5 device ids, $6 metrics, $7 window lengths (ms, NULL = no buffer), $8 readings to read (take,
-- 0 = none), $9 whether the pair tracks last-seen
WITH pairs AS (
  SELECT p.i::int AS pair, p.rule_id, p.device_id, p.metric, p.take, p.last_seen,
         CASE WHEN p.window_ms IS NULL THEN '-infinity'::timestamptz
              ELSE to_timestamp(($3::float8 - p.window_ms) / 1000) END AS after
    FROM unnest($4::text[], $5::text[], $6::text[], $7::float8[], $8::int[], $9::boolean[])
      WITH ORDINALITY AS p (rule_id, device_id, metric, window_ms, take, last_seen, i)
),
newest_alerts AS (
  SELECT DISTINCT ON (a.rule_id, a.device_id) a.rule_id, a.device_id, a.state, a.severity, a.first_seen
    FROM alerts a
   WHERE a.tenant_id = $1::text
     AND a.rule_id = ANY (ARRAY(SELECT DISTINCT r FROM unnest($4::text[]) AS r))
   ORDER BY a.rule_id, a.device_id, a.id DESC
),
newest_suppressions AS (
  SELECT DISTINCT ON (s.rule_id, s.device_id) s.rule_id, s.device_id, s.state, s.severity, s.first_seen
    FROM alert_suppressions s
   WHERE s.tenant_id = $1::text
     AND s.rule_id = ANY (ARRAY(SELECT DISTINCT r FROM unnest($4::text[]) AS r))
   ORDER BY s.rule_id, s.device_id, s.id DESC
),
-- The pair's lifecycle: an open alert, else an open suppression, else the newer of the two ended
-- ones (its first_seen is when the cooldown started).
newest AS (
  SELECT DISTINCT ON (x.rule_id, x.device_id) x.rule_id, x.device_id, x.state, x.severity, x.first_seen
    FROM (SELECT * FROM newest_alerts UNION ALL SELECT * FROM newest_suppressions) x
   ORDER BY x.rule_id, x.device_id, (x.state = 'open') DESC, x.first_seen DESC
)
SELECT p.pair,
       r.readings,
       CASE WHEN p.last_seen AND r.readings IS NULL THEN
         floor(extract(epoch FROM greatest(
           (SELECT f.first_evaluated_at FROM tenant_fences f WHERE f.tenant_id = $1::text),
           (SELECT d.created_at FROM devices d WHERE d.tenant_id = $1::text AND d.id = p.device_id),
           (SELECT ru.created_at FROM alert_rules ru WHERE ru.tenant_id = $1::text AND ru.id = p.rule_id)
         )) * 1000)::float8
       END AS seen_fallback_ms,
       na.state AS alert_state,
       na.severity::text AS alert_severity,
       floor(extract(epoch FROM na.first_seen) * 1000)::float8 AS alert_first_seen_ms
  FROM pairs p
  LEFT JOIN LATERAL (
    SELECT json_agg(json_build_array(floor(extract(epoch FROM t.ts) * 1000)::float8, t.value)) AS readings
      FROM (SELECT t.ts, t.value
              FROM telemetry t
             WHERE p.take > 0
               AND t.tenant_id = $1::text
               AND t.device_id = p.device_id
               AND t.metric = p.metric
               AND t.ts > p.after
               AND (t.ingest_xid IS NULL OR pg_visible_in_snapshot(t.ingest_xid, $2::pg_snapshot))
               AND isfinite(t.ts)
               AND t.value NOT IN ('NaN', 'Infinity', '-Infinity')
             ORDER BY t.ts DESC
             LIMIT p.take) t
  ) r ON true
  LEFT JOIN newest na ON na.rule_id = p.rule_id AND na.device_id = p.device_id
 WHERE r.readings IS NOT NULL OR na.state IS NOT NULL OR p.last_seen
