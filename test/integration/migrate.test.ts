import { appendFile, cp, mkdtemp, readdir, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Command } from "commander";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATION_LOCK_KEY } from "../../operator/src/migrate/advisoryLockKey.ts";
import { registerMigrateCommand } from "../../operator/src/migrate/cli.ts";
import { MigrationError } from "../../operator/src/migrate/MigrationError.ts";
import { defaultMigrationsDir, readMigrations } from "../../operator/src/migrate/readMigrations.ts";
import { type MigrationLog, migrateUp, migrationStatus } from "../../operator/src/migrate/runMigrations.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  const pending = cleanups.splice(0).reverse();
  for (const cleanup of pending) await cleanup();
});

async function database(label: string): Promise<TestDatabase> {
  const db = await createTestDatabase(label);
  cleanups.push(() => db.drop());
  return db;
}

/** A pool of its own on the database, like a second operator replica would have. */
function otherPool(db: TestDatabase): pg.Pool {
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  pool.on("error", () => {
    // Idle clients die when the test database is dropped.
  });
  cleanups.push(() => pool.end());
  return pool;
}

/** A writable copy of the repository's migrations. */
async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "eo-migrations-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await cp(defaultMigrationsDir(), dir, { recursive: true });
  return dir;
}

async function emptyDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "eo-migrations-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function collectingLog(): MigrationLog & { messages: string[] } {
  const messages: string[] = [];
  return {
    messages,
    info: (_fields, message) => messages.push(message),
    warn: (_fields, message) => messages.push(message),
  };
}

async function repoMigrationNames(): Promise<string[]> {
  return (await readMigrations(defaultMigrationsDir())).map((f) => f.name);
}

async function appliedRows(db: TestDatabase) {
  const { rows } = await db.pool.query<{ version: number; name: string; checksum: string; applied_at: Date }>(
    "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
  );
  return rows;
}

async function tableExists(db: TestDatabase, table: string): Promise<boolean> {
  const { rows } = await db.pool.query<{ present: boolean }>(
    "SELECT to_regclass($1) IS NOT NULL AS present",
    [table],
  );
  return rows[0]?.present === true;
}

