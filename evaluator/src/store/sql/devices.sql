-- Device ids of the tenants of a batch whose device list changed since the caller read it: one row
-- per such tenant, with its list as one JSON array (one JSON.parse per tenant instead of one row
-- object per device) and the list's version (tenants.devices_version, bumped by every statement
-- that adds, removes or re-keys a device). Read in one snapshot, so a list and its version match.
-- $1 = tenant ids, $2 = the versions the caller holds, NULL where it holds none
SELECT t.id AS tenant_id,
       t.devices_version::text AS version,
       coalesce((SELECT json_agg(d.id ORDER BY d.id) FROM devices d WHERE d.tenant_id = t.id),
                '[]'::json) AS device_ids
  FROM unnest($1::text[], $2::bigint[]) AS w (tenant_id, known_version)
  JOIN tenants t ON t.id = w.tenant_id
 WHERE t.devices_version IS DISTINCT FROM w.known_version
