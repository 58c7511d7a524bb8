/**
 * The evaluator through a real PgBouncer (the Debian package, a private instance per pooling mode in
 * front of the test PostgreSQL). First what breaks through transaction pooling, each pinned by a
 * test so the README's table stays true: the startup parameters a pool would send, named prepared
 * statements, LISTEN. Then the settings that make it work: `PG_POOL_MODE=transaction` (unnamed
 * statements, no session setting) and `DIRECT_DATABASE_URL` for the LISTEN connection, in the
 * store, the state rebuild and a whole evaluator process whose ticks alert and whose NOTIFY wake-ups
 * arrive.
 */
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { compileEvaluatorConfig } from "../../evaluator/src/config/evaluatorConfig.ts";
import { connectClients } from "../../evaluator/src/main.ts";
import { createPgStore } from "../../evaluator/src/store/pgStore.ts";
import { withoutStatementNames } from "../../evaluator/src/store/unnamedStatements.ts";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually, type LogLine, metricValue } from "../support/evaluatorProcess.ts";
import {
  type PgbouncerPoolMode,
  type PrivatePgbouncer,
  startPrivatePgbouncer,
} from "../support/pgbouncer.ts";
import { deleteTenantKeys, VALKEY_URL } from "../support/valkey.ts";

const fx = useEvaluatorFixture("pgbouncer_evaluator");

const bouncers = new Map<PgbouncerPoolMode, PrivatePgbouncer>();
beforeAll(async () => {
  for (const poolMode of ["session", "transaction", "statement"] as const) {
    bouncers.set(poolMode, await startPrivatePgbouncer({ poolMode }));
  }
});
afterAll(async () => {
  await Promise.all([...bouncers.values()].map((b) => b.destroy()));
});

/** The bouncer of `mode`, with a few server connections open to the test's database. */
function bouncer(mode: PgbouncerPoolMode): PrivatePgbouncer {
  const b = bouncers.get(mode);
  if (!b) throw new Error(`no PgBouncer in ${mode} mode (beforeAll failed)`);
  return b;
}

/** A pool of `max` clients on the test's database through the bouncer of `mode`; closed after the test. */
async function pooled(mode: PgbouncerPoolMode, max = 1): Promise<pg.Pool> {
  await bouncer(mode).warm(fx.db.url);
  const pool = new pg.Pool({ connectionString: bouncer(mode).through(fx.db.url), max });
  pool.on("error", () => {
    // Reported by the failing query.
  });
  fx.onCleanup(() => pool.end());
  return pool;
}

const log = pino({ level: "silent" });

function evaluatorConfig(extra: Record<string, string> = {}) {
  return compileEvaluatorConfig({
    shardIndex: "0",
    shardSet: fx.shardSet,
    databaseUrl: fx.db.url,
    valkeyUrl: VALKEY_URL,
    ...extra,
  });
}

/** The evaluator's clients for `config`, closed after the test. */
function clientsOf(config: ReturnType<typeof evaluatorConfig>) {
  const clients = connectClients(config, log);
  fx.onCleanup(async () => {
    clients.valkey.disconnect();
    await clients.db.end();
  });
  return clients;
}

async function settingOf(db: pg.Pool, name: string): Promise<string> {
  const { rows } = await db.query<{ value: string }>("SELECT current_setting($1) AS value", [name]);
  return rows[0]!.value;
}

