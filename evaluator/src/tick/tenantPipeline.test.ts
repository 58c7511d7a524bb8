/**
 * The fail-open / fail-closed policy of one tenant's pipeline, with in-memory stand-ins for
 * PostgreSQL and Valkey (the real services are exercised by test/integration/evaluator-*.test.ts).
 */
import { describe, expect, it } from "vitest";
import { ruleRow, T0 } from "../rules/fixtures.ts";
import { INACTIVE } from "../rules/lifecycle.ts";
import type { PairState } from "../rules/planTenant.ts";
import { NO_MAINTENANCE } from "../store/alertWrites.ts";
import type { EvaluatorStore, TenantData } from "../store/pgStore.ts";
import { CircuitBreaker } from "./circuitBreaker.ts";
import { ManualClock } from "./clock.ts";
import { DependencyUnavailableError, isPostgresOutage, isValkeyOutage } from "./outages.ts";
import { leaseTtlMs, type PipelineContext, runTenantPipeline, type StateGateway } from "./tenantPipeline.ts";

const windowRow = ruleRow({
  id: "w1",
  tenant_id: "t1",
  rule_type: "window",
  window_seconds: 300,
  min_count: 1,
});
const thresholdRow = ruleRow({ id: "r1", tenant_id: "t1" });

const data = (rows: Record<string, unknown>[] = [thresholdRow, windowRow]): TenantData => ({
  ruleRows: rows,
  deviceIds: ["d1"],
  readings: () => [],
  maintenance: NO_MAINTENANCE,
  openPairs: new Set(),
});
const readings = [{ deviceId: "d1", metric: "temp", ts: T0 - 1000, value: 42 }];

function harness(opts: { load?: "ok" | "conflict" | "outage"; write?: "ok" | "outage" | "defect" } = {}) {
  const clock = new ManualClock(T0);
  const calls = { released: 0, committed: 0, writes: [] as unknown[] };
  const state: StateGateway = {
    async loadTenantState(plan) {
      if (opts.load === "outage") throw new Error("Command timed out");
      if (opts.load === "conflict") return { acquired: false, holder: "other" };
      const pairs = new Map<string, PairState>();
      for (const p of plan.pairs) {
        pairs.set(p.key, {
          buffer: p.window ? p.readings.map((r) => ({ ts: r.ts, value: r.value })) : null,
          cooldownRemainingMs: 0,
          anomaly: null,
          lastSeen: null,
          alert: INACTIVE,
        });
      }
      return { acquired: true, state: { pairs } };
    },
    async commitTenantState(_t, updates) {
      calls.committed += updates.length;
      return { applied: true, written: updates.length };
    },
    async releaseTickLease() {
      calls.released++;
      return "released";
    },
  };
  const store: Pick<EvaluatorStore, "writeAlerts"> = {
    async writeAlerts(_t, writes) {
      if (opts.write === "outage")
        throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      if (opts.write === "defect") throw Object.assign(new Error("violates check"), { code: "23514" });
      calls.writes.push(writes);
      return { opened: writes.upserts.length, updated: 0, resolved: 0 };
    },
  };
  const breaker = (isOutage: (e: unknown) => boolean) =>
    new CircuitBreaker({ name: "x", clock, failureThreshold: 3, cooldownMs: 1000, isOutage });
  const ctx: PipelineContext = {
    store: store as EvaluatorStore,
    state,
    clock,
    breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
    token: "me",
    intervalMs: 60_000,
    testFaults: { delayTenant: null, poisonRuleId: null },
    onQuarantined: () => {},
    onValkeyFallback: () => {},
    onCommitProblem: () => {},
  };
  return { ctx, calls, clock };
}

const tick = { slot: Math.floor(T0 / 60_000), now: T0 };
const owned = { id: "t1", owned: true };
const handedOff = { id: "t1", owned: false };

describe("runTenantPipeline", () => {
  it("evaluates, writes the alerts, then commits the state", async () => {
    const h = harness();
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toMatchObject({ kind: "evaluated", pairs: 2, degraded: false });
    expect(h.calls.writes).toHaveLength(1);
    expect(h.calls.committed).toBeGreaterThan(0);
  });

  it("a lease held elsewhere is a conflict: nothing written", async () => {
    const h = harness({ load: "conflict" });
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toEqual({ kind: "conflict", holder: "other" });
    expect(h.calls.writes).toEqual([]);
  });

  it("Valkey down, owned tenant: fail-open — threshold alerts written, windows unknown, no commit", async () => {
    const h = harness({ load: "outage" });
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toMatchObject({ kind: "evaluated", degraded: true });
    const upserts = (h.calls.writes[0] as { upserts: { ruleId: string }[] }).upserts;
    expect(upserts.map((u) => u.ruleId)).toEqual(["r1"]); // the window rule did not fire
    expect(h.calls.committed).toBe(0);
  });

  it("Valkey down, tenant handed off: fail-closed — skipped, nothing written", async () => {
    const h = harness({ load: "outage" });
    const out = await runTenantPipeline(
      h.ctx,
      handedOff,
      data(),
      readings,
      tick,
      new AbortController().signal,
    );
    expect(out.kind).toBe("skipped");
    expect(h.calls.writes).toEqual([]);
    // The failed load may have taken the lease before failing: it is given back (compare-and-delete),
    // so the tenant's owner is not refused the slot.
    expect(h.calls.released).toBe(1);
  });

  it("a failed alert write gives the lease back and reports PostgreSQL as unavailable", async () => {
    const h = harness({ write: "outage" });
    await expect(
      runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal),
    ).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(h.calls.released).toBe(1);
    expect(h.calls.committed).toBe(0);
  });

  it("a bad write is an error, not an outage", async () => {
    const h = harness({ write: "defect" });
    await expect(
      runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal),
    ).rejects.toThrow("violates check");
  });

  it("an aborted budget before the write gives the lease back and writes nothing", async () => {
    const h = harness();
    const budget = new AbortController();
    budget.abort(new Error("over budget"));
    await expect(runTenantPipeline(h.ctx, owned, data(), readings, tick, budget.signal)).rejects.toThrow(
      "over budget",
    );
    expect(h.calls.released).toBe(1);
    expect(h.calls.writes).toEqual([]);
  });

  it("quarantines a malformed rule alone", async () => {
    const h = harness();
    const quarantined: (string | null)[] = [];
    const ctx = {
      ...h.ctx,
      onQuarantined: (_t: string, r: { ruleId: string | null }) => quarantined.push(r.ruleId),
    };
    const bad = ruleRow({ id: "bad", tenant_id: "t1", rule_type: "anomaly", params: { k: -1 } });
    const out = await runTenantPipeline(
      ctx,
      owned,
      data([thresholdRow, bad]),
      readings,
      tick,
      new AbortController().signal,
    );
    expect(quarantined).toEqual(["bad"]);
    expect(out).toMatchObject({ kind: "evaluated", pairs: 1 });
  });

  it("the lease outlives the slot after the claimed one, also for an early claim", () => {
    expect(leaseTtlMs(10, 10 * 60_000 + 5000, 60_000)).toBe(2 * 60_000 - 5000);
    expect(leaseTtlMs(11, 10 * 60_000 + 30_000, 60_000)).toBe(150_000);
  });
});
