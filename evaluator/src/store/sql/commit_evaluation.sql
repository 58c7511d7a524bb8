-- Commits ONE tenant's evaluation, in one statement (so one transaction: all or nothing) and one
-- round trip: the fence first, then every alert write of the evaluation, only if the fence moved.
--   fence:    tenant_fences moves from the seq the evaluation loaded ($13) to $13 + 1, its judged
--             snapshot to the one the evaluation read with ($14), its tick time to $12 — only when
--             the stored seq is still $13 and the stored tick time is not newer than $12. Otherwise
--             a newer evaluation committed first (another evaluator, or this one's previous tick
--             finishing late) and this one is stale: zero rows, and nothing below is written.
--             Concurrent commits of one tenant serialize on the fence row; the loser re-checks the
--             WHERE against the winner's row and finds its seq gone.
--   upserted: fire and still-firing actions. ON CONFLICT on the open fingerprint: last_seen,
--             value and message move on, occurrences + 1, and the severity only ever rises
--             (escalation), stamping escalated_at when it does. Rows whose rule or device no longer
--             exists (deleted since the tick read them, or a device that reports without being
--             registered) are skipped instead of failing the foreign keys.
--   resolved: open alerts whose condition cleared.
--   suppressions (migration 000010): a fire held back by maintenance ($17-$22) opens an
--             alert_suppressions row, unless one is open for its fingerprint already (a lifecycle
--             Valkey lost and the rebuild could not restore); the open suppression of a fingerprint
--             that is upserted (its alert opens: the window ended) or resolved (its condition
--             cleared) ends. Written whether or not events are appended: the rebuild reads them.
--   events:   when $16, one alert_events row per change of an alert's state, as the writes above
--             made it (migration 000009): fired (a row inserted), escalated (an open row's
--             severity rose), resolved, and suppressed (a suppression opened: no alert row). A bump
--             of an open alert, or a fire held back again by an open suppression, is no change. Stamped with the seq this
--             commit moves the fence to and the tick time; then pg_notify('alert_events', tenant)
--             wakes the relay when the transaction commits.
-- Fingerprints of the upserts, the resolves and the suppressed fires are disjoint (one action per
-- (rule, device)).
-- $1 tenant id; upserts as parallel arrays: $2 rule ids, $3 device ids, $4 fingerprints,
-- $5 severities, $6 first seen (ms), $7 last seen (ms), $8 values, $9 messages, $10 escalated;
-- $11 fingerprints to resolve, $12 tick time (ms); $13 the fence seq the evaluation loaded (0: none),
-- $14 the snapshot it read with (pg_snapshot as text), $15 the evaluator's token; $16 append alert
-- events; suppressed fires as parallel arrays: $17 rule ids, $18 device ids, $19 fingerprints,
-- $20 severities, $21 values, $22 messages; $23 synchronous_commit of this transaction (NULL: the
-- session's), set here rather than on the session so that it holds through a transaction pooler
WITH fence AS (
  INSERT INTO tenant_fences AS f (tenant_id, seq, judged, eval_ms, evaluator)
  VALUES ($1::text, $13::bigint + 1, $14::pg_snapshot, $12::float8, $15::text)
  ON CONFLICT (tenant_id) DO UPDATE
     SET seq = excluded.seq,
         judged = excluded.judged,
         eval_ms = excluded.eval_ms,
         evaluator = excluded.evaluator,
         updated_at = now()
   WHERE f.seq = $13::bigint
     AND f.eval_ms <= excluded.eval_ms
  RETURNING 1
),
input AS (
  SELECT *
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[],
                $8::float8[], $9::text[], $10::boolean[])
      AS u (rule_id, device_id, fingerprint, severity, first_seen_ms, last_seen_ms, value, message, escalated)
   WHERE EXISTS (SELECT 1 FROM fence)
),
upserted AS (
  INSERT INTO alerts AS a (tenant_id, rule_id, device_id, fingerprint, severity, first_seen, last_seen,
                           escalated_at, value, message)
  SELECT $1::text, i.rule_id, i.device_id, i.fingerprint, i.severity,
         to_timestamp(i.first_seen_ms / 1000), to_timestamp(i.last_seen_ms / 1000),
         CASE WHEN i.escalated THEN to_timestamp(i.last_seen_ms / 1000) END, i.value, i.message
    FROM input i
   WHERE EXISTS (SELECT 1 FROM alert_rules r WHERE r.tenant_id = $1::text AND r.id = i.rule_id)
     AND EXISTS (SELECT 1 FROM devices d WHERE d.tenant_id = $1::text AND d.id = i.device_id)
  ON CONFLICT (fingerprint) WHERE state = 'open' DO UPDATE
     SET last_seen = greatest(a.last_seen, excluded.last_seen),
         occurrences = a.occurrences + 1,
         value = excluded.value,
         message = excluded.message,
         severity = CASE WHEN severity_rank(excluded.severity) > severity_rank(a.severity)
                         THEN excluded.severity ELSE a.severity END,
         escalated_at = CASE WHEN severity_rank(excluded.severity) > severity_rank(a.severity)
                             THEN excluded.last_seen ELSE a.escalated_at END
  RETURNING a.id, a.rule_id, a.device_id, a.fingerprint, a.severity::text AS severity, a.value, a.message,
            a.first_seen, a.last_seen, (xmax = 0) AS inserted
),
resolved AS (
  UPDATE alerts
     SET state = 'resolved', resolved_at = greatest(last_seen, to_timestamp($12::float8 / 1000))
   WHERE fingerprint = ANY ($11::text[])
     AND state = 'open'
     AND tenant_id = $1::text
     AND EXISTS (SELECT 1 FROM fence)
  RETURNING id, rule_id, device_id, fingerprint, severity::text AS severity, value, first_seen, last_seen,
            resolved_at, occurrences
),
-- The same guard as the upsert's: no suppression of a rule or device that does not exist.
held AS (
  SELECT *
    FROM unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::float8[], $22::text[])
      AS s (rule_id, device_id, fingerprint, severity, value, message)
   WHERE EXISTS (SELECT 1 FROM fence)
     AND EXISTS (SELECT 1 FROM alert_rules r WHERE r.tenant_id = $1::text AND r.id = s.rule_id)
     AND EXISTS (SELECT 1 FROM devices d WHERE d.tenant_id = $1::text AND d.id = s.device_id)
),
suppressed AS (
  INSERT INTO alert_suppressions (tenant_id, rule_id, device_id, fingerprint, severity, first_seen)
  SELECT $1::text, h.rule_id, h.device_id, h.fingerprint, h.severity::alert_severity,
         to_timestamp($12::float8 / 1000)
    FROM held h
  ON CONFLICT (fingerprint) WHERE state = 'open' DO NOTHING
  RETURNING fingerprint
),
unsuppressed AS (
  UPDATE alert_suppressions
     SET state = 'ended', ended_at = greatest(first_seen, to_timestamp($12::float8 / 1000))
   WHERE fingerprint = ANY ($4::text[] || $11::text[])
     AND state = 'open'
     AND tenant_id = $1::text
     AND EXISTS (SELECT 1 FROM fence)
  RETURNING 1
),
-- The severities of the upserted fingerprints' open alerts before this statement (its snapshot),
-- to tell an escalation. Nothing else writes them meanwhile: another commit of the tenant that
-- committed after this snapshot moved the fence, and then this one's compare-and-set fails.
prev AS (
  SELECT a.id, a.severity::text AS severity
    FROM alerts a
   WHERE a.fingerprint = ANY ($4::text[])
     AND a.state = 'open'
     AND a.tenant_id = $1::text
     AND $16::boolean
),
events AS (
  INSERT INTO alert_events (tenant_id, rule_id, device_id, kind, severity, alert_id, fingerprint, seq,
                            tick_at, payload)
  SELECT $1::text, e.rule_id, e.device_id, e.kind, e.severity, e.alert_id, e.fingerprint, $13::bigint + 1,
         to_timestamp($12::float8 / 1000), e.payload
    FROM (
      SELECT u.rule_id, u.device_id, 'fired' AS kind, u.severity, u.id AS alert_id, u.fingerprint,
             jsonb_build_object('value', u.value, 'message', u.message, 'first_seen', u.first_seen,
                                'last_seen', u.last_seen) AS payload
        FROM upserted u
       WHERE u.inserted
      UNION ALL
      SELECT u.rule_id, u.device_id, 'escalated', u.severity, u.id, u.fingerprint,
             jsonb_build_object('previous_severity', p.severity, 'value', u.value, 'message', u.message,
                                'first_seen', u.first_seen, 'last_seen', u.last_seen)
        FROM upserted u
        JOIN prev p ON p.id = u.id
       WHERE NOT u.inserted
         AND severity_rank(u.severity) > severity_rank(p.severity)
      UNION ALL
      SELECT r.rule_id, r.device_id, 'resolved', r.severity, r.id, r.fingerprint,
             jsonb_build_object('value', r.value, 'first_seen', r.first_seen, 'last_seen', r.last_seen,
                                'resolved_at', r.resolved_at, 'occurrences', r.occurrences)
        FROM resolved r
      UNION ALL
      SELECT h.rule_id, h.device_id, 'suppressed', h.severity, NULL, h.fingerprint,
             jsonb_build_object('reason', 'maintenance', 'value', h.value, 'message', h.message)
        FROM held h
        JOIN suppressed s ON s.fingerprint = h.fingerprint
    ) e
   WHERE $16::boolean
   ORDER BY e.rule_id, e.device_id
  RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM fence) AS applied,
       (SELECT count(*) FROM upserted WHERE inserted)::int AS opened,
       (SELECT count(*) FROM upserted WHERE NOT inserted)::int AS updated,
       (SELECT count(*) FROM resolved)::int AS resolved,
       (SELECT count(*) FROM events)::int AS events,
       (SELECT count(*) FROM suppressed)::int AS suppressions_opened,
       (SELECT count(*) FROM unsuppressed)::int AS suppressions_ended,
       -- Delivered at commit, and only then; one per tenant commit that appended events.
       (SELECT count(*) FROM (SELECT pg_notify('alert_events', $1::text) WHERE EXISTS (SELECT 1 FROM events)) n)::int
         AS notified,
       -- SET LOCAL: read when this statement's transaction commits, gone after it.
       set_config('synchronous_commit', coalesce($23::text, current_setting('synchronous_commit')), true)
         AS synchronous_commit