describe("migrateUp", () => {
  it("applies every migration to a fresh database and records each one", async () => {
    const db = await database("migrate_fresh");
    const names = await repoMigrationNames();

    const result = await migrateUp({ db: db.pool });

    expect(result).toEqual({ applied: names, alreadyApplied: 0 });
    const { rows: tables } = await db.pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    expect(tables.map((t) => t.table_name)).toEqual([
      "alert_event_cursors",
      "alert_events",
      "alert_rules",
      "alert_suppressions",
      "alerts",
      "devices",
      "maintenance_windows",
      "schema_migrations",
      "shard_sets",
      "telemetry",
      "tenant_fences",
      "tenants",
    ]);
    const files = await readMigrations(defaultMigrationsDir());
    expect((await appliedRows(db)).map((r) => [r.version, r.name, r.checksum])).toEqual(
      files.map((f) => [f.version, f.name, f.checksum]),
    );
    const { rows: indexes } = await db.pool.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    );
    const byName = new Map(indexes.map((i) => [i.indexname, i.indexdef]));
    expect(byName.get("tenants_shard_set_shard_index_idx")).toContain("(shard_set, shard_index)");
    expect(byName.get("tenants_shard_set_prev_shard_index_moved_at_idx")).toContain(
      "(shard_set, prev_shard_index, moved_at) WHERE (prev_shard_index IS NOT NULL)",
    );
    expect(byName.get("telemetry_tenant_id_ts_idx")).toContain("(tenant_id, ts)");
    expect(byName.get("telemetry_pkey")).toContain("(tenant_id, device_id, metric, ts)");
    expect(byName.get("telemetry_tenant_id_ingest_xid_idx")).toContain("(tenant_id, ingest_xid)");
    expect(byName.get("tenant_fences_pkey")).toContain("(tenant_id)");
    expect(byName.get("alerts_open_fingerprint_key")).toContain(
      "UNIQUE INDEX alerts_open_fingerprint_key ON public.alerts USING btree (fingerprint) WHERE (state = 'open'::text)",
    );
  });

  it("deduplicates open alerts by fingerprint and opens a new one after a resolve", async () => {
    const db = await database("migrate_dedup");
    await migrateUp({ db: db.pool });
    await db.pool.query(
      "INSERT INTO tenants (id, name, shard_set, shard_index) VALUES ('acme', 'Acme', 'ns/set', 0)",
    );
    await db.pool.query(
      "INSERT INTO devices (tenant_id, id, name) VALUES ('acme', 'aa:bb:cc:dd:ee:ff', 'pump')",
    );
    await db.pool.query(
      `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, severity, escalation)
       VALUES ('acme', 'hot', 'temp', 'threshold', '>', 80, 'warning', '{"after_seconds": 600, "severity": "critical"}')`,
    );
    const upsert = (ts: string, value: number) =>
      db.pool.query(
        `INSERT INTO alerts (tenant_id, rule_id, device_id, fingerprint, severity, first_seen, last_seen, value)
         VALUES ('acme', 'hot', 'aa:bb:cc:dd:ee:ff', 'fp-acme-hot-pump', 'warning', $1, $1, $2)
         ON CONFLICT (fingerprint) WHERE state = 'open'
         DO UPDATE SET last_seen = excluded.last_seen, value = excluded.value,
                       occurrences = alerts.occurrences + 1`,
        [ts, value],
      );

    await upsert("2025-01-01T00:00:00Z", 81);
    await upsert("2025-01-01T00:01:00Z", 85);

    const open = await db.pool.query(
      "SELECT state, occurrences, first_seen, last_seen, value FROM alerts WHERE fingerprint = 'fp-acme-hot-pump'",
    );
    expect(open.rows).toEqual([
      {
        state: "open",
        occurrences: 2,
        first_seen: new Date("2025-01-01T00:00:00Z"),
        last_seen: new Date("2025-01-01T00:01:00Z"),
        value: 85,
      },
    ]);

    await db.pool.query(
      "UPDATE alerts SET state = 'resolved', resolved_at = '2025-01-01T00:02:00Z' WHERE fingerprint = 'fp-acme-hot-pump'",
    );
    await upsert("2025-01-01T00:05:00Z", 90);

    const all = await db.pool.query(
      "SELECT state, occurrences FROM alerts WHERE fingerprint = 'fp-acme-hot-pump' ORDER BY id",
    );
    expect(all.rows).toEqual([
      { state: "resolved", occurrences: 2 },
      { state: "open", occurrences: 1 },
    ]);
  });

  it("enforces the schema's rules on ids, weights, rules and alerts", async () => {
    const db = await database("migrate_checks");
    await migrateUp({ db: db.pool });
    const fails = (sql: string) => expect(db.pool.query(sql)).rejects.toThrow();
    await db.pool.query("INSERT INTO tenants (id, shard_set) VALUES ('t1', 'ns/set')");

    // A brace would break the Valkey hash tag {tenant}.
    await fails("INSERT INTO tenants (id, shard_set) VALUES ('t{1}', 'ns/set')");
    await fails("INSERT INTO tenants (id, shard_set, weight) VALUES ('t2', 'ns/set', -1)");
    await fails("INSERT INTO tenants (id, shard_set, weight) VALUES ('t2', 'ns/set', 'NaN')");
    await fails("INSERT INTO tenants (id, shard_set, prev_shard_index) VALUES ('t2', 'ns/set', 1)");
    await fails("INSERT INTO alert_rules (tenant_id, metric, rule_type) VALUES ('t1', 'temp', 'magic')");
    await fails("INSERT INTO alert_rules (tenant_id, metric, rule_type) VALUES ('t1', 'temp', 'threshold')");
    await fails(
      "INSERT INTO alert_rules (tenant_id, metric, rule_type, operator, threshold) VALUES ('t1', 'temp', 'threshold', '=~', 1)",
    );
    await fails(
      "INSERT INTO alert_rules (tenant_id, metric, rule_type, operator, threshold) VALUES ('t1', 'temp', 'window', '>', 1)",
    );
    // Escalation must raise the severity.
    await fails(
      `INSERT INTO alert_rules (tenant_id, metric, rule_type, operator, threshold, severity, escalation)
       VALUES ('t1', 'temp', 'threshold', '>', 1, 'critical', '{"after_seconds": 60, "severity": "warning"}')`,
    );
    // A rule can only name a device of its own tenant.
    await fails(
      "INSERT INTO alert_rules (tenant_id, device_id, metric, rule_type, params) VALUES ('t1', 'nope', 'temp', 'anomaly', '{}')",
    );
    await fails(
      "INSERT INTO maintenance_windows (tenant_id, starts_at, ends_at) VALUES ('t1', '2025-01-02', '2025-01-01')",
    );

    const { rows } = await db.pool.query<{ id: string; cooldown_seconds: number; enabled: boolean }>(
      `INSERT INTO alert_rules (tenant_id, metric, rule_type, operator, threshold, window_seconds, min_count)
       VALUES ('t1', 'temp', 'window', '>=', 1, 300, 3) RETURNING id, cooldown_seconds, enabled`,
    );
    expect(rows[0]).toMatchObject({ cooldown_seconds: 300, enabled: true });
    expect(rows[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("does nothing when run again", async () => {
    const db = await database("migrate_rerun");
    const first = await migrateUp({ db: db.pool });
    const before = await appliedRows(db);

    const second = await migrateUp({ db: db.pool });

    expect(second).toEqual({ applied: [], alreadyApplied: first.applied.length });
    expect(await appliedRows(db)).toEqual(before);
  });

  it("serves the hot queries from their indexes", async () => {
    const db = await database("migrate_plans");
    await migrateUp({ db: db.pool });
    await db.pool.query(
      `INSERT INTO tenants (id, shard_set, shard_index, prev_shard_index, moved_at)
       SELECT 't' || g, 'ns/set' || (g % 4), g % 20,
              CASE WHEN g % 50 = 0 THEN (g + 1) % 20 END, CASE WHEN g % 50 = 0 THEN now() END
       FROM generate_series(1, 20000) g`,
    );
    await db.pool.query("ANALYZE tenants");
    const client = await db.pool.connect();
    try {
      // A generic plan is what a prepared statement of the evaluator ends up with.
      await client.query("SET plan_cache_mode = force_generic_plan");
      await client.query(
        `PREPARE own_tenants(text, int, timestamptz) AS
         SELECT id FROM tenants
          WHERE shard_set = $1 AND (shard_index = $2 OR (prev_shard_index = $2 AND moved_at > $3))`,
      );
      const tenants = await client.query(
        "EXPLAIN EXECUTE own_tenants('ns/set1', 1, now() - interval '1 minute')",
      );
      const tenantsPlan = tenants.rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n");
      expect(tenantsPlan).toContain("tenants_shard_set_shard_index_idx");
      expect(tenantsPlan).toContain("tenants_shard_set_prev_shard_index_moved_at_idx");

      await client.query("SET enable_seqscan = off");
      const readings = await client.query(
        "EXPLAIN SELECT * FROM telemetry WHERE tenant_id = ANY('{t1,t2}'::text[]) AND ts > now() - interval '1 minute'",
      );
      const readingsPlan = readings.rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n");
      expect(readingsPlan).toContain("telemetry_tenant_id_ts_idx");
      // The evaluator's read: a tenant's readings between two insert positions (the fence).
      const fenced = await client.query(
        `EXPLAIN SELECT * FROM telemetry
          WHERE tenant_id = 't1' AND ingest_xid >= '5'::xid8 AND ingest_xid < pg_snapshot_xmin(pg_current_snapshot())`,
      );
      const fencedPlan = fenced.rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n");
      expect(fencedPlan).toContain("telemetry_tenant_id_ingest_xid_idx");
    } finally {
      client.release(true);
    }
  });

  it("refuses an edited applied migration, naming the file, and applies nothing", async () => {
    const db = await database("migrate_edited");
    const dir = await copyOfMigrations();
    const first = await migrateUp({ db: db.pool, dir });
    const before = await appliedRows(db);
    const edited = first.applied[1] as string;
    await appendFile(path.join(dir, edited), "\n-- a harmless-looking comment\n");
    const next = String(first.applied.length + 1).padStart(6, "0");
    await writeFile(path.join(dir, `${next}_after_the_edit.sql`), "CREATE TABLE after_the_edit (id int);\n");

    const error = await migrateUp({ db: db.pool, dir }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).message).toContain(`${edited} was edited after it was applied`);
    expect((error as MigrationError).files).toEqual([edited]);
    expect(await appliedRows(db)).toEqual(before);
    expect(await tableExists(db, "after_the_edit")).toBe(false);
  });

  it("refuses when an applied migration is missing on disk", async () => {
    const db = await database("migrate_missing");
    const dir = await copyOfMigrations();
    const { applied } = await migrateUp({ db: db.pool, dir });
    const last = applied.at(-1) as string;
    await unlink(path.join(dir, last));

    await expect(migrateUp({ db: db.pool, dir })).rejects.toThrow(`${last} was applied but is missing`);
    expect((await appliedRows(db)).map((r) => r.name)).toEqual(applied);
  });

  it("refuses a bad file name before touching the database", async () => {
    const db = await database("migrate_badname");
    const dir = await copyOfMigrations();
    await writeFile(path.join(dir, "7_Add_Things.sql"), "CREATE TABLE things (id int);\n");

    const error = await migrateUp({ db: db.pool, dir }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).message).toContain("7_Add_Things.sql: not a migration file name");
    expect((error as MigrationError).files).toEqual(["7_Add_Things.sql"]);
    expect(await tableExists(db, "schema_migrations")).toBe(false);
    expect(await tableExists(db, "tenants")).toBe(false);
  });

  it("rolls back a failing migration, names its file and line, and can be fixed before it is applied", async () => {
    const db = await database("migrate_failing");
    const dir = await emptyDir();
    await writeFile(path.join(dir, "000001_first.sql"), "CREATE TABLE first (id int);\n");
    await writeFile(
      path.join(dir, "000002_broken.sql"),
      "CREATE TABLE second (id int);\n\nINSERT INTO second SELECT id FROM no_such_table;\n",
    );

    await expect(migrateUp({ db: db.pool, dir })).rejects.toThrow(
      'Migration 000002_broken.sql failed at line 3: relation "no_such_table" does not exist',
    );
    expect((await appliedRows(db)).map((r) => r.name)).toEqual(["000001_first.sql"]);
    expect(await tableExists(db, "first")).toBe(true);
    expect(await tableExists(db, "second")).toBe(false);

    // Not applied yet, so it may still be edited. A runner on another connection proceeds, so the
    // failed run released its lock (the same pooled connection would have re-entered it regardless).
    await writeFile(path.join(dir, "000002_broken.sql"), "CREATE TABLE second (id int);\n");
    expect(await migrateUp({ db: otherPool(db), dir })).toEqual({
      applied: ["000002_broken.sql"],
      alreadyApplied: 1,
    });
  });

  it("detects a migration that ends its own transaction", async () => {
    const db = await database("migrate_end");
    const dir = await emptyDir();
    // `END;` is also PL/pgSQL, so only the run-time check can catch it.
    await writeFile(path.join(dir, "000001_sneaky.sql"), "CREATE TABLE sneaky (id int);\nEND;\n");

    await expect(migrateUp({ db: db.pool, dir })).rejects.toThrow(
      "Migration 000001_sneaky.sql ended its transaction itself",
    );
    expect(await appliedRows(db)).toEqual([]);
  });

  it("lets exactly one of two runners started together apply the migrations", async () => {
    const db = await database("migrate_race");
    const names = await repoMigrationNames();

    const results = await Promise.all([migrateUp({ db: otherPool(db) }), migrateUp({ db: otherPool(db) })]);

    const sorted = [...results].sort((a, b) => b.applied.length - a.applied.length);
    expect(sorted).toEqual([
      { applied: names, alreadyApplied: 0 },
      { applied: [], alreadyApplied: names.length },
    ]);
    const { rows } = await db.pool.query<{ version: number; n: string }>(
      "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version",
    );
    expect(rows.map((r) => Number(r.n))).toEqual(names.map(() => 1));
  });

  it("makes a runner wait while another holds the lock, then release it when done", async () => {
    const db = await database("migrate_wait");
    const names = await repoMigrationNames();
    const holder = await db.pool.connect();
    let released = false;
    const releaseHolder = () => {
      if (!released) holder.release(true);
      released = true;
    };
    cleanups.push(async () => releaseHolder());
    await holder.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
    const waitingAdvisoryLocks = async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND NOT granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return rows[0]?.n ?? 0;
    };
    const logs = [collectingLog(), collectingLog()];

    const runs = logs.map((log) => migrateUp({ db: otherPool(db), log }));
    await expect.poll(waitingAdvisoryLocks, { timeout: 10_000 }).toBe(2);
    expect(await tableExists(db, "schema_migrations")).toBe(false);
    await holder.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
    releaseHolder();
    const results = await Promise.all(runs);

    expect(results.map((r) => r.applied.length).sort()).toEqual([0, names.length]);
    for (const log of logs) {
      expect(log.messages).toContain("Waiting for the migration lock held by another runner");
    }
    // Both runners' connections are back in their pools, alive: the lock was released, not dropped.
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(rows[0]?.n).toBe(0);
  });
});

