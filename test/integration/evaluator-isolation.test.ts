/**
 * Tenant isolation in the real process: in a tick of 50 tenants, one tenant whose rule crashes its
 * evaluation (test fault EVALUATOR_TEST_POISON_RULE), one that is slower than the per-tenant budget
 * (EVALUATOR_TEST_DELAY_TENANT) and one with a malformed rule row do not keep the other tenants —
 * nor the malformed tenant's valid rule — from being evaluated and alerted in that same tick.
 */
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeEach, expect, it } from "vitest";
import {
  createEvaluatorWorld,
  type EvaluatorProcess,
  type EvaluatorWorld,
  eventually,
  metricValue,
  startEvaluator,
} from "../support/evaluatorProcess.ts";
import { connectValkey, uniqueTenantId } from "../support/valkey.ts";

let world: EvaluatorWorld;
const processes: EvaluatorProcess[] = [];
const valkey = connectValkey();

beforeEach(async () => {
  world = await createEvaluatorWorld("isolation");
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
  await world.destroy();
});

afterAll(() => valkey.disconnect());

it("a poisoned rule, a slow tenant and a malformed rule leave the other tenants of the tick untouched", async () => {
  const db = world.db.pool;
  const tenants = Array.from({ length: 50 }, () => world.track(uniqueTenantId()));
  const [poisoned, slow, malformed] = tenants as [string, string, string];
  const poisonRule = `poison-${randomUUID()}`;
  await db.query(`INSERT INTO tenants (id, shard_set, shard_index) SELECT unnest($1::text[]), $2, 0`, [
    tenants,
    world.shardSet,
  ]);
  await db.query(`INSERT INTO devices (tenant_id, id) SELECT unnest($1::text[]), 'd1'`, [tenants]);
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold)
     SELECT t, CASE WHEN t = $2 THEN $3 ELSE 'hot' END, 'temp', 'threshold', '>', 30 FROM unnest($1::text[]) AS t`,
    [tenants, poisoned, poisonRule],
  );
  // Accepted by the schema (params is any object), refused by parseRule: quarantined alone.
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, window_seconds, params)
     VALUES ($1, 'broken', 'temp', 'pattern', 60, '{"kind": "sideways"}')`,
    [malformed],
  );
  await db.query(
    `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value) SELECT unnest($1::text[]), 'd1', 'temp', now(), 42`,
    [tenants],
  );

  const p = startEvaluator(
    world.env(0, {
      TICK_INTERVAL_SECONDS: "2",
      TENANT_BUDGET_MS: "500",
      CONCURRENCY: "4",
      EVALUATOR_TEST_POISON_RULE: poisonRule,
      EVALUATOR_TEST_DELAY_TENANT: `${slow}:5000`,
    }),
  );
  processes.push(p);

  const done = await p.waitForLog((l) => l.msg === "tick_done" && (l["tenants"] as number) === 50);
  expect(done).toMatchObject({ ok: true, tenants: 50, evaluated: 48, failed: 2, alerts: 48 });

  const { rows } = await db.query<{ tenant_id: string; rule_id: string; state: string }>(
    "SELECT tenant_id, rule_id, state FROM alerts",
  );
  const alerted = new Map(rows.map((r) => [r.tenant_id, r]));
  for (const t of tenants.slice(1)) {
    if (t === slow) continue;
    expect(alerted.get(t), `tenant ${t}`).toMatchObject({ rule_id: "hot", state: "open" });
  }
  expect(alerted.has(poisoned)).toBe(false);
  expect(alerted.has(slow)).toBe(false);

  expect(p.logs.find((l) => l.msg === "tenant_failed" && l["tenant"] === poisoned)).toMatchObject({
    reason: "error",
    err: expect.stringContaining(poisonRule),
  });
  expect(p.logs.find((l) => l.msg === "tenant_over_budget" && l["tenant"] === slow)).toMatchObject({
    budgetMs: 500,
  });
  expect(p.logs.find((l) => l.msg === "rule_quarantined")).toMatchObject({
    tenant: malformed,
    rule: "broken",
    reason: expect.stringContaining("params.kind"),
  });

  const metrics = await eventually(async () => {
    const text = (await p.get("/metrics")).body;
    return metricValue(text, "evaluator_tenant_failures_total", { reason: "over_budget" }) >= 1 ? text : null;
  });
  expect(metricValue(metrics, "evaluator_tenant_failures_total", { reason: "error" })).toBeGreaterThanOrEqual(
    1,
  );
  expect(metricValue(metrics, "evaluator_rules_quarantined_total")).toBeGreaterThanOrEqual(1);
  expect(metricValue(metrics, "evaluator_tenants_evaluated_total")).toBeGreaterThanOrEqual(48);

  // The poisoned and the slow tenant committed nothing: their fence never moved, so the readings
  // they were given are still unjudged for the next evaluation; the malformed rule's tenant (its
  // good rules) was evaluated and committed.
  const fences = async () => {
    const { rows } = await world.db.pool.query<{ tenant_id: string; seq: string }>(
      "SELECT tenant_id, seq FROM tenant_fences WHERE tenant_id = ANY ($1::text[])",
      [[slow, poisoned, malformed]],
    );
    return new Map(rows.map((r) => [r.tenant_id, Number(r.seq)]));
  };
  const seqs = await fences();
  expect(seqs.has(slow)).toBe(false);
  expect(seqs.has(poisoned)).toBe(false);
  expect(seqs.get(malformed)).toBeGreaterThanOrEqual(1);
  // The slow tenant is tried again in the next tick (and is still slow).
  await p.waitForLog(
    (l) => l.msg === "tenant_over_budget" && l["tenant"] === slow && l["slot"] !== done["slot"],
    10_000,
  );
});
