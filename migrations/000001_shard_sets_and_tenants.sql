-- Shard sets and tenants: the sharding contract between the operator and the evaluators.
--
-- Hot queries (see the indexes below):
--   evaluator, every tick:  tenants of one shard, plus those that left it less than one interval ago
--     SELECT id, weight FROM tenants
--      WHERE shard_set = $1 AND (shard_index = $2 OR (prev_shard_index = $2 AND moved_at > $3));
--   operator, every reconcile: all tenants of a shard set with their weights (planner input),
--     and the unassigned ones (shard_index IS NULL).
--   operator, reshard: one transaction rewriting shard_index of the moved tenants and bumping
--     shard_sets.epoch, under an advisory lock of its own.

-- Identifiers that come from outside (tenant, device, rule ids). The tenant id is placed inside a
-- Valkey hash tag ({tenant}), so braces are refused; whitespace and control characters too, so ids
-- read the same in logs, keys and URLs.
CREATE DOMAIN entity_id AS text
  CONSTRAINT entity_id_format CHECK (VALUE ~ '^[^{}[:space:][:cntrl:]]{1,200}$');

-- Keeps updated_at truthful whoever writes the row; an explicit new value is respected.
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END
$$;

-- One row per EvaluatorShardSet, written by the operator only.
CREATE TABLE shard_sets (
  -- "namespace/name" of the EvaluatorShardSet.
  name text PRIMARY KEY
    CONSTRAINT shard_sets_name_format CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'),
  shard_count integer NOT NULL CONSTRAINT shard_sets_shard_count_range CHECK (shard_count >= 0),
  -- Fencing epoch: bumped in the same transaction as every tenant reassignment.
  epoch bigint NOT NULL DEFAULT 0 CONSTRAINT shard_sets_epoch_range CHECK (epoch >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER shard_sets_touch_updated_at BEFORE UPDATE ON shard_sets
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Tenants are created by the product; the operator only writes shard_index, prev_shard_index and
-- moved_at. shard_set has no foreign key on purpose: a tenant may be created before the operator has
-- seen its EvaluatorShardSet (the row appears on the first reconcile), and deleting a shard set
-- must not delete tenants.
CREATE TABLE tenants (
  id entity_id PRIMARY KEY,
  name text NOT NULL DEFAULT '',
  shard_set text NOT NULL,
  -- NULL = unassigned: the operator places it on the least-loaded shard without a reshard.
  shard_index integer CONSTRAINT tenants_shard_index_range CHECK (shard_index >= 0),
  -- Where the tenant was before its last move, and when it moved: the old shard keeps evaluating it
  -- for one more tick interval (the Valkey tick lease picks exactly one evaluator per slot).
  prev_shard_index integer CONSTRAINT tenants_prev_shard_index_range CHECK (prev_shard_index >= 0),
  moved_at timestamptz,
  -- Evaluation load (devices x rules), maintained by the product, used for balancing. Finite and
  -- non-negative ('Infinity' and NaN both sort at or above 'Infinity' in PostgreSQL).
  weight double precision NOT NULL DEFAULT 1
    CONSTRAINT tenants_weight_range CHECK (weight >= 0 AND weight < 'Infinity'::double precision),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- A previous shard without a move time could never expire from the hand-off query.
  CONSTRAINT tenants_moved_at_with_prev CHECK (prev_shard_index IS NULL OR moved_at IS NOT NULL)
);

CREATE TRIGGER tenants_touch_updated_at BEFORE UPDATE ON tenants
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- "Tenants of shard i" and "unassigned tenants" (btree indexes NULLs, so shard_index IS NULL uses it).
CREATE INDEX tenants_shard_set_shard_index_idx ON tenants (shard_set, shard_index);

-- "Tenants that left shard i less than one interval ago". Partial: most tenants never moved, and
-- "prev_shard_index = $2" implies NOT NULL, so the planner can use it for parameterized queries.
CREATE INDEX tenants_shard_set_prev_shard_index_moved_at_idx
  ON tenants (shard_set, prev_shard_index, moved_at)
  WHERE prev_shard_index IS NOT NULL;