describe("migrationStatus", () => {
  it("reports pending migrations on a fresh database without creating anything", async () => {
    const db = await database("status_fresh");
    const names = await repoMigrationNames();

    const rows = await migrationStatus({ db: db.pool });

    expect(rows.map((r) => [r.name, r.state, r.appliedAt])).toEqual(names.map((n) => [n, "pending", null]));
    expect(await tableExists(db, "schema_migrations")).toBe(false);
  });

  it("reports applied, changed, missing and pending migrations", async () => {
    const db = await database("status_mixed");
    const dir = await emptyDir();
    await writeFile(path.join(dir, "000001_one.sql"), "CREATE TABLE one (id int);\n");
    await writeFile(path.join(dir, "000002_two.sql"), "CREATE TABLE two (id int);\n");
    await writeFile(path.join(dir, "000003_three.sql"), "CREATE TABLE three (id int);\n");
    await migrateUp({ db: db.pool, dir });
    await appendFile(path.join(dir, "000002_two.sql"), "-- edited\n");
    await unlink(path.join(dir, "000003_three.sql"));
    await writeFile(path.join(dir, "000004_four.sql"), "CREATE TABLE four (id int);\n");

    const rows = await migrationStatus({ db: db.url, dir });

    expect(rows.map((r) => [r.version, r.name, r.state])).toEqual([
      [1, "000001_one.sql", "applied"],
      [2, "000002_two.sql", "changed"],
      [3, "000003_three.sql", "missing"],
      [4, "000004_four.sql", "pending"],
    ]);
    expect(rows[0]?.appliedAt).toBeInstanceOf(Date);
  });
});

