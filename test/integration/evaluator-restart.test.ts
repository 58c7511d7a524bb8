/**
 * Window state lives in Valkey, not in the process: a window rule that has seen two of its three
 * qualifying readings keeps them across a restart of the evaluator, and the next qualifying
 * reading after the restart fires it. The first two readings are deleted from telemetry before the
 * restart, so the new process can only know them from Valkey.
 */
import { afterAll, afterEach, beforeEach, expect, it } from "vitest";
import { windowBufferKey } from "../../evaluator/src/state/keys.ts";
import {
  createEvaluatorWorld,
  type EvaluatorProcess,
  type EvaluatorWorld,
  eventually,
  startEvaluator,
} from "../support/evaluatorProcess.ts";
import { connectValkey, uniqueTenantId, windowBufferLength } from "../support/valkey.ts";

let world: EvaluatorWorld;
const processes: EvaluatorProcess[] = [];
const valkey = connectValkey();

beforeEach(async () => {
  world = await createEvaluatorWorld("restart");
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
  await world.destroy();
});

afterAll(() => valkey.disconnect());

it("a window rule keeps accumulating across an evaluator restart and fires on the next qualifying reading", async () => {
  const t = world.track(uniqueTenantId());
  const db = world.db.pool;
  await db.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ($1, $2, 0)", [t, world.shardSet]);
  await db.query("INSERT INTO devices (tenant_id, id) VALUES ($1, 'd1')", [t]);
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, window_seconds, min_count)
     VALUES ($1, 'w', 'temp', 'window', '>', 50, 600, 3)`,
    [t],
  );
  const buffer = windowBufferKey(t, "w", "d1");
  const env = world.env(0, { TICK_INTERVAL_SECONDS: "1", ALLOWED_LATENESS_SECONDS: "0" });
  const insert = (value: number) =>
    db.query(
      "INSERT INTO telemetry (tenant_id, device_id, metric, ts, value) VALUES ($1, 'd1', 'temp', now(), $2)",
      [t, value],
    );

  const first = startEvaluator(env);
  processes.push(first);
  await first.waitForLog((l) => l.msg === "tick_done");
  await insert(60);
  await eventually(
    async () => (await windowBufferLength(valkey, buffer)) === 1,
    10_000,
    "first reading in the window buffer",
  );
  await insert(70);
  await eventually(
    async () => (await windowBufferLength(valkey, buffer)) === 2,
    10_000,
    "second reading in the window buffer",
  );
  expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });

  // Only Valkey remembers them now; and two of three do not fire.
  await db.query("DELETE FROM telemetry WHERE tenant_id = $1", [t]);
  expect((await db.query("SELECT count(*)::int AS n FROM alerts WHERE tenant_id = $1", [t])).rows[0].n).toBe(
    0,
  );

  const second = startEvaluator(env);
  processes.push(second);
  await second.waitForLog((l) => l.msg === "tick_done");
  expect((await db.query("SELECT count(*)::int AS n FROM alerts WHERE tenant_id = $1", [t])).rows[0].n).toBe(
    0,
  );
  await insert(80);
  const alert = await eventually(
    async () =>
      (await db.query("SELECT rule_id, device_id, state, value FROM alerts WHERE tenant_id = $1", [t]))
        .rows[0],
    10_000,
    "the window alert",
  );
  // value = the matching count: all three readings, two of them from before the restart.
  expect(alert).toEqual({ rule_id: "w", device_id: "d1", state: "open", value: 3 });
  expect(await windowBufferLength(valkey, buffer)).toBe(3);
});
