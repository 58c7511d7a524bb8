/**
 * Cooldowns in the real process: after a rule fires for a device, a new fire of it is held back for
 * `cooldown_seconds` even when its condition flaps (true → false → true) — counted from the
 * evaluator's own per-tenant evaluation log and metrics, not from alert rows, which the PostgreSQL
 * dedup would keep at one anyway. Once the cooldown has passed, the same flap fires again.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  createEvaluatorWorld,
  type EvaluatorProcess,
  type EvaluatorWorld,
  eventually,
  type LogLine,
  metricValue,
  startEvaluator,
} from "../support/evaluatorProcess.ts";
import { uniqueTenantId } from "../support/valkey.ts";

let world: EvaluatorWorld;
const processes: EvaluatorProcess[] = [];

beforeEach(async () => {
  world = await createEvaluatorWorld("cooldown");
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
  await world.destroy();
});

it("a rule that fired does not fire again within its cooldown, and does after it", async () => {
  const db = world.db.pool;
  const long = world.track(uniqueTenantId()); // cooldown 300 s: the re-fire is held back
  const short = world.track(uniqueTenantId()); // cooldown 2 s: the re-fire happens once it passed
  for (const [t, cooldown] of [
    [long, 300],
    [short, 2],
  ] as const) {
    await db.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ($1, $2, 0)", [
      t,
      world.shardSet,
    ]);
    await db.query("INSERT INTO devices (tenant_id, id) VALUES ($1, 'd1')", [t]);
    await db.query(
      `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, cooldown_seconds)
       VALUES ($1, 'hot', 'temp', 'threshold', '>', 30, $2)`,
      [t, cooldown],
    );
  }
  const p = startEvaluator(world.env(0, { TICK_INTERVAL_SECONDS: "1", ALLOWED_LATENESS_SECONDS: "0" }));
  processes.push(p);
  await p.waitForLog((l) => l.msg === "tick_done");

  const evaluationsOf = (t: string) =>
    p.logs.filter((l) => l.msg === "tenant_evaluated" && l["tenant"] === t);
  const sum = (lines: LogLine[], field: string) => lines.reduce((n, l) => n + (l[field] as number), 0);
  const insert = (t: string, value: number) =>
    db.query(
      "INSERT INTO telemetry (tenant_id, device_id, metric, ts, value) VALUES ($1, 'd1', 'temp', now(), $2)",
      [t, value],
    );
  /** Inserts a reading and waits until a tick has evaluated it. */
  const step = async (t: string, value: number) => {
    const before = evaluationsOf(t).length;
    await insert(t, value);
    await p.waitForLog(
      (l) =>
        l.msg === "tenant_evaluated" &&
        l["tenant"] === t &&
        (l["readings"] as number) > 0 &&
        evaluationsOf(t).indexOf(l) >= before,
      10_000,
    );
  };
  const rows = async (t: string) =>
    (await db.query("SELECT state, first_seen FROM alerts WHERE tenant_id = $1 ORDER BY id", [t])).rows as {
      state: string;
      first_seen: Date;
    }[];

  // Flap within the cooldown: fire, resolve, condition true again → held back.
  await step(long, 42);
  await step(long, 10);
  await step(long, 43);
  expect(sum(evaluationsOf(long), "fired")).toBe(1);
  expect(sum(evaluationsOf(long), "resolved")).toBe(1);
  expect(sum(evaluationsOf(long), "suppressedByCooldown")).toBe(1);
  expect((await rows(long)).map((r) => r.state)).toEqual(["resolved"]);
  // Still evaluated every tick meanwhile (so it can resolve); only the new fire is held back.
  expect(evaluationsOf(long).length).toBeGreaterThanOrEqual(3);

  // Flap after the cooldown: fire, resolve, wait until 2 s after the fire, true again → fires.
  await step(short, 42);
  await step(short, 10);
  const [first] = await rows(short);
  await eventually(
    async () => Date.now() > first!.first_seen.getTime() + 2500,
    10_000,
    "the cooldown to pass",
  );
  await step(short, 44);
  expect(sum(evaluationsOf(short), "fired")).toBe(2);
  expect(sum(evaluationsOf(short), "suppressedByCooldown")).toBe(0);
  expect((await rows(short)).map((r) => r.state)).toEqual(["resolved", "open"]);

  const metrics = (await p.get("/metrics")).body;
  expect(metricValue(metrics, "evaluator_alerts_total", { action: "fire" })).toBe(3);
  expect(metricValue(metrics, "evaluator_alerts_suppressed_total", { reason: "cooldown" })).toBe(1);
});