describe("migrate command", () => {
  function program() {
    let out = "";
    const p = new Command("evaluator-operator").exitOverride();
    registerMigrateCommand(p, {
      env: {},
      stdout: {
        write: (s: string) => {
          out += s;
        },
      },
    });
    return { p, output: () => out };
  }

  it("applies with `migrate up` and lists with `migrate status`, connecting by URL", async () => {
    const db = await database("migrate_cli");
    const dir = await copyOfMigrations();
    const files = (await readdir(dir)).sort();

    const up = program();
    await up.p.parseAsync(["migrate", "up", "--database-url", db.url, "--dir", dir], { from: "user" });
    expect(up.output()).toBe(
      `Applied ${files.length} migration(s):\n${files.map((f) => `  ${f}\n`).join("")}`,
    );

    const again = program();
    await again.p.parseAsync(["migrate", "up", "--database-url", db.url, "--dir", dir], { from: "user" });
    expect(again.output()).toBe(`Database schema is up to date (${files.length} migrations applied).\n`);

    const status = program();
    await status.p.parseAsync(["migrate", "status", "--database-url", db.url, "--dir", dir], {
      from: "user",
    });
    expect(status.output()).toContain(`${files.length} applied.`);
    expect(status.output()).toMatch(/^000001 {3}000001_\S+\.sql +applied {2}\d{4}-/m);

    await appendFile(path.join(dir, files[0] as string), "-- edited\n");
    const drifted = program();
    await expect(
      drifted.p.parseAsync(["migrate", "status", "--database-url", db.url, "--dir", dir], { from: "user" }),
    ).rejects.toThrow("1 applied migration(s) changed or missing");
    expect(drifted.output()).toContain(`${files[0]} was edited after it was applied`);
  });
});
