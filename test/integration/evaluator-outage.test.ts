/**
 * Outages of the evaluator's two dependencies, each on a private instance started by the test
 * (never the machine's shared servers), with the real evaluator process running throughout:
 * - Valkey stopped mid-run: ticks go on with the documented fallbacks (an owned tenant is still
 *   evaluated, its threshold alert raised, deduplicated by Postgres; /readyz reports the outage);
 *   Valkey started again: state is written again, with no restart of the process.
 * - Postgres stopped: the tick fails cleanly (logged, the process stays up); started again: the next
 *   tick succeeds, and nothing is duplicated.
 */

import { Redis } from "ioredis";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { windowBufferKey } from "../../evaluator/src/state/keys.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import {
  createEvaluatorWorld,
  type EvaluatorProcess,
  eventually,
  startEvaluator,
} from "../support/evaluatorProcess.ts";
import { startPrivatePostgres, startPrivateRedis } from "../support/privateServices.ts";
import { uniqueTenantId, VALKEY_URL, windowBufferLength } from "../support/valkey.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function track(p: EvaluatorProcess): EvaluatorProcess {
  cleanups.push(() => p.stop("SIGKILL"));
  return p;
}

async function seedTenant(db: pg.Pool, tenant: string, shardSet: string): Promise<void> {
  await db.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ($1, $2, 0)", [tenant, shardSet]);
  await db.query("INSERT INTO devices (tenant_id, id) VALUES ($1, 'd1')", [tenant]);
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, window_seconds, min_count, cooldown_seconds)
     VALUES ($1, 'hot', 'temp', 'threshold', '>', 50, NULL, NULL, 0),
            ($1, 'streak', 'temp', 'window', '>', 50, 600, 3, 0)`,
    [tenant],
  );
}

const reading = (db: pg.Pool, tenant: string, value: number) =>
  db.query(
    "INSERT INTO telemetry (tenant_id, device_id, metric, ts, value) VALUES ($1, 'd1', 'temp', now(), $2)",
    [tenant, value],
  );

const ticksDone = (p: EvaluatorProcess) => p.logs.filter((l) => l.msg === "tick_done").length;

describe("evaluator outages", () => {
  it("keeps ticking through a Valkey outage with the documented fallbacks, and recovers without a restart", async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.destroy());
    const world = await createEvaluatorWorld("vk-outage");
    cleanups.push(() => world.destroy());
    const tenant = uniqueTenantId();
    await seedTenant(world.db.pool, tenant, world.shardSet);
    const ev = track(startEvaluator(world.env(0, { VALKEY_URL: redis.url, TICK_INTERVAL_SECONDS: "1" })));
    await ev.waitForLog((l) => l.msg === "tick_done");
    expect((await ev.get("/readyz")).status).toBe(200);

    await redis.stop();
    const ticksAtOutage = ticksDone(ev);
    await reading(world.db.pool, tenant, 70);
    // The owner still evaluates its tenant: the threshold alert is raised from Postgres alone.
    await eventually(
      async () =>
        (
          await world.db.pool.query(
            "SELECT 1 FROM alerts WHERE tenant_id = $1 AND rule_id = 'hot' AND state = 'open'",
            [tenant],
          )
        ).rowCount === 1,
      20_000,
      "threshold alert during the Valkey outage",
    );
    await eventually(
      async () => ticksDone(ev) >= ticksAtOutage + 3,
      20_000,
      "ticks continuing during the outage",
    );
    expect((await ev.get("/readyz")).status).toBe(503);
    expect(ev.logs.some((l) => l.msg === "valkey_fallback" || l.msg === "circuit_breaker")).toBe(true);

    await redis.start();
    await eventually(async () => (await ev.get("/readyz")).status === 200, 30_000, "ready again");
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on("error", () => {});
    cleanups.push(async () => client.disconnect());
    // Readings keep coming; one read while the tick's client is still reconnecting is evaluated
    // fail-open (windows skip it, as documented), the next ones reach the window again.
    let value = 71;
    await eventually(
      async () => {
        await reading(world.db.pool, tenant, value++);
        return (await windowBufferLength(client, windowBufferKey(tenant, "streak", "d1"))) >= 1;
      },
      30_000,
      "window state written to Valkey again",
    );
    expect(ev.child.exitCode).toBeNull();
    // Deduplicated in Postgres throughout: one open alert per rule and device.
    const open = await world.db.pool.query(
      "SELECT rule_id, count(*)::int AS n FROM alerts WHERE tenant_id = $1 AND state = 'open' GROUP BY rule_id",
      [tenant],
    );
    for (const r of open.rows) expect(r.n).toBe(1);
  });

  it("fails the tick cleanly while Postgres is down, and succeeds on the next tick once it is back", async () => {
    const server = await startPrivatePostgres();
    cleanups.push(() => server.destroy());
    const pool = new pg.Pool({ connectionString: server.url, max: 2 });
    pool.on("error", () => {});
    cleanups.push(() => pool.end());
    await migrateUp({ db: pool });
    const shardSet = "eval-test/pg-outage";
    await pool.query("INSERT INTO shard_sets (name, shard_count) VALUES ($1, 1)", [shardSet]);
    const tenant = uniqueTenantId();
    await seedTenant(pool, tenant, shardSet);
    await reading(pool, tenant, 80);

    const ev = track(
      startEvaluator({
        SHARD_INDEX: "0",
        SHARD_SET: shardSet,
        DATABASE_URL: server.url,
        VALKEY_URL,
        METRICS_PORT: "0",
        METRICS_HOST: "127.0.0.1",
        LOG_LEVEL: "debug",
        TICK_INTERVAL_SECONDS: "1",
      }),
    );
    await eventually(
      async () =>
        (await pool.query("SELECT 1 FROM alerts WHERE tenant_id = $1 AND rule_id = 'hot'", [tenant]))
          .rowCount === 1,
      20_000,
      "alert before the outage",
    );

    // A fast shutdown terminates every client connection: a real outage for the evaluator.
    await server.stop({ mode: "fast" });
    await ev.waitForLog((l) => l.msg === "tick_failed", 30_000);
    expect(ev.child.exitCode).toBeNull();
    expect((await ev.get("/readyz")).status).toBe(503);
    const failedAt = ev.logs.length;

    await server.start();
    await ev.waitForLog((l) => l.msg === "tick_done" && ev.logs.indexOf(l) > failedAt, 30_000);
    await reading(pool, tenant, 81);
    await eventually(
      async () =>
        (
          await pool.query(
            "SELECT occurrences FROM alerts WHERE tenant_id = $1 AND rule_id = 'hot' AND state = 'open'",
            [tenant],
          )
        ).rows[0]?.occurrences >= 2,
      20_000,
      "the alert updated after the outage",
    );
    // Nothing duplicated: one alert row per rule and device, no half-written tick.
    const rows = await pool.query(
      "SELECT rule_id, device_id, count(*)::int AS n FROM alerts WHERE tenant_id = $1 GROUP BY rule_id, device_id",
      [tenant],
    );
    for (const r of rows.rows) expect(r.n).toBe(1);
    expect(ev.child.exitCode).toBeNull();
  });
});
