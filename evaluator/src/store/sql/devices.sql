-- Device ids of a batch of tenants, one JSON array per tenant (one row and one JSON.parse per
-- tenant instead of one row object per device: the batch can hold hundreds of thousands).
-- $1 = tenant ids
SELECT tenant_id, json_agg(id ORDER BY id) AS device_ids
  FROM devices
 WHERE tenant_id = ANY ($1::text[])
 GROUP BY tenant_id
