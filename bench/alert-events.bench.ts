/**
 * The alert-event outbox's cost per tick: the evaluator's real tick path (TickRunner, PostgreSQL,
 * Valkey) on two identical shard sets in one throwaway database, one committing with alert events
 * (the product's default: one `alert_events` row per change of an alert's state and a NOTIFY, in
 * the commit statement) and one without (`createPgStore(db, { alertEvents: false })`), ticked side
 * by side (their order alternating each tick) on the same readings.
 *
 *   node bench/alert-events.bench.ts       (also run by `npm run bench`)
 *
 * Settings (environment): DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), VALKEY_URL
 * (default redis://127.0.0.1:6379/0), BENCH_TENANTS (300), BENCH_DEVICES (100 per tenant, one
 * threshold rule over all of them), BENCH_TICKS (9: the first warms up), BENCH_CONCURRENCY (8),
 * BENCH_CHANGE (0.1, in steps of 0.01: the share of (rule, device) pairs whose alert changes state
 * each tick — they fire on odd ticks and resolve on even ones; 0.1 is an alert storm: most ticks
 * change almost none).
 *
 * Figures: first the commit statement alone, one tenant at a time (median of 300 alternating
 * commits with 0, 1 and 10 changes each, with and without events); then the median steady tick
 * (wall ms) with and without events, the difference per tick and per event, the time tenants
 * awaited their commit statement, events per tick, and the outbox's size per event. The tick
 * figures share the machine with PostgreSQL and Valkey (and whatever else runs): read them from
 * a quiet machine. The last line is `BENCH_RESULT {json}`.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import pg from "pg";
import pino from "pino";
import { Registry } from "prom-client";
import { compileEvaluatorConfig } from "../evaluator/src/config/evaluatorConfig.ts";
import { connectClients } from "../evaluator/src/main.ts";
import { createEvaluatorMetrics } from "../evaluator/src/metrics.ts";
import { readRebuiltState } from "../evaluator/src/state/rebuild.ts";
import { ValkeyState } from "../evaluator/src/state/valkeyState.ts";
import { type AlertWrites, alertFingerprint } from "../evaluator/src/store/alertWrites.ts";
import { createPgStore, type EvaluatorStore } from "../evaluator/src/store/pgStore.ts";
import { CircuitBreaker } from "../evaluator/src/tick/circuitBreaker.ts";
import { isValkeyOutage } from "../evaluator/src/tick/outages.ts";
import { TickRunner } from "../evaluator/src/tick/tickRunner.ts";
import { migrateUp } from "../operator/src/migrate/runMigrations.ts";
import { systemClock } from "../runtime/clock.ts";
import { isPostgresOutage } from "../runtime/postgresOutage.ts";

const env = process.env;
const ADMIN_URL = env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const VALKEY_URL = env["VALKEY_URL"] ?? "redis://127.0.0.1:6379/0";
const TENANTS = Number(env["BENCH_TENANTS"] ?? 300);
const DEVICES = Number(env["BENCH_DEVICES"] ?? 100);
const TICKS = Math.max(3, Number(env["BENCH_TICKS"] ?? 9));
const CONCURRENCY = Number(env["BENCH_CONCURRENCY"] ?? 8);
const CHANGE = Number(env["BENCH_CHANGE"] ?? 0.1);
const INTERVAL_MS = 60_000;
const PREFIX = `evb-${randomBytes(3).toString("hex")}`;
const T0 = Math.floor(Date.now() / INTERVAL_MS) * INTERVAL_MS;
const SIDES = ["with", "without"] as const;
type Side = (typeof SIDES)[number];
const SHARD_SET: Record<Side, string> = { with: "bench/events-on", without: "bench/events-off" };
/** Devices j with j mod 100 below this flip each tick. */
const FLIPPING = Math.round(CHANGE * 100);

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function line(label: string, value: string): void {
  console.log(`  ${label.padEnd(52)} ${value}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function seed(db: pg.Pool): Promise<void> {
  for (const side of SIDES) {
    const t = `${PREFIX}-${side}`;
    await db.query("INSERT INTO shard_sets (name, shard_count) VALUES ($1, 1)", [SHARD_SET[side]]);
    await db.query(
      `INSERT INTO tenants (id, shard_set, shard_index) SELECT $1 || '-' || i, $2, 0 FROM generate_series(0, $3::int - 1) i`,
      [t, SHARD_SET[side], TENANTS],
    );
    await db.query(
      `INSERT INTO devices (tenant_id, id)
       SELECT $1 || '-' || i, 'dev-' || j FROM generate_series(0, $2::int - 1) i, generate_series(0, $3::int - 1) j`,
      [t, TENANTS, DEVICES],
    );
    await db.query(
      `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, cooldown_seconds)
       SELECT $1 || '-' || i, 'hot', 'temp', 'threshold', '>', 50, 0 FROM generate_series(0, $2::int - 1) i`,
      [t, TENANTS],
    );
  }
  await db.query("ANALYZE");
}

/** Tick k's readings of both sides: flipping devices are hot on odd ticks, the others never. */
async function insertReadings(db: pg.Pool, k: number): Promise<void> {
  for (const side of SIDES) {
    await db.query(
      `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
       SELECT $1 || '-' || i, 'dev-' || j, 'temp', to_timestamp(($2::float8 + j) / 1000),
              CASE WHEN j % 100 < $5::int AND $4::int % 2 = 1 THEN 90 ELSE 10 END
         FROM generate_series(0, $3::int - 1) i, generate_series(0, $6::int - 1) j`,
      [`${PREFIX}-${side}`, T0 + (k - 1) * INTERVAL_MS + 1000, TENANTS, k, FLIPPING, DEVICES],
    );
  }
}

async function main(): Promise<void> {
  const dbName = `eo_bench_events_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName} TEMPLATE template0`);
  await admin.end();
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const log = pino({ level: "silent" });
  const configs = Object.fromEntries(
    SIDES.map((side) => [
      side,
      compileEvaluatorConfig({
        shardIndex: "0",
        shardSet: SHARD_SET[side],
        databaseUrl: dbUrl.toString(),
        valkeyUrl: VALKEY_URL,
        concurrency: String(CONCURRENCY),
        tenantBudgetMs: "30000",
        valkeyCommandTimeoutMs: "10000",
      }),
    ]),
  ) as Record<Side, ReturnType<typeof compileEvaluatorConfig>>;
  const clients = connectClients(configs.with, log);
  const { db } = clients;
  const valkey = clients.valkey as Redis; // one server (VALKEY_MODE standalone)
  try {
    console.log(
      `alert-event outbox benchmark: ${fmt(TENANTS)} tenants × ${fmt(DEVICES)} devices × 1 rule per side, ` +
        `${fmt(CHANGE * 100, 1)} % of the pairs change state each tick, ${TICKS} ticks, concurrency ${CONCURRENCY}`,
    );
    await migrateUp({ db });
    await seed(db);
    const statement = await measureStatement(db);
    const commitMs: Record<Side, number> = { with: 0, without: 0 };
    const breaker = (isOutage: (e: unknown) => boolean) =>
      new CircuitBreaker({
        name: "b",
        clock: systemClock,
        failureThreshold: 1000,
        cooldownMs: 1000,
        isOutage,
      });
    const runners = Object.fromEntries(
      SIDES.map((side) => {
        const pgStore = createPgStore(db, { alertEvents: side === "with" });
        const store: EvaluatorStore = {
          ...pgStore,
          async commitEvaluation(...a) {
            const t = performance.now();
            try {
              return await pgStore.commitEvaluation(...a);
            } finally {
              commitMs[side] += performance.now() - t;
            }
          },
        };
        const state = new ValkeyState(valkey);
        return [
          side,
          new TickRunner({
            settings: configs[side],
            store,
            state,
            rebuild: (plan, fence, now) => readRebuiltState(db, plan, fence, now),
            clock: systemClock,
            log,
            metrics: createEvaluatorMetrics(new Registry()),
            breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
            token: `bench-${side}`,
          }),
        ];
      }),
    ) as Record<Side, TickRunner>;

    const ms: Record<Side, number[]> = { with: [], without: [] };
    const commits: Record<Side, number[]> = { with: [], without: [] };
    const events: number[] = [];
    for (let k = 0; k < TICKS; k++) {
      await insertReadings(db, k);
      await db.query("ANALYZE telemetry");
      const before = Number((await db.query("SELECT count(*) FROM alert_events")).rows[0].count);
      // Alternate which side runs first, so neither always gets the warmer caches.
      for (const side of k % 2 === 0 ? SIDES : [...SIDES].reverse()) {
        commitMs[side] = 0;
        const t = performance.now();
        const summary = await runners[side].runTick({
          slot: T0 / INTERVAL_MS + k,
          now: T0 + k * INTERVAL_MS,
          trigger: "timer",
        });
        if (!summary.ok || summary.failed > 0)
          throw new Error(`tick ${k} (${side}) failed: ${JSON.stringify(summary)}`);
        ms[side].push(performance.now() - t);
        commits[side].push(commitMs[side]);
      }
      const after = Number((await db.query("SELECT count(*) FROM alert_events")).rows[0].count);
      events.push(after - before);
      line(
        `tick ${k}${k === 0 ? " (warm-up)" : ""}`,
        `with events ${fmt(ms.with[k]!)} ms, without ${fmt(ms.without[k]!)} ms; ${fmt(events[k]!)} events`,
      );
    }
    const steady = (xs: number[]) => xs.slice(1);
    const w = median(steady(ms.with));
    const wo = median(steady(ms.without));
    const cw = median(steady(commits.with));
    const cwo = median(steady(commits.without));
    const ev = median(steady(events));
    const { rows } = await db.query<{ bytes: string; n: string }>(
      "SELECT pg_total_relation_size('alert_events')::text AS bytes, count(*)::text AS n FROM alert_events",
    );
    const bytesPerEvent = Number(rows[0]!.bytes) / Math.max(1, Number(rows[0]!.n));
    console.log("\nsummary (median of the steady ticks):");
    line("tick wall time with events", `${fmt(w)} ms`);
    line("tick wall time without events", `${fmt(wo)} ms`);
    line("outbox cost per tick", `${fmt(w - wo, 1)} ms (${fmt(((w - wo) / wo) * 100, 1)} %)`);
    line("events per tick", `${fmt(ev)} (${fmt(CHANGE * 100, 1)} % of ${fmt(TENANTS * DEVICES)} pairs)`);
    line("outbox cost per event (tick wall time)", `${fmt(((w - wo) / Math.max(1, ev)) * 1000, 1)} µs`);
    line(
      "commit statements, awaited (sum over tenants)",
      `${fmt(cw)} ms with, ${fmt(cwo)} ms without (+${fmt(((cw - cwo) / Math.max(1, ev)) * 1000, 1)} µs per event)`,
    );
    line("outbox size per event (table and indexes)", `${fmt(bytesPerEvent)} bytes`);
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        tenants: TENANTS,
        devices: DEVICES,
        change: CHANGE,
        ticks: TICKS,
        concurrency: CONCURRENCY,
        tickMsWith: w,
        tickMsWithout: wo,
        eventsPerTick: ev,
        costPerTickMs: w - wo,
        costPerEventUs: ((w - wo) / Math.max(1, ev)) * 1000,
        bytesPerEvent,
        statement,
      })}`,
    );
  } finally {
    await cleanupValkey(valkey).catch(() => undefined);
    valkey.disconnect();
    await db.end();
    const drop = new pg.Client({ connectionString: ADMIN_URL });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await drop.end();
  }
}

