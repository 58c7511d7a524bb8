/**
 * Tenant isolation in the real process: in a tick of 50 tenants, one tenant whose rule crashes its
 * evaluation (test fault EVALUATOR_TEST_POISON_RULE), one that is slower than the per-tenant budget
 * (EVALUATOR_TEST_DELAY_TENANT) and one with a malformed rule row do not keep the other tenants —
 * nor the malformed tenant's valid rule — from being evaluated and alerted in that same tick.
 */
import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually, metricValue } from "../support/evaluatorProcess.ts";

const fx = useEvaluatorFixture("isolation");

it("a poisoned rule, a slow tenant and a malformed rule leave the other tenants of the tick untouched", async () => {
  const poisonRule = `poison-${randomUUID()}`;
  const hot = { rule_type: "threshold", operator: ">", threshold: 30 } as const;
  // The poisoned tenant has only the poisoned rule; the 49 others have `hot`.
  const poisoned = await fx.tenant({ rules: [{ id: poisonRule, ...hot }] });
  const tenants = [poisoned, ...(await fx.tenants(49, { rules: [{ id: "hot", ...hot }] }))];
  const [, slow, malformed] = tenants as [string, string, string];
  // Accepted by the schema (params is any object), refused by parseRule: quarantined alone.
  await fx.rule(malformed, {
    id: "broken",
    rule_type: "pattern",
    window_seconds: 60,
    params: { kind: "sideways" },
  });
  await fx.reading(tenants, 42);

  const p = fx.start({
    TICK_INTERVAL_SECONDS: "2",
    TENANT_BUDGET_MS: "500",
    CONCURRENCY: "4",
    EVALUATOR_TEST_POISON_RULE: poisonRule,
    EVALUATOR_TEST_DELAY_TENANT: `${slow}:5000`,
  });

  const done = await p.waitForLog((l) => l.msg === "tick_done" && (l["tenants"] as number) === 50);
  expect(done).toMatchObject({ ok: true, tenants: 50, evaluated: 48, failed: 2, alerts: 48 });

  const { rows } = await fx.pool.query<{ tenant_id: string; rule_id: string; state: string }>(
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
    const { rows } = await fx.pool.query<{ tenant_id: string; seq: string }>(
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
