/**
 * The set-up every evaluator integration test shares, in one call: `useEvaluatorFixture(label)`
 * registers vitest hooks that give each test a migrated database of its own with a shard set row
 * (see {@link createEvaluatorWorld}), seeding helpers for tenants, devices, rules and readings,
 * evaluator processes and Valkey clients that are stopped after the test, and a teardown that deletes
 * the test's Valkey keys and drops its database.
 *
 * Isolation on the shared Valkey is by tenant id, not by an ioredis `keyPrefix` (the evaluator never
 * uses one): every key of a tenant carries the tenant in its hash tag, so fresh tenant ids are the
 * test's key prefix, and the teardown deletes exactly those keys. Each test owns its database, shard
 * set and tenant ids, so files (and tests) run in parallel.
 *
 * The seeding functions are exported on their own too, for a database the fixture did not create
 * (a private PostgreSQL instance that a test stops and starts).
 */
import { Redis } from "ioredis";
import type pg from "pg";
import { afterEach, beforeEach } from "vitest";
import {
  createEvaluatorWorld,
  type EvaluatorProcess,
  type EvaluatorWorld,
  startEvaluator,
} from "./evaluatorProcess.ts";
import { freePort } from "./ports.ts";
import type { TestDatabase } from "./postgres.ts";
import { connectValkey, uniqueTenantId } from "./valkey.ts";

/**
 * Columns of an `alert_rules` row by their SQL names: the type, then any other. `metric` defaults to
 * "temp"; every other column left out gets the schema's default. jsonb columns (`params`,
 * `escalation`) are given as objects.
 */
export interface RuleColumns {
  readonly rule_type: "threshold" | "window" | "anomaly" | "pattern";
  readonly [column: string]: unknown;
}

/** A rule of a tenant: its id and {@link RuleColumns}. */
export interface RuleSeed extends RuleColumns {
  readonly id: string;
}

/** How tenants are seeded: their shard (and hand-off), devices and rules. */
export interface TenantSeed {
  /** shard_index (default 0). */
  readonly shardIndex?: number;
  /** A hand-off: prev_shard_index, with `movedAtMs` (required with it by the schema). */
  readonly prevShardIndex?: number;
  /** moved_at, in epoch ms. */
  readonly movedAtMs?: number;
  /** Device ids (default `["d1"]`). */
  readonly devices?: readonly string[];
  /** Rules, each given to every seeded tenant (default none). */
  readonly rules?: readonly RuleSeed[];
}

/** Where a reading goes: device (default "d1"), metric (default "temp"), ts in epoch ms (default the database's now()). */
export interface ReadingAt {
  readonly device?: string;
  readonly metric?: string;
  readonly atMs?: number;
}

const asList = (ids: string | readonly string[]): readonly string[] =>
  typeof ids === "string" ? [ids] : ids;

/** Inserts the tenants `ids` of `shardSet` with their devices and rules (one statement per table, or per rule). */
export async function insertTenants(
  db: pg.Pool,
  shardSet: string,
  ids: readonly string[],
  seed: TenantSeed = {},
): Promise<void> {
  await db.query(
    `INSERT INTO tenants (id, shard_set, shard_index, prev_shard_index, moved_at)
     SELECT t, $2, $3::int, $4::int, to_timestamp($5::float8 / 1000) FROM unnest($1::text[]) AS t`,
    [ids, shardSet, seed.shardIndex ?? 0, seed.prevShardIndex ?? null, seed.movedAtMs ?? null],
  );
  await db.query(
    "INSERT INTO devices (tenant_id, id) SELECT t, d FROM unnest($1::text[]) AS t CROSS JOIN unnest($2::text[]) AS d",
    [ids, seed.devices ?? ["d1"]],
  );
  for (const rule of seed.rules ?? []) await insertRule(db, ids, rule);
}

/**
 * Inserts `rule` for each of `tenantIds`, in one multi-row VALUES statement: PostgreSQL types each
 * parameter by its target column there (numbers, jsonb objects), and only the columns given are
 * written, so the others keep their defaults.
 */
export async function insertRule(
  db: pg.Pool,
  tenantIds: string | readonly string[],
  rule: RuleSeed,
): Promise<void> {
  const row: Record<string, unknown> = { metric: "temp", ...rule };
  const columns = ["tenant_id", ...Object.keys(row)];
  const ids = asList(tenantIds);
  const tuples = ids.map((_, i) => `(${columns.map((_, k) => `$${i * columns.length + k + 1}`).join(", ")})`);
  await db.query(
    `INSERT INTO alert_rules (${columns.join(", ")}) VALUES ${tuples.join(", ")}`,
    ids.flatMap((t) => [t, ...Object.values(row)]),
  );
}

/** Inserts one reading with `value` for each of `tenantIds` (committed on return). */
export async function insertReadings(
  db: pg.Pool,
  tenantIds: string | readonly string[],
  value: number,
  at: ReadingAt = {},
): Promise<void> {
  await db.query(
    `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
     SELECT t, $2, $3, coalesce(to_timestamp($4::float8 / 1000), now()), $5::float8 FROM unnest($1::text[]) AS t`,
    [asList(tenantIds), at.device ?? "d1", at.metric ?? "temp", at.atMs ?? null, value],
  );
}

