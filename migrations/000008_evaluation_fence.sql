-- The per-tenant evaluation fence: what makes every reading judged exactly once and the evaluations
-- of one tenant totally ordered, whichever evaluators (old and new owner of a hand-off, two pods of
-- a rollout, a restarted process) try to evaluate it.
--
-- 1. A commit-ordered read position. Each telemetry row records the id of the transaction that
--    inserted it (ingest_xid, filled by the default; the ingest side changes nothing). An evaluator
--    reads, in ONE statement, the readings visible in that statement's snapshot but not in the
--    snapshot its fence's last evaluation read with (judged): pg_visible_in_snapshot tells, from
--    the snapshot's xmin, xmax and list of running transactions. The next evaluation starts from
--    this statement's snapshot. A row whose insert commits late is invisible to one snapshot and
--    visible to the next, so it is read exactly once, whatever its ts; unlike a ts or bigserial
--    cursor, nothing committed late is skipped, and unlike a position at the snapshot's xmin, a
--    long transaction elsewhere on the server delays only its own rows.
--    Rows written before this migration have no ingest_xid: they count as judged.
-- 2. tenant_fences: per tenant the number of committed evaluations (seq), the snapshot its newest
--    evaluation read with (judged) and that evaluation's tick time. An evaluation loads the row with its
--    readings and commits with a compare-and-set (seq = loaded seq, tick time not older) in the
--    same statement as its alert writes; zero rows means a newer evaluation committed first, and
--    then nothing of the stale one is written.
--
-- Reads start at the judged snapshot's xmin in the index below; a transaction left open for long
-- makes each read scan the rows inserted since it began (they are filtered out, not read twice).
ALTER TABLE telemetry ADD COLUMN ingest_xid xid8;
-- Set after ADD COLUMN, so the rows already there are not rewritten (they keep NULL: judged).
ALTER TABLE telemetry ALTER COLUMN ingest_xid SET DEFAULT pg_current_xact_id();

-- "Readings of these tenants between two positions" (every evaluation).
CREATE INDEX telemetry_tenant_id_ingest_xid_idx ON telemetry (tenant_id, ingest_xid);

CREATE TABLE tenant_fences (
  tenant_id entity_id PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  -- Committed evaluations so far; the next commit must name this value.
  seq bigint NOT NULL CONSTRAINT tenant_fences_seq_range CHECK (seq >= 1),
  -- The snapshot the newest evaluation read with: the readings visible in it are judged.
  judged pg_snapshot NOT NULL,
  -- Tick time (epoch ms) of the newest committed evaluation; a later commit may not be older.
  eval_ms double precision NOT NULL,
  -- Lease token of the evaluator that committed it (for logs and the history checker).
  evaluator text NOT NULL,
  first_evaluated_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
)
-- Updated once per tenant and tick, on no indexed column: room for HOT updates.
WITH (fillfactor = 50);