describe("what breaks through transaction pooling", () => {
  it("PgBouncer refuses a connection that sends session settings as startup parameters", async () => {
    for (const mode of ["session", "transaction"] as const) {
      for (const setting of [{ statement_timeout: 30_000 }, { options: "-c synchronous_commit=off" }]) {
        const client = new pg.Client({ connectionString: bouncer(mode).through(fx.db.url), ...setting });
        client.on("error", () => {});
        await expect(client.connect()).rejects.toThrow(/unsupported startup parameter/);
        await client.end().catch(() => undefined);
      }
    }
  });

  it("a named prepared statement is missing (or already there) on the next server connection", async () => {
    const pool = await pooled("transaction");
    const store = createPgStore(pool);
    // The first call prepares eo_shard_set on one server connection; the client then only binds it.
    await store.readShardSet(fx.shardSet);
    await expect(
      (async () => {
        for (let i = 0; i < 4; i++) await store.readShardSet(fx.shardSet);
      })(),
    ).rejects.toThrow(/prepared statement "eo_shard_set" (does not exist|already exists)/);
  });

  it("a LISTEN made through it never hears a NOTIFY", async () => {
    await bouncer("transaction").warm(fx.db.url);
    const listen = async (url: string) => {
      const client = new pg.Client({ connectionString: url });
      client.on("error", () => {});
      fx.onCleanup(() => client.end());
      const heard: string[] = [];
      client.on("notification", (n) => heard.push(n.channel));
      await client.connect();
      await client.query("LISTEN telemetry_ingest");
      return { client, heard };
    };
    const pooledListener = await listen(bouncer("transaction").through(fx.db.url));
    const directListener = await listen(fx.db.url);
    await fx.pool.query("NOTIFY telemetry_ingest");
    await eventually(async () => directListener.heard.length === 1, 5_000, "the direct listener to hear it");
    // In a session the notification would arrive before the answer to the next statement at the
    // latest; here each statement runs on some server connection, none of them the listener's.
    for (let i = 0; i < 4; i++) await pooledListener.client.query("SELECT 1");
    expect(pooledListener.heard).toEqual([]);
  });
});

describe("the evaluator's connections", () => {
  it("in the default mode, connect through session pooling with the pool's statement_timeout and JIT off", async () => {
    const { db } = clientsOf(evaluatorConfig({ databaseUrl: bouncer("session").through(fx.db.url) }));
    expect(await settingOf(db, "statement_timeout")).toBe("30s");
    expect(await settingOf(db, "jit")).toBe("off");
  });

  it("with PG_POOL_MODE=transaction, connect through transaction pooling and leave no session setting behind", async () => {
    await bouncer("transaction").warm(fx.db.url);
    const config = evaluatorConfig({
      databaseUrl: bouncer("transaction").through(fx.db.url),
      pgPoolMode: "transaction",
    });
    const { db } = clientsOf(config);
    await Promise.all(Array.from({ length: 8 }, () => db.query("SELECT 1")));
    // Whichever server connection answers has the server's own settings.
    const server = await settingOf(fx.pool, "statement_timeout");
    for (let i = 0; i < 4; i++) expect(await settingOf(db, "statement_timeout")).toBe(server);
  });
});

describe("with unnamed statements (PG_POOL_MODE=transaction)", () => {
  it("the store reads and commits through transaction pooling", async () => {
    const t = await fx.tenant({
      rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 30, cooldown_seconds: 0 }],
    });
    await fx.reading(t, 40);
    const pool = await pooled("transaction");
    const pooledQuery = (text: string) => pool.query(text);
    const store = createPgStore(withoutStatementNames(pool));
    const noWrites = {
      upserts: [],
      resolves: [],
      counts: { fire: 0, stillFiring: 0, resolve: 0 },
      suppressedByMaintenance: 0,
    };
    for (let round = 0; round < 3; round++) {
      expect(await store.readShardSet(fx.shardSet)).toMatchObject({ shardCount: 1 });
      expect(await store.readMembership(fx.shardSet, 0, 0)).toEqual([{ id: t, owned: true, handoff: false }]);
      const data = (await store.readTenantData([t], Date.now(), 0)).get(t)!;
      expect(data.ruleRows).toHaveLength(1);
      expect(data.fence.seq).toBe(round);
      const commit = await store.commitEvaluation(t, noWrites, {
        fence: data.fence,
        nowMs: Date.now(),
        evaluator: "test",
      });
      expect(commit.applied).toBe(true);
      // One statement more per round, so the next round's statements land on other server
      // connections than this round's (eight statements on four connections would come round again).
      await pooledQuery("SELECT 1");
    }
  });
});