/** What {@link useEvaluatorFixture} gives a test (every member is the current test's). */
export interface EvaluatorFixture {
  /** The test's own migrated database. */
  readonly db: TestDatabase;
  /** Its pool (closed by the teardown). */
  readonly pool: pg.Pool;
  /** "namespace/name" of the test's shard set (a row of `shard_sets`). */
  readonly shardSet: string;
  /** Environment for an evaluator of shard `shard` (default 0) against this test's world. */
  env(shard?: number, extra?: Record<string, string>): Record<string, string>;
  /** A tenant id no other test uses; its Valkey keys are deleted by the teardown. */
  tenantId(): string;
  /** Seeds one tenant (fresh id) of the test's shard set; resolves with its id. */
  tenant(seed?: TenantSeed): Promise<string>;
  /** Seeds `count` tenants (fresh ids) alike; resolves with their ids. */
  tenants(count: number, seed?: TenantSeed): Promise<string[]>;
  /** Adds a rule to one tenant or to each of several. */
  rule(tenantIds: string | readonly string[], rule: RuleSeed): Promise<void>;
  /** Inserts a reading for one tenant or for each of several. */
  reading(tenantIds: string | readonly string[], value: number, at?: ReadingAt): Promise<void>;
  /**
   * Starts an evaluator process of shard `shard` (default 0) with `extra` environment; it is killed
   * (SIGKILL) after the test if still running. An EVALUATOR_TEST_* variable in `extra` starts it
   * through the test entry point that injects that fault (see `startEvaluator`).
   */
  start(extra?: Record<string, string>, options?: { shard?: number; args?: string[] }): EvaluatorProcess;
  /** How many of these tenants' alerts are open. */
  openAlerts(tenantIds: readonly string[]): Promise<number>;
  /** A client on the shared Valkey, disconnected after the test. */
  valkey(): Redis;
  /** A client of a port nothing listens on, failing fast (an unreachable Valkey); disconnected after the test. */
  unreachableValkey(): Promise<Redis>;
  /** Runs `release` after the test (latest first, after the processes are killed, before the database goes). */
  onCleanup(release: () => unknown): void;
}

/**
 * Registers `beforeEach`/`afterEach` hooks in the calling scope (file or `describe`) that give every
 * test a fresh evaluator world, and returns the handle to it. `label` names the databases;
 * `shards` is the shard set's shard count.
 */
export function useEvaluatorFixture(
  label: string,
  { shards = 1 }: { shards?: number } = {},
): EvaluatorFixture {
  let world: EvaluatorWorld | undefined;
  const processes: EvaluatorProcess[] = [];
  const releasers: (() => unknown)[] = [];

  const current = (): EvaluatorWorld => {
    if (!world)
      throw new Error(`evaluator fixture "${label}" used outside a test (its beforeEach has not run)`);
    return world;
  };
  const onCleanup = (release: () => unknown) => {
    releasers.push(release);
  };
  const tenantId = () => current().track(uniqueTenantId());
  const tenants = async (count: number, seed: TenantSeed = {}) => {
    const ids = Array.from({ length: count }, tenantId);
    await insertTenants(current().db.pool, current().shardSet, ids, seed);
    return ids;
  };

  beforeEach(async () => {
    world = await createEvaluatorWorld(label, shards);
  });

  afterEach(async () => {
    const finished = world;
    world = undefined;
    await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
    const errors: unknown[] = [];
    for (const release of releasers.splice(0).reverse()) {
      try {
        await release();
      } catch (err) {
        errors.push(err);
      }
    }
    await finished?.destroy();
    // A release that failed is reported once the rest of the teardown has run.
    if (errors.length > 0) throw new AggregateError(errors, `evaluator fixture "${label}": cleanup failed`);
  });

  return {
    get db() {
      return current().db;
    },
    get pool() {
      return current().db.pool;
    },
    get shardSet() {
      return current().shardSet;
    },
    env: (shard = 0, extra = {}) => current().env(shard, extra),
    tenantId,
    tenant: async (seed) => (await tenants(1, seed))[0]!,
    tenants,
    rule: (ids, rule) => insertRule(current().db.pool, ids, rule),
    reading: (ids, value, at) => insertReadings(current().db.pool, ids, value, at),
    start(extra = {}, { shard = 0, args = [] } = {}) {
      const p = startEvaluator(current().env(shard, extra), args);
      processes.push(p);
      return p;
    },
    async openAlerts(ids) {
      const { rows } = await current().db.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM alerts WHERE tenant_id = ANY($1) AND state = 'open'",
        [ids],
      );
      return rows[0]!.n;
    },
    valkey() {
      const client = connectValkey();
      onCleanup(() => client.disconnect());
      return client;
    },
    async unreachableValkey() {
      const client = new Redis(`redis://127.0.0.1:${await freePort()}/0`, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        lazyConnect: true,
        retryStrategy: () => null,
      });
      client.on("error", () => {
        // Every call fails with its own error; the listener keeps the refused connects quiet.
      });
      onCleanup(() => client.disconnect());
      return client;
    },
    onCleanup,
  };
}
