/**
 * What the evaluator process serves and how it stops: /metrics passes `promtool check metrics` and
 * carries every contract metric labelled with shardset, namespace and shard; the probes; the log
 * contract; a clean exit 0 on SIGTERM and a forced one on a second SIGTERM; and, with Valkey
 * unreachable, not ready while still alerting for its own tenants (fail-open).
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually, metricValue, promtoolPath } from "../support/evaluatorProcess.ts";
import { freePort } from "../support/ports.ts";
import { promtoolCheck } from "../support/promtool.ts";

const fx = useEvaluatorFixture("metrics");

/** A tenant whose threshold rule fires on its one reading. */
async function hotTenant(): Promise<string> {
  const t = await fx.tenant({ rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 30 }] });
  await fx.reading(t, 42);
  return t;
}

const CONTRACT_METRICS = [
  "evaluator_tick_duration_seconds_bucket",
  "evaluator_queue_depth",
  "evaluator_tenants_evaluated_total",
  "evaluator_tenant_failures_total",
  "evaluator_rules_evaluated_total",
  "evaluator_alerts_total",
  "evaluator_tick_lease_conflicts_total",
  "evaluator_ticks_missed_total",
];

describe("evaluator process", () => {
  it("serves promtool-clean metrics with the contract names and labels, probes, and the log contract", async () => {
    expect(
      existsSync(promtoolPath()),
      `promtool not found at ${promtoolPath()} (run hack/toolchain.sh)`,
    ).toBe(true);
    await hotTenant();
    const p = fx.start({ TICK_INTERVAL_SECONDS: "1", LOG_LEVEL: "info" });
    await p.waitForLog((l) => l.msg === "tick_done" && (l["evaluated"] as number) === 1);

    const metrics = await p.get("/metrics");
    expect(metrics.status).toBe(200);
    const check = await promtoolCheck(metrics.body);
    expect(check.output).toBe("");
    expect(check.code).toBe(0);

    const [namespace, name] = fx.shardSet.split("/") as [string, string];
    for (const metric of CONTRACT_METRICS) {
      const line = metrics.body.split("\n").find((l) => l.startsWith(`${metric}{`));
      expect(line, metric).toBeDefined();
      expect(line).toContain(`shardset="${name}"`);
      expect(line).toContain(`namespace="${namespace}"`);
      expect(line).toContain(`shard="0"`);
    }
    expect(metricValue(metrics.body, "evaluator_tenants_evaluated_total")).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics.body, "evaluator_alerts_total", { action: "fire" })).toBe(1);
    expect(metricValue(metrics.body, "evaluator_queue_depth")).toBe(0);
    expect(metricValue(metrics.body, "evaluator_tick_interval_seconds")).toBe(1);

    expect(await p.get("/healthz")).toMatchObject({ status: 200 });
    expect(await p.get("/readyz")).toMatchObject({ status: 200 });

    expect(p.logs.find((l) => l.msg === "valkey_connected")).toBeDefined();
    expect(p.logs.find((l) => l.msg === "shard_config")).toMatchObject({
      SHARD_INDEX: 0,
      SHARD_COUNT: 1,
      epoch: 0,
    });
    expect(p.logs.find((l) => l.msg === "tick_start")).toMatchObject({ slot: expect.any(Number) });
    expect(p.logs.find((l) => l.msg === "tick_done" && l["evaluated"] === 1)).toMatchObject({
      tenants: 1,
      rules: 1,
      alerts: 1,
      durationMs: expect.any(Number),
    });
    // Connection strings are logged without their password (and the test URLs have none).
    expect(p.stdoutText()).not.toMatch(/postgres:\/\/[^@"]*:[^@"*]+@/);

    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    const order = ["shutdown_requested", "shutdown_drained", "evaluator_stopped"].map((m) =>
      p.logs.findIndex((l) => l.msg === m),
    );
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
  });

  it("the first SIGTERM drains: the running slow tenant is cut at its budget and commits nothing", async () => {
    const slow = await hotTenant();
    const other = await hotTenant();
    const p = fx.start({
      TICK_INTERVAL_SECONDS: "10",
      TENANT_BUDGET_MS: "1500",
      EVALUATOR_TEST_DELAY_TENANT: `${slow}:60000`,
    });
    await p.waitForLog((l) => l.msg === "tick_start");
    await p.waitForLog((l) => l.msg === "tenant_evaluated" && l["tenant"] === other);
    p.child.kill("SIGTERM");
    expect(await p.exited).toEqual({ code: 0, signal: null });
    const over = p.logs.findIndex((l) => l.msg === "tenant_over_budget" && l["tenant"] === slow);
    const drained = p.logs.findIndex((l) => l.msg === "shutdown_drained");
    expect(over).toBeGreaterThan(p.logs.findIndex((l) => l.msg === "shutdown_requested"));
    expect(drained).toBeGreaterThan(over);
    // The slow tenant's fence never moved (its readings stay unjudged for the next evaluator); the
    // other tenant's did.
    const { rows } = await fx.pool.query<{ tenant_id: string }>(
      "SELECT tenant_id FROM tenant_fences WHERE tenant_id = ANY ($1::text[])",
      [[slow, other]],
    );
    expect(rows.map((r) => r.tenant_id)).toEqual([other]);
  });

  it("a second SIGTERM forces the exit while draining", async () => {
    const slow = await hotTenant();
    const other = await hotTenant();
    const p = fx.start({
      TICK_INTERVAL_SECONDS: "10",
      TENANT_BUDGET_MS: "8000",
      EVALUATOR_TEST_DELAY_TENANT: `${slow}:7000`,
    });
    // Both tenants of the tick start together (one batch, concurrency 8), so once the other one is
    // evaluated the slow one is under way: the drain has a running tenant to wait for.
    await p.waitForLog((l) => l.msg === "tenant_evaluated" && l["tenant"] === other);
    p.child.kill("SIGTERM");
    await p.waitForLog((l) => l.msg === "shutdown_requested");
    // Still draining the slow tenant: the process answers, not ready, with the slow tenant still
    // in its queue (the gauge drops to 0 when the tenant finishes).
    await eventually(
      async () => {
        const [ready, metrics] = await Promise.all([p.get("/readyz"), p.get("/metrics")]);
        return ready.status === 503 && metricValue(metrics.body, "evaluator_queue_depth") === 1;
      },
      5_000,
      "the process draining the slow tenant after the first SIGTERM",
    );
    expect(p.logs.some((l) => l.msg === "shutdown_drained")).toBe(false);
    expect(p.child.exitCode).toBeNull();
    p.child.kill("SIGTERM");
    expect(await p.exited).toEqual({ code: 130, signal: null });
    expect(p.stderrText()).toContain("second SIGTERM");
    // Forced: the drain never completed and the slow tenant was never finished.
    expect(p.logs.some((l) => l.msg === "shutdown_drained")).toBe(false);
    expect(p.logs.some((l) => l["tenant"] === slow && /tenant_(evaluated|over_budget)/.test(l.msg))).toBe(
      false,
    );
  });

  it("with Valkey unreachable it is not ready, stays alive, and still alerts for its own tenants", async () => {
    const t = await hotTenant();
    const deadValkey = `redis://127.0.0.1:${await freePort()}/0`;
    const p = fx.start({ TICK_INTERVAL_SECONDS: "1", VALKEY_URL: deadValkey });
    await p.waitForLog((l) => l.msg === "valkey_fallback" && l["tenant"] === t, 20_000);
    const alert = await eventually(
      async () =>
        (await fx.pool.query("SELECT rule_id, state FROM alerts WHERE tenant_id = $1", [t])).rows[0],
    );
    expect(alert).toEqual({ rule_id: "hot", state: "open" });
    expect((await p.get("/readyz")).status).toBe(503);
    expect((await p.get("/healthz")).status).toBe(200);
    const metrics = (await p.get("/metrics")).body;
    expect(metricValue(metrics, "evaluator_tenants_degraded_total")).toBeGreaterThanOrEqual(1);
    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  });

  it("with PostgreSQL unreachable every tick fails cleanly, the breaker opens, and the process keeps running", async () => {
    const deadDb = `postgres://postgres@127.0.0.1:${await freePort()}/nothing`;
    const p = fx.start({ TICK_INTERVAL_SECONDS: "1", DATABASE_URL: deadDb, BREAKER_FAILURE_THRESHOLD: "2" });
    await p.waitForLog(
      (l) => l.msg === "circuit_breaker" && l["dependency"] === "postgres" && l["state"] === "open",
    );
    const failed = await p.waitForLog(
      (l) =>
        l.msg === "tick_failed" &&
        l["reason"] === "postgres_unavailable" &&
        /circuit breaker is open/.test(String(l["err"])),
    );
    expect(failed["slot"]).toEqual(expect.any(Number));
    // Every tick ends (tick_done ok=false) and the next one is scheduled.
    await p.waitForLog(
      (l) => l.msg === "tick_done" && l["ok"] === false && (l["slot"] as number) > (failed["slot"] as number),
    );
    const metrics = (await p.get("/metrics")).body;
    expect(metricValue(metrics, "evaluator_ticks_total", { result: "failed" })).toBeGreaterThanOrEqual(2);
    expect(metricValue(metrics, "evaluator_circuit_breaker_open", { dependency: "postgres" })).toBe(1);
    expect((await p.get("/readyz")).status).toBe(503);
    expect((await p.get("/healthz")).status).toBe(200);
    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  });
});
