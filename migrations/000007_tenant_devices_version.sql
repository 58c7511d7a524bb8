-- A version of each tenant's device list, changed by every statement that inserts, deletes or
-- re-keys devices of the tenant (and by TRUNCATE). Evaluators keep the device lists they read and
-- re-read only the tenants whose version moved, instead of every device of every tenant on every
-- tick.
--
-- Versions come from one sequence, so a version is never given twice: a tenant deleted and created
-- again, or a list changed back, never shows an evaluator a version it already holds.
-- Statement-level triggers with transition tables: a bulk load of many devices changes each
-- tenant's version once per statement, not once per row.
CREATE SEQUENCE tenant_devices_version_seq;

ALTER TABLE tenants
  ADD COLUMN devices_version bigint NOT NULL DEFAULT nextval('tenant_devices_version_seq');

CREATE FUNCTION bump_devices_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE tenants t SET devices_version = nextval('tenant_devices_version_seq')
     WHERE t.id IN (SELECT tenant_id FROM new_devices);
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE tenants t SET devices_version = nextval('tenant_devices_version_seq')
     WHERE t.id IN (SELECT tenant_id FROM old_devices);
  ELSIF TG_OP = 'UPDATE' THEN
    -- Only a changed key (tenant_id, id) changes a device list; a renamed device does not.
    UPDATE tenants t SET devices_version = nextval('tenant_devices_version_seq')
     WHERE t.id IN (SELECT coalesce(o.tenant_id, n.tenant_id)
                      FROM old_devices o
                      FULL JOIN new_devices n ON n.tenant_id = o.tenant_id AND n.id = o.id
                     WHERE o.id IS NULL OR n.id IS NULL);
  ELSE
    -- TRUNCATE: every list may have changed.
    UPDATE tenants SET devices_version = nextval('tenant_devices_version_seq');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER devices_bump_version_insert AFTER INSERT ON devices
  REFERENCING NEW TABLE AS new_devices
  FOR EACH STATEMENT EXECUTE FUNCTION bump_devices_version();
CREATE TRIGGER devices_bump_version_delete AFTER DELETE ON devices
  REFERENCING OLD TABLE AS old_devices
  FOR EACH STATEMENT EXECUTE FUNCTION bump_devices_version();
CREATE TRIGGER devices_bump_version_update AFTER UPDATE ON devices
  REFERENCING OLD TABLE AS old_devices NEW TABLE AS new_devices
  FOR EACH STATEMENT EXECUTE FUNCTION bump_devices_version();
CREATE TRIGGER devices_bump_version_truncate AFTER TRUNCATE ON devices
  FOR EACH STATEMENT EXECUTE FUNCTION bump_devices_version();
