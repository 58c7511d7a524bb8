-- Enabled rules of a batch of tenants, as raw rows: parseRule validates each one, so a malformed
-- row is quarantined alone. Served by the primary key (tenant_id, id).
-- $1 = tenant ids
SELECT tenant_id, id, device_id, metric, rule_type, operator, threshold, window_seconds, min_count,
       cooldown_seconds, severity, escalation, params
  FROM alert_rules
 WHERE tenant_id = ANY ($1::text[])
   AND enabled
 ORDER BY tenant_id, id
