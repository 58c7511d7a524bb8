import type { Redis } from "ioredis";
import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { compileEvaluatorConfig } from "../../evaluator/src/config/evaluatorConfig.ts";
import { connectClients } from "../../evaluator/src/main.ts";
import { createEvaluatorMetrics } from "../../evaluator/src/metrics.ts";
import { tenantStateKey } from "../../evaluator/src/state/keys.ts";
import { readRebuiltState } from "../../evaluator/src/state/rebuild.ts";
import { ValkeyState } from "../../evaluator/src/state/valkeyState.ts";
import { createPgStore } from "../../evaluator/src/store/pgStore.ts";
import { CircuitBreaker } from "../../evaluator/src/tick/circuitBreaker.ts";
import { isValkeyOutage } from "../../evaluator/src/tick/outages.ts";
import { TickRunner, type TickSummary } from "../../evaluator/src/tick/tickRunner.ts";
import { systemClock } from "../../runtime/clock.ts";
import { isPostgresOutage } from "../../runtime/postgresOutage.ts";
import { type RuleColumns, useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { VALKEY_URL } from "../support/valkey.ts";

const I = 60_000;
// Slot-aligned "now" of the test: ticks run at T0 + k·I.
const T0 = Math.floor(Date.now() / I) * I;

const fx = useEvaluatorFixture("rules");

function runner(valkey: Redis = fx.valkey(), token = "test-evaluator"): TickRunner {
  const breaker = (isOutage: (e: unknown) => boolean) =>
    new CircuitBreaker({ name: "x", clock: systemClock, failureThreshold: 1000, cooldownMs: 1000, isOutage });
  return new TickRunner({
    settings: {
      shardSet: fx.shardSet,
      shardIndex: 0,
      intervalMs: I,
      tenantBudgetMs: 10_000,
      concurrency: 4,
    },
    store: createPgStore(fx.pool),
    state: new ValkeyState(valkey),
    rebuild: (plan, fence, wallNow) => readRebuiltState(fx.pool, plan, fence, wallNow),
    clock: systemClock,
    log: pino({ level: "silent" }),
    metrics: createEvaluatorMetrics(new Registry()),
    breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
    token,
  });
}

/** Runs the tick of slot T0/I + k at T0 + k·I (+ ms). */
function tickAt(r: TickRunner, k: number, ms = 0): Promise<TickSummary> {
  return r.runTick({ slot: T0 / I + k, now: T0 + k * I + ms, trigger: "timer" });
}

function tenant(devices: string[] = ["d1"]): Promise<string> {
  return fx.tenant({ devices });
}

/** Adds rule `id` (metric "temp", no cooldown unless given) to the tenant. */
function rule(tenantId: string, id: string, columns: RuleColumns): Promise<void> {
  return fx.rule(tenantId, { id, cooldown_seconds: 0, ...columns });
}

/** Inserts a reading at T0 + s seconds (committed: the next evaluation's snapshot sees it). */
function reading(tenantId: string, deviceId: string, s: number, value: number): Promise<void> {
  return fx.reading(tenantId, value, { device: deviceId, atMs: T0 + s * 1000 });
}

interface AlertRow {
  rule_id: string;
  device_id: string;
  state: "open" | "resolved";
  severity: string;
  occurrences: number;
  value: number | null;
  escalated: boolean;
}

async function alerts(tenantId: string): Promise<AlertRow[]> {
  const { rows } = await fx.pool.query<AlertRow>(
    `SELECT rule_id, device_id, state, severity, occurrences, value, escalated_at IS NOT NULL AS escalated
       FROM alerts WHERE tenant_id = $1 ORDER BY id`,
    [tenantId],
  );
  return rows;
}

describe("rules end to end (one real tick per slot)", () => {
  it("threshold: fires, deduplicates while firing, holds without data, auto-resolves, fires a new incident", async () => {
    const t = await tenant();
    await rule(t, "hot", { rule_type: "threshold", operator: ">", threshold: 30, device_id: "d1" });
    const r = runner();

    await reading(t, "d1", -10, 42);
    expect((await tickAt(r, 0)).alerts).toBe(1);
    expect(await alerts(t)).toMatchObject([
      { rule_id: "hot", device_id: "d1", state: "open", occurrences: 1, value: 42 },
    ]);

    await reading(t, "d1", 50, 45);
    await tickAt(r, 1);
    expect(await alerts(t)).toMatchObject([{ state: "open", occurrences: 2, value: 45 }]);

    await tickAt(r, 2); // no reading: unknown, nothing changes
    expect(await alerts(t)).toMatchObject([{ state: "open", occurrences: 2 }]);

    await reading(t, "d1", 170, 20);
    expect((await tickAt(r, 3)).resolved).toBe(1);
    expect(await alerts(t)).toMatchObject([{ state: "resolved", occurrences: 2 }]);

    await reading(t, "d1", 230, 50);
    await tickAt(r, 4);
    expect((await alerts(t)).map((a) => a.state)).toEqual(["resolved", "open"]);
  });

  it("window: fires on the min_count-th qualifying reading, resolves when they age out", async () => {
    const t = await tenant();
    await rule(t, "w", {
      rule_type: "window",
      operator: ">",
      threshold: 50,
      window_seconds: 300,
      min_count: 3,
    });
    const r = runner();
    await reading(t, "d1", -5, 60);
    await tickAt(r, 0);
    await reading(t, "d1", 55, 40); // does not qualify
    await tickAt(r, 1);
    await reading(t, "d1", 115, 70);
    await tickAt(r, 2);
    expect(await alerts(t)).toEqual([]);
    await reading(t, "d1", 175, 80);
    await tickAt(r, 3);
    expect(await alerts(t)).toMatchObject([{ rule_id: "w", state: "open", value: 3 }]);
    // No new readings: at T0+360 s the first qualifying one (T0−5 s) has left the 300 s window.
    await tickAt(r, 6);
    expect(await alerts(t)).toMatchObject([{ state: "resolved" }]);
  });

  it("anomaly: learns a baseline, fires on a spike", async () => {
    const t = await tenant();
    await rule(t, "a", { rule_type: "anomaly", params: { k: 3, minSamples: 5, minStddev: 0.5 } });
    const r = runner();
    const normal = [20, 20.4, 19.8, 20.1, 19.9, 20.2, 20.0, 19.7];
    for (const [i, v] of normal.entries()) await reading(t, "d1", -50 + i * 5, v);
    await tickAt(r, 0);
    await reading(t, "d1", 30, 20.3);
    await tickAt(r, 1);
    expect(await alerts(t)).toEqual([]);
    await reading(t, "d1", 90, 35);
    await tickAt(r, 2);
    expect(await alerts(t)).toMatchObject([{ rule_id: "a", state: "open", value: 35 }]);
  });

  it("pattern rising: K consecutive rises fire; a drop resolves", async () => {
    const t = await tenant();
    await rule(t, "rise", {
      rule_type: "pattern",
      window_seconds: 600,
      min_count: 3,
      params: { kind: "rising" },
    });
    const r = runner();
    for (const [i, v] of [10, 11, 12].entries()) await reading(t, "d1", -30 + i * 10, v);
    await tickAt(r, 0);
    expect(await alerts(t)).toEqual([]);
    await reading(t, "d1", 30, 13);
    await tickAt(r, 1);
    expect(await alerts(t)).toMatchObject([{ rule_id: "rise", state: "open", value: 13 }]);
    await reading(t, "d1", 90, 5);
    await tickAt(r, 2);
    expect(await alerts(t)).toMatchObject([{ state: "resolved" }]);
  });

  it("pattern absent: a silent device fires after the window (also one that never reported), a reading resolves", async () => {
    const t = await tenant(["talker", "silent"]);
    await rule(t, "quiet", { rule_type: "pattern", window_seconds: 120, params: { kind: "absent" } });
    const r = runner();
    await reading(t, "talker", -5, 1);
    await tickAt(r, 0); // seeds "silent" with the tick time
    await reading(t, "talker", 55, 1);
    await tickAt(r, 1);
    expect(await alerts(t)).toEqual([]);
    await reading(t, "talker", 115, 1);
    await tickAt(r, 2); // silent for 120 s
    expect(await alerts(t)).toMatchObject([
      { rule_id: "quiet", device_id: "silent", state: "open", value: 120 },
    ]);
    await reading(t, "silent", 150, 1);
    await reading(t, "talker", 170, 1);
    await tickAt(r, 3);
    expect(await alerts(t)).toMatchObject([{ device_id: "silent", state: "resolved" }]);
  });

  it("maintenance suppresses fire and still-firing, never resolve; the alert opens once it ends", async () => {
    const t = await tenant(["d1", "d2"]);
    await rule(t, "hot", { rule_type: "threshold", operator: ">", threshold: 30 });
    await fx.pool.query(
      `INSERT INTO maintenance_windows (tenant_id, device_id, starts_at, ends_at)
       VALUES ($1, 'd1', to_timestamp($2::float8 / 1000), to_timestamp($3::float8 / 1000))`,
      [t, T0 - 1000, T0 + 90_000],
    );
    const r = runner();
    await reading(t, "d1", -5, 50);
    await reading(t, "d2", -5, 50);
    await tickAt(r, 0);
    expect((await alerts(t)).map((a) => a.device_id)).toEqual(["d2"]); // d1 is in maintenance
    await reading(t, "d1", 55, 51);
    await tickAt(r, 1);
    expect((await alerts(t)).map((a) => a.device_id)).toEqual(["d2"]);
    await reading(t, "d1", 115, 52); // the window ended at +90 s
    await tickAt(r, 2);
    expect((await alerts(t)).map((a) => [a.device_id, a.state])).toEqual([
      ["d2", "open"],
      ["d1", "open"],
    ]);
    // A tenant-wide window does not keep a cleared condition from resolving.
    await fx.pool.query(
      `INSERT INTO maintenance_windows (tenant_id, starts_at, ends_at)
       VALUES ($1, to_timestamp($2::float8 / 1000), to_timestamp($3::float8 / 1000))`,
      [t, T0 + 150_000, T0 + 600_000],
    );
    await reading(t, "d2", 175, 10);
    await tickAt(r, 3);
    expect((await alerts(t)).map((a) => [a.device_id, a.state])).toEqual([
      ["d2", "resolved"],
      ["d1", "open"],
    ]);
  });

  it("escalation raises the severity once the condition has held long enough", async () => {
    const t = await tenant();
    await rule(t, "esc", {
      rule_type: "threshold",
      operator: ">",
      threshold: 30,
      severity: "warning",
      escalation: { after_seconds: 120, severity: "critical" },
    });
    const r = runner();
    for (let k = 0; k < 4; k++) {
      await reading(t, "d1", k * 60 - 5, 40 + k);
      await tickAt(r, k);
      const [a] = await alerts(t);
      // Fired at T0; escalated at T0 + 120 s and after.
      expect(a).toMatchObject({ state: "open", severity: k < 2 ? "warning" : "critical", escalated: k >= 2 });
    }
    expect(await alerts(t)).toHaveLength(1);
  });

  it("a Valkey state lost (a flush) changes no decision: the kept copy, then the rebuild from PostgreSQL, carry the alert on", async () => {
    const t = await tenant();
    await rule(t, "hot", { rule_type: "threshold", operator: ">", threshold: 30 });
    const valkey = fx.valkey();
    const r = runner(valkey);
    await reading(t, "d1", -5, 40);
    await tickAt(r, 0);
    await valkey.del(tenantStateKey(t));
    await reading(t, "d1", 55, 41);
    // The evaluator's copy is the state of the fence's seq: still firing, and its store writes the
    // whole state back.
    await tickAt(r, 1);
    expect(await alerts(t)).toMatchObject([{ state: "open", occurrences: 2, value: 41 }]);
    expect(await valkey.hget(tenantStateKey(t), "seq")).toBe(`2:${T0 + I}`);
    await valkey.del(tenantStateKey(t));
    await reading(t, "d1", 115, 42);
    // Another process (no copy) finds no state of the fence's seq: rebuilt from the open alert.
    await tickAt(runner(), 2);
    expect(await alerts(t)).toMatchObject([{ state: "open", occurrences: 3, value: 42 }]);
    await valkey.del(tenantStateKey(t));
    await reading(t, "d1", 175, 10);
    await tickAt(r, 3); // r's copy is of seq 2, the fence at 3: rebuilt too, and the lifecycle resolves
    expect(await alerts(t)).toMatchObject([{ state: "resolved", occurrences: 3 }]);
  });

  it("an alert write the database lost (an asynchronous commit cut by a crash) is written again on the next tick", async () => {
    const t = await tenant();
    await rule(t, "hot", { rule_type: "threshold", operator: ">", threshold: 30 });
    const r = runner();
    await reading(t, "d1", -5, 40);
    await tickAt(r, 0);
    await fx.pool.query("DELETE FROM alerts WHERE tenant_id = $1", [t]); // the fire was lost
    await reading(t, "d1", 55, 41);
    await tickAt(r, 1); // the lifecycle says "still firing": the upsert opens the alert again
    expect(await alerts(t)).toMatchObject([{ state: "open", occurrences: 1, value: 41 }]);
    await reading(t, "d1", 115, 10);
    await tickAt(r, 2);
    expect(await alerts(t)).toMatchObject([{ state: "resolved" }]);
    await fx.pool.query("UPDATE alerts SET state = 'open', resolved_at = NULL WHERE tenant_id = $1", [t]);
    await reading(t, "d1", 175, 11);
    await tickAt(r, 3); // the resolve was lost: the false condition resolves the open alert again
    expect(await alerts(t)).toMatchObject([{ state: "resolved" }]);
  });

  it("each alert commit runs with the configured synchronous_commit (default off), set in its own transaction", async () => {
    const log = pino({ level: "silent" });
    const t = await tenant();
    const { rows: server } = await fx.pool.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
    for (const [setting, expected] of [
      [undefined, "off"],
      ["on", "on"],
    ] as const) {
      const config = compileEvaluatorConfig({
        shardIndex: "0",
        shardSet: fx.shardSet,
        databaseUrl: fx.db.url,
        valkeyUrl: VALKEY_URL,
        pgSynchronousCommit: setting,
      });
      const { db, valkey } = connectClients(config, log);
      const client = await db.connect();
      try {
        // The session keeps the server's setting: nothing a pooler could carry to another client.
        const session = await client.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
        expect(session.rows[0]?.synchronous_commit).toBe(server[0]?.synchronous_commit);
        // Inside an open transaction, to read what the commit statement set for it.
        await client.query("BEGIN");
        const store = createPgStore(client, { synchronousCommit: config.pgSynchronousCommit });
        const fence = (await store.readTenantData([t], T0, 0)).get(t)!.fence;
        const noWrites = {
          upserts: [],
          resolves: [],
          counts: { fire: 0, stillFiring: 0, resolve: 0 },
          suppressedByMaintenance: 0,
        };
        expect(await store.commitEvaluation(t, noWrites, { fence, nowMs: T0, evaluator: "t" })).toMatchObject(
          {
            applied: true,
          },
        );
        const local = await client.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
        expect(local.rows[0]?.synchronous_commit).toBe(expected);
      } finally {
        await client.query("ROLLBACK");
        client.release();
        valkey.disconnect();
        await db.end();
      }
    }
  });

  it("Valkey unreachable: owned tenants are evaluated on their state rebuilt from PostgreSQL (windows and lifecycles go on)", async () => {
    const t = await tenant();
    await rule(t, "hot", { rule_type: "threshold", operator: ">", threshold: 30 });
    await rule(t, "w", {
      rule_type: "window",
      operator: ">",
      threshold: 30,
      window_seconds: 300,
      min_count: 1,
    });
    const dead = await fx.unreachableValkey();
    const r = runner(dead);
    await reading(t, "d1", -5, 40);
    const summary = await tickAt(r, 0);
    expect(summary).toMatchObject({ evaluated: 1, failed: 0, degraded: 1 });
    expect((await alerts(t)).map((a) => a.rule_id)).toEqual(["hot", "w"]);
    await reading(t, "d1", 55, 41);
    await tickAt(r, 1);
    // Both still firing (one row each), and the window holds the reading judged a tick ago.
    expect(await alerts(t)).toMatchObject([
      { rule_id: "hot", state: "open", occurrences: 2, value: 41 },
      { rule_id: "w", state: "open", occurrences: 2, value: 2 },
    ]);
    await reading(t, "d1", 115, 10);
    await tickAt(r, 2);
    expect((await alerts(t)).map((a) => [a.rule_id, a.state])).toEqual([
      ["hot", "resolved"],
      ["w", "open"],
    ]);
  });

  it("a tenant handed off to another shard is skipped while Valkey is unreachable (the lease fails closed)", async () => {
    const t = await fx.tenant({ shardIndex: 1, prevShardIndex: 0, movedAtMs: T0 - 1000 });
    await rule(t, "hot", { rule_type: "threshold", operator: ">", threshold: 30 });
    const dead = await fx.unreachableValkey();
    await reading(t, "d1", -5, 40);
    const summary = await tickAt(runner(dead), 0);
    expect(summary).toMatchObject({ tenants: 1, evaluated: 0, failed: 1 });
    expect(await alerts(t)).toEqual([]);
    // With Valkey up, the previous shard does evaluate it during the hand-off interval.
    expect((await tickAt(runner(), 0)).evaluated).toBe(1);
    expect(await alerts(t)).toHaveLength(1);
  });
});