describe("an evaluator process through PgBouncer", () => {
  beforeEach(async () => {
    await bouncer("transaction").warm(fx.db.url);
    await bouncer("statement").warm(fx.db.url);
  });

  const openAlerts = async (tenant: string) => {
    const { rows } = await fx.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM alerts WHERE tenant_id = $1 AND state = 'open'",
      [tenant],
    );
    return rows[0]!.n;
  };

  it.each(["session", "transaction", "statement"] as const)(
    "PG_POOL_MODE=%s: ticks alert, rebuild and resolve through PgBouncer in that mode, and NOTIFYs wake it",
    async (mode) => {
      const t = await fx.tenant({
        rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 30, cooldown_seconds: 0 }],
      });
      const env = {
        DATABASE_URL: bouncer(mode).through(fx.db.url),
        // Session pooling gives the LISTEN connection a session of its own: no direct URL needed.
        ...(mode === "session" ? {} : { DIRECT_DATABASE_URL: fx.db.url }),
        PG_POOL_MODE: mode,
        TICK_INTERVAL_SECONDS: "30",
        MIN_INTERVAL_SECONDS: "0.5",
      };
      const failures = (p: { logs: LogLine[] }) =>
        p.logs.filter((l) => l.msg === "tenant_failed" || l.msg === "tick_failed");
      await fx.reading(t, 40);
      const first = fx.start(env);
      await first.waitForLog((l) => l.msg === "tick_done" && l["evaluated"] === 1);
      await eventually(async () => (await openAlerts(t)) === 1, 20_000, "the alert");
      expect(await first.stop()).toMatchObject({ code: 0 });
      expect(failures(first)).toEqual([]);

      // A restart after Valkey lost the tenant's state: the new process rebuilds it from PostgreSQL
      // (rebuild_state.sql, through the pooler as well) and resolves the alert on a clearing reading.
      await deleteTenantKeys(fx.valkey(), t);
      await fx.reading(t, 20);
      const p = fx.start(env);
      await p.waitForLog((l) => l.msg === "listen_started");
      await p.waitForLog((l) => l.msg === "tick_done" && l["evaluated"] === 1);
      await eventually(async () => (await openAlerts(t)) === 0, 20_000, "the resolve");
      expect(metricValue((await p.get("/metrics")).body, "evaluator_state_rebuilds_total")).toBe(1);

      // A reading over the threshold and a NOTIFY (heard on the direct connection, or through
      // session pooling), long before the next regular tick: the wake-up tick fires the alert again.
      const notified = (l: LogLine) => l.msg === "tick_start" && l["trigger"] === "notify";
      expect(p.logs.some(notified)).toBe(false);
      await fx.reading(t, 41);
      await fx.pool.query("NOTIFY telemetry_ingest");
      await p.waitForLog(notified);
      await eventually(async () => (await openAlerts(t)) === 1, 20_000, "the alert fired again");
      expect(failures(p)).toEqual([]);
    },
  );
  it("PG_POOL_MODE=transaction without DIRECT_DATABASE_URL: no LISTEN through the pooler, the timer drives the ticks", async () => {
    const t = await fx.tenant({
      rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 30, cooldown_seconds: 0 }],
    });
    await fx.reading(t, 40);
    const p = fx.start({
      DATABASE_URL: bouncer("transaction").through(fx.db.url),
      PG_POOL_MODE: "transaction",
    });
    expect(await p.waitForLog((l) => l.msg === "listen_disabled")).toMatchObject({
      poolMode: "transaction",
      reason: "DIRECT_DATABASE_URL is not set",
    });
    await p.waitForLog((l) => l.msg === "tick_done" && l["evaluated"] === 1);
    await eventually(async () => (await openAlerts(t)) === 1, 20_000, "the alert");
    expect(p.logs.some((l) => l.msg === "listen_started")).toBe(false);
  });
});
