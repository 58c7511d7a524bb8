/**
 * Outages of the evaluator's two dependencies, each on a private instance started by the test
 * (never the machine's shared servers), with the real evaluator process running throughout:
 * - Valkey stopped mid-run: ticks go on with the documented fallbacks (an owned tenant is still
 *   evaluated, its threshold alert raised, deduplicated by Postgres; /readyz reports the outage,
 *   /healthz does not); Valkey started again: state is written again, with no restart of the process.
 * - Postgres stopped: the tick fails cleanly (logged, the process stays up, /readyz fails, /healthz
 *   does not); started again: the next tick succeeds, and nothing is duplicated.
 */

import { Redis } from "ioredis";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { windowBufferKey } from "../../evaluator/src/state/keys.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import {
  insertReadings,
  insertTenants,
  type TenantSeed,
  useEvaluatorFixture,
} from "../support/evaluatorFixture.ts";
import { type EvaluatorProcess, eventually } from "../support/evaluatorProcess.ts";
import { startPrivatePostgres, startPrivateRedis } from "../support/privateServices.ts";
import { windowBufferLength } from "../support/valkey.ts";

const fx = useEvaluatorFixture("outage");

/** A threshold rule and a window rule over the same readings, without cooldowns. */
const SEED: TenantSeed = {
  rules: [
    { id: "hot", rule_type: "threshold", operator: ">", threshold: 50, cooldown_seconds: 0 },
    {
      id: "streak",
      rule_type: "window",
      operator: ">",
      threshold: 50,
      window_seconds: 600,
      min_count: 3,
      cooldown_seconds: 0,
    },
  ],
};

const ticksDone = (p: EvaluatorProcess) => p.logs.filter((l) => l.msg === "tick_done").length;

describe("evaluator outages", () => {
  it("keeps ticking through a Valkey outage with the documented fallbacks, and recovers without a restart", async () => {
    const redis = await startPrivateRedis();
    fx.onCleanup(() => redis.destroy());
    const tenant = await fx.tenant(SEED);
    const ev = fx.start({ VALKEY_URL: redis.url, TICK_INTERVAL_SECONDS: "1" });
    await ev.waitForLog((l) => l.msg === "tick_done");
    expect((await ev.get("/readyz")).status).toBe(200);

    await redis.stop();
    const ticksAtOutage = ticksDone(ev);
    await fx.reading(tenant, 70);
    // The owner still evaluates its tenant: the threshold alert is raised from Postgres alone.
    await eventually(
      async () =>
        (
          await fx.pool.query(
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
    // Liveness never asks Valkey: an outage must not restart every shard.
    expect(await ev.get("/healthz")).toEqual({ status: 200, body: "ok\n" });
    expect(ev.logs.some((l) => l.msg === "valkey_fallback" || l.msg === "circuit_breaker")).toBe(true);

    await redis.start();
    await eventually(async () => (await ev.get("/readyz")).status === 200, 30_000, "ready again");
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on("error", () => {});
    fx.onCleanup(() => client.disconnect());
    // Readings keep coming; one read while the tick's client is still reconnecting is evaluated
    // fail-open (windows skip it, as documented), the next ones reach the window again.
    let value = 71;
    await eventually(
      async () => {
        await fx.reading(tenant, value++);
        return (await windowBufferLength(client, windowBufferKey(tenant, "streak", "d1"))) >= 1;
      },
      30_000,
      "window state written to Valkey again",
    );
    expect(ev.child.exitCode).toBeNull();
    // Deduplicated in Postgres throughout: one open alert per rule and device.
    const open = await fx.pool.query(
      "SELECT rule_id, count(*)::int AS n FROM alerts WHERE tenant_id = $1 AND state = 'open' GROUP BY rule_id",
      [tenant],
    );
    for (const r of open.rows) expect(r.n).toBe(1);
  });

  it("fails the tick cleanly while Postgres is down, and succeeds on the next tick once it is back", async () => {
    // A private PostgreSQL (stopped below) instead of the fixture's database on the shared server;
    // Valkey and the tenant's key cleanup are the fixture's.
    const server = await startPrivatePostgres();
    fx.onCleanup(() => server.destroy());
    const pool = new pg.Pool({ connectionString: server.url, max: 2 });
    pool.on("error", () => {});
    fx.onCleanup(() => pool.end());
    await migrateUp({ db: pool });
    const shardSet = "eval-test/pg-outage";
    await pool.query("INSERT INTO shard_sets (name, shard_count) VALUES ($1, 1)", [shardSet]);
    const tenant = fx.tenantId();
    await insertTenants(pool, shardSet, [tenant], SEED);
    await insertReadings(pool, tenant, 80);

    const ev = fx.start({ SHARD_SET: shardSet, DATABASE_URL: server.url, TICK_INTERVAL_SECONDS: "1" });
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
    // Liveness never asks PostgreSQL: an outage must not restart every shard.
    expect(await ev.get("/healthz")).toEqual({ status: 200, body: "ok\n" });
    const failedAt = ev.logs.length;

    await server.start();
    await ev.waitForLog((l) => l.msg === "tick_done" && ev.logs.indexOf(l) > failedAt, 30_000);
    await insertReadings(pool, tenant, 81);
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
