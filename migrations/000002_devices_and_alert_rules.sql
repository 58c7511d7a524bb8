-- Devices and alert rules, owned by the product, read by the evaluators every tick.
--
-- Hot query: enabled rules of a batch of tenants
--   SELECT ... FROM alert_rules WHERE tenant_id = ANY($1::text[]) AND enabled;
-- served by the primary key (tenant_id, id).
--
-- Ids are scoped to their tenant (composite keys), so two tenants may use the same external device
-- id, and a rule can only point at a device of its own tenant.

-- Alert severities, ordered: escalation may only raise a severity.
CREATE FUNCTION severity_rank(severity text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN array_position(ARRAY['info', 'warning', 'critical']::text[], severity);

CREATE DOMAIN alert_severity AS text
  CONSTRAINT alert_severity_known CHECK (severity_rank(VALUE) IS NOT NULL);

CREATE TABLE devices (
  tenant_id entity_id NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id entity_id NOT NULL,
  name text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TRIGGER devices_touch_updated_at BEFORE UPDATE ON devices
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE alert_rules (
  tenant_id entity_id NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id entity_id NOT NULL DEFAULT gen_random_uuid()::text,
  name text NOT NULL DEFAULT '',
  -- NULL = every device of the tenant.
  device_id entity_id,
  metric text NOT NULL CONSTRAINT alert_rules_metric_not_empty CHECK (metric <> ''),
  rule_type text NOT NULL
    CONSTRAINT alert_rules_rule_type_known CHECK (rule_type IN ('threshold', 'window', 'anomaly', 'pattern')),
  operator text CONSTRAINT alert_rules_operator_known CHECK (operator IN ('>', '>=', '<', '<=', '==', '!=')),
  threshold double precision,
  window_seconds integer CONSTRAINT alert_rules_window_seconds_range CHECK (window_seconds > 0),
  min_count integer CONSTRAINT alert_rules_min_count_range CHECK (min_count >= 1),
  cooldown_seconds integer NOT NULL DEFAULT 300
    CONSTRAINT alert_rules_cooldown_seconds_range CHECK (cooldown_seconds >= 0),
  severity alert_severity NOT NULL DEFAULT 'warning',
  -- {"after_seconds": 600, "severity": "critical"}: raise the severity once the condition has held
  -- that long. Other keys are allowed (future settings).
  escalation jsonb,
  -- Type-specific settings (anomaly, pattern), always an object.
  params jsonb NOT NULL DEFAULT '{}'::jsonb,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  -- A device-specific rule goes away with its device (MATCH SIMPLE: not checked when device_id is NULL).
  FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT alert_rules_comparison_required
    CHECK (rule_type NOT IN ('threshold', 'window') OR (operator IS NOT NULL AND threshold IS NOT NULL)),
  CONSTRAINT alert_rules_window_required
    CHECK (rule_type <> 'window' OR (window_seconds IS NOT NULL AND min_count IS NOT NULL)),
  CONSTRAINT alert_rules_params_object CHECK (jsonb_typeof(params) = 'object'),
  -- CASE, not AND: SQL does not promise left-to-right evaluation, and the cast must only see numbers.
  CONSTRAINT alert_rules_escalation_shape CHECK (
    escalation IS NULL
    OR CASE
      WHEN jsonb_typeof(escalation) = 'object' AND jsonb_typeof(escalation -> 'after_seconds') = 'number'
        THEN (escalation ->> 'after_seconds')::numeric > 0
          AND coalesce(severity_rank(escalation ->> 'severity') > severity_rank(severity), false)
      ELSE false
    END
  )
);

CREATE TRIGGER alert_rules_touch_updated_at BEFORE UPDATE ON alert_rules
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Serves the device foreign key (ON DELETE CASCADE from devices) and "rules of this device".
CREATE INDEX alert_rules_tenant_id_device_id_idx ON alert_rules (tenant_id, device_id)
  WHERE device_id IS NOT NULL;
