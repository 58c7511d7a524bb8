-- The alert-event outbox: one row per change of an alert's state, appended by the evaluation's
-- commit statement (commit_evaluation.sql) in the same transaction as the change and the fence's
-- move, so a stale or duplicate evaluation, refused by the fence, appends nothing. A relay
-- (`evaluator-operator events relay`) publishes the rows to NATS JetStream; other consumers may
-- read the table by the same contract.
--
-- Kinds: fired (an alert row opened), escalated (an open alert's severity rose), resolved (an open
-- alert closed), suppressed (a fire held back by a maintenance window: no alert row is opened).
-- A condition that merely stays true (occurrences + 1) appends nothing.
--
-- Reading order. An identity is allocated when a row is inserted, not when its transaction
-- commits: a row with a smaller id can become visible after one with a larger id, so a reader
-- keeping "id > cursor" could skip it. Each row records the id of the transaction that inserted it
-- (xid, filled by the default) and readers read in (xid, id) order, only rows whose xid is below
-- the xmin of their snapshot (pg_snapshot_xmin(pg_current_snapshot())): every transaction below
-- that horizon has ended, so no row will ever appear below a position already read. A transaction
-- that writes and stays open delays the rows after it (it holds the horizon), never loses them.
--
-- No foreign keys: an event outlives the alert, rule, device or tenant it tells about, and the
-- commit statement must not pay a lookup per event. Retention deletes old rows
-- (`evaluator-operator events prune`, or the relay's --retention).
CREATE TABLE alert_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The inserting transaction; the read position is (xid, id).
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  tenant_id text NOT NULL,
  rule_id text NOT NULL,
  device_id text,
  kind text NOT NULL
    CONSTRAINT alert_events_kind_known CHECK (kind IN ('fired', 'escalated', 'resolved', 'suppressed')),
  -- The alert's severity after the change (a resolved alert's last severity).
  severity text NOT NULL,
  -- The alerts row (NULL for suppressed: no row was opened) and its fingerprint (the alert's key).
  alert_id bigint,
  fingerprint text NOT NULL,
  -- The fence seq the evaluation committed (tenant_fences.seq after it) and its tick time.
  seq bigint NOT NULL,
  tick_at timestamptz NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The read position: "(xid, id) after the cursor, xid below the horizon".
CREATE INDEX alert_events_xid_id_idx ON alert_events (xid, id);
-- Retention: "older than the cutoff".
CREATE INDEX alert_events_created_at_idx ON alert_events (created_at);

-- Where each relay (by name) has published to: the (xid, id) of the last event whose publish was
-- acknowledged. Moves forward only.
CREATE TABLE alert_event_cursors (
  name text PRIMARY KEY CONSTRAINT alert_event_cursors_name_not_empty CHECK (name <> ''),
  xid xid8 NOT NULL DEFAULT '0'::xid8,
  event_id bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