/**
 * The commit statement alone: tenant 0 of each side, one commit at a time, alternating sides and
 * fire/resolve of `k` devices (so every commit changes `k` alerts). Returns the medians (ms).
 */
async function measureStatement(db: pg.Pool): Promise<Record<string, number>> {
  const N = 300;
  const T = T0 - 10 * INTERVAL_MS;
  const out: Record<string, number> = {};
  // Tick times only move forward (the fence refuses an older one), across both passes.
  let at = T;
  console.log("\ncommit statement alone (one tenant at a time, median of 300 commits per side):");
  for (const k of [0, 1, 10]) {
    const times: Record<Side, number[]> = { with: [], without: [] };
    const stores = {
      with: createPgStore(db, { alertEvents: true }),
      without: createPgStore(db, { alertEvents: false }),
    };
    for (let i = 0; i < N; i++) {
      for (const side of i % 2 === 0 ? SIDES : [...SIDES].reverse()) {
        const store = stores[side];
        const tenant = `${PREFIX}-${side}-0`;
        at++;
        const fence = (await store.readTenantData([tenant], at, T - 3_600_000)).get(tenant)!.fence;
        const devices = Array.from({ length: k }, (_, j) => `dev-${j}`);
        const writes: AlertWrites =
          i % 2 === 0
            ? {
                upserts: devices.map((d) => ({
                  ruleId: "hot",
                  deviceId: d,
                  fingerprint: alertFingerprint(tenant, "hot", d),
                  severity: "warning" as const,
                  firstSeenMs: at,
                  lastSeenMs: at,
                  value: 90,
                  message: "temp > 50 (value 90)",
                  escalated: false,
                })),
                resolves: [],
                counts: { fire: k, stillFiring: 0, resolve: 0 },
                suppressedByMaintenance: 0,
              }
            : {
                upserts: [],
                resolves: devices.map((d) => alertFingerprint(tenant, "hot", d)),
                counts: { fire: 0, stillFiring: 0, resolve: k },
                suppressedByMaintenance: 0,
              };
        const t = performance.now();
        const r = await store.commitEvaluation(tenant, writes, { fence, nowMs: at, evaluator: "bench" });
        times[side].push(performance.now() - t);
        if (!r.applied) throw new Error("a benchmark commit was refused");
      }
    }
    const w = median(times.with.slice(20));
    const wo = median(times.without.slice(20));
    out[`k${k}With`] = w;
    out[`k${k}Without`] = wo;
    line(
      `${k} change${k === 1 ? "" : "s"} per commit`,
      `${fmt(w, 3)} ms with events, ${fmt(wo, 3)} ms without: +${fmt((w - wo) * 1000, 0)} µs per commit` +
        (k > 0 ? `, +${fmt(((w - wo) * 1000) / k, 0)} µs per event` : " (a tick that changes nothing)"),
    );
  }
  // The statement's alerts and events are not the ticks': start those from a clean table.
  await db.query("DELETE FROM alerts");
  await db.query("DELETE FROM alert_events");
  return out;
}

/** Deletes every key of the benchmark's tenants (they share the run's unique prefix). */
async function cleanupValkey(valkey: Redis): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await valkey.scan(cursor, "MATCH", `*{${PREFIX}-*`, "COUNT", 5000);
    if (keys.length > 0) await valkey.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

await main();
