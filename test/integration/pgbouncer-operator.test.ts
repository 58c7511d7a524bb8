/**
 * The operator through a real PgBouncer (the Debian package, private instances in front of the test
 * PostgreSQL). The reshard and the `shards` CLI work through transaction pooling as they are: their
 * statements are unnamed and their advisory lock is transaction-scoped. Statement pooling refuses
 * the reshard's transaction. The migration runner's lock is a session lock: through transaction
 * pooling it refuses to run instead of migrating unguarded (or leaving its lock on a pooled server
 * connection), and `DIRECT_DATABASE_URL` gives it the direct connection it needs.
 */
import pg from "pg";
import pino from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EvaluatorShardSet } from "../../operator/src/api/types.ts";
import { createAssignmentsResolver } from "../../operator/src/assignments/assignmentsResolver.ts";
import { createPgTenantAssignments } from "../../operator/src/assignments/pgTenantAssignments.ts";
import { createProgram } from "../../operator/src/cli/program.ts";
import { MigrationError } from "../../operator/src/migrate/MigrationError.ts";
import { defaultMigrationsDir, readMigrations } from "../../operator/src/migrate/readMigrations.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import {
  type PgbouncerPoolMode,
  type PrivatePgbouncer,
  startPrivatePgbouncer,
} from "../support/pgbouncer.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { seedTenants, shardHistogram } from "../support/tenants.ts";

const SET = "iot/alerts";

const bouncers = new Map<PgbouncerPoolMode, PrivatePgbouncer>();
beforeAll(async () => {
  for (const poolMode of ["session", "transaction", "statement"] as const) {
    bouncers.set(poolMode, await startPrivatePgbouncer({ poolMode }));
  }
});
afterAll(async () => {
  await Promise.all([...bouncers.values()].map((b) => b.destroy()));
});

let db: TestDatabase;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  db = await createTestDatabase("pgbouncer_operator");
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await db.drop();
});

/** The test database's URL through the bouncer of `mode`, a few server connections open already. */
async function through(mode: PgbouncerPoolMode): Promise<string> {
  const bouncer = bouncers.get(mode);
  if (!bouncer) throw new Error(`no PgBouncer in ${mode} mode (beforeAll failed)`);
  await bouncer.warm(db.url);
  return bouncer.through(db.url);
}

/** Advisory locks held in the test database (by anyone: a runner, or a pooled server connection). */
async function advisoryLocks(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return rows[0]!.n;
}

/** Runs the operator's CLI with `env`; resolves with what it printed. */
async function cli(env: Record<string, string>, ...args: string[]): Promise<string> {
  let out = "";
  const program = createProgram({
    env,
    stdout: { write: (t: string) => (out += t) },
    shutdownSignal: new AbortController().signal,
  });
  await program.parseAsync(args, { from: "user" });
  return out;
}

