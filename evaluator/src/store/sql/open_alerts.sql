-- Open alerts and open suppressions (migration 000010) of a batch of tenants (served by
-- alerts_open_tenant_id_idx and alert_suppressions_open_tenant_id_idx). A pair whose condition is
-- false this tick resolves its open alert, or ends its open suppression, even when its Valkey
-- lifecycle state was lost.
-- $1 = tenant ids
SELECT tenant_id, rule_id, device_id
  FROM alerts
 WHERE tenant_id = ANY ($1::text[])
   AND state = 'open'
UNION ALL
SELECT tenant_id, rule_id, device_id
  FROM alert_suppressions
 WHERE tenant_id = ANY ($1::text[])
   AND state = 'open'
