-- Maintenance windows of a batch of tenants active at the tick time (device_id NULL = the whole
-- tenant). Served by maintenance_windows_tenant_id_ends_at_idx.
-- $1 = tenant ids, $2 = tick time (epoch ms)
SELECT tenant_id, device_id
  FROM maintenance_windows
 WHERE tenant_id = ANY ($1::text[])
   AND ends_at > to_timestamp($2::float8 / 1000)
   AND starts_at <= to_timestamp($2::float8 / 1000)