describe("the reshard", () => {
  beforeEach(async () => {
    await migrateUp({ db: db.pool });
    await seedTenants(db.pool, SET, 1000);
  });

  it("commits, resizes, resumes and places new tenants through transaction pooling", async () => {
    const url = await through("transaction");
    const resolver = createAssignmentsResolver({
      kube: { readSecretKey: async () => url },
      log: pino({ level: "silent" }),
    });
    cleanups.push(() => resolver.close());
    const set = {
      apiVersion: "evaluator.iot.dev/v1alpha1",
      kind: "EvaluatorShardSet",
      metadata: { namespace: "iot", name: "alerts", uid: "u1" },
      spec: { evaluator: {}, database: { secretRef: { name: "db" } } },
    } as unknown as EvaluatorShardSet;
    const a = await resolver.forSet(set);

    expect(await a.commit(3)).toMatchObject({ shardCount: 3, epoch: 1, tenants: 1000, moved: 0 });
    const up = await a.commit(5);
    expect(up).toMatchObject({ shardCount: 5, epoch: 2, alreadyCommitted: false });
    expect(up.moved).toBeGreaterThan(0);
    expect(await a.commit(5)).toMatchObject({ epoch: 2, moved: up.moved, alreadyCommitted: true });
    await seedTenants(db.pool, SET, 20, "late");
    expect(await a.assignNew()).toBe(20);
    const h = await shardHistogram(db.pool, SET);
    expect(h).toMatchObject({ unassigned: 0, total: 1020 });
    expect([...h.perShard.keys()].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(await a.read()).toMatchObject({ shardCount: 5, epoch: 2, tenants: 1020 });
    // The transaction-scoped lock went with each transaction: nothing is left on a server connection.
    expect(await advisoryLocks()).toBe(0);
  });

  it("two concurrent commits through transaction pooling serialize under the set's lock", async () => {
    const url = await through("transaction");
    const pools = [0, 1].map(() => {
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      pool.on("error", () => {});
      cleanups.push(() => pool.end());
      return pool;
    });
    const [x, y] = await Promise.all(pools.map((pool) => createPgTenantAssignments(pool, SET).commit(3)));
    expect([x!.alreadyCommitted, y!.alreadyCommitted].sort()).toEqual([false, true]);
    expect((await createPgTenantAssignments(db.pool, SET).read()).epoch).toBe(1);
  });

  it("commits through session pooling", async () => {
    const pool = new pg.Pool({ connectionString: await through("session"), max: 2 });
    pool.on("error", () => {});
    cleanups.push(() => pool.end());
    expect(await createPgTenantAssignments(pool, SET).commit(3)).toMatchObject({ epoch: 1, tenants: 1000 });
    expect((await shardHistogram(db.pool, SET)).unassigned).toBe(0);
  });

  it("statement pooling refuses its transaction (the reshard needs transaction or session pooling)", async () => {
    const pool = new pg.Pool({ connectionString: await through("statement"), max: 1 });
    pool.on("error", () => {});
    cleanups.push(() => pool.end());
    await expect(createPgTenantAssignments(pool, SET).commit(3)).rejects.toThrow(
      "transaction blocks not allowed in statement pooling mode",
    );
    // PgBouncer closed the connection too: the operator's process survives it (no unhandled 'error').
    expect((await shardHistogram(db.pool, SET)).unassigned).toBe(1000);
  });

  it.each(["transaction", "statement"] as const)(
    "`shards plan` and `shards status` (reads only) work through %s pooling",
    async (mode) => {
      await createPgTenantAssignments(db.pool, SET).commit(2);
      const env = { DATABASE_URL: await through(mode) };
      expect(await cli(env, "shards", "status", "--shard-set", SET)).toContain(
        "Shard set iot/alerts: 2 shards, epoch 1",
      );
      expect(await cli(env, "shards", "plan", "--shard-set", SET, "--shards", "3")).toContain(
        "Plan: 2 → 3 shards, 1000 tenants",
      );
    },
  );
});

describe("migrations", () => {
  it.each(["transaction", "statement"] as const)(
    "a runner through %s pooling refuses, naming DIRECT_DATABASE_URL, and leaves no lock",
    async (mode) => {
      const url = await through(mode);
      const error = await migrateUp({ db: url }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect(String(error)).toMatch(/DIRECT_DATABASE_URL/);
      const { rows } = await db.pool.query<{ present: boolean }>(
        "SELECT to_regclass('tenants') IS NOT NULL AS present",
      );
      expect(rows[0]?.present).toBe(false);
      expect(await advisoryLocks()).toBe(0);
    },
  );

  it("through session pooling a runner has a session of its own: `migrate up` needs no direct URL", async () => {
    const names = (await readMigrations(defaultMigrationsDir())).map((f) => f.name);
    const env = { DATABASE_URL: await through("session") };
    const outputs = await Promise.all([cli(env, "migrate", "up"), cli(env, "migrate", "up")]);
    expect(outputs.sort()).toEqual([
      `Applied ${names.length} migration(s):\n${names.map((n) => `  ${n}\n`).join("")}`,
      `Database schema is up to date (${names.length} migrations applied).\n`,
    ]);
    expect(await advisoryLocks()).toBe(0);
  });

  it("`migrate up` and `migrate status` with DATABASE_URL through PgBouncer use DIRECT_DATABASE_URL", async () => {
    const env = { DATABASE_URL: await through("transaction"), DIRECT_DATABASE_URL: db.url };
    const names = (await readMigrations(defaultMigrationsDir())).map((f) => f.name);

    // Two runners at once: one applies everything, the other waits for its lock, then finds nothing.
    const outputs = await Promise.all([cli(env, "migrate", "up"), cli(env, "migrate", "up")]);
    expect(outputs.sort()).toEqual([
      `Applied ${names.length} migration(s):\n${names.map((n) => `  ${n}\n`).join("")}`,
      `Database schema is up to date (${names.length} migrations applied).\n`,
    ]);
    expect(await cli(env, "migrate", "status")).toContain(`${names.length} applied.`);
    expect(await advisoryLocks()).toBe(0);
    // Status takes no lock: through the pooled URL alone it reads the same, in either pooling mode.
    for (const mode of ["transaction", "statement"] as const) {
      expect(await cli({ DATABASE_URL: await through(mode) }, "migrate", "status")).toContain(
        `${names.length} applied.`,
      );
    }
  });
});
