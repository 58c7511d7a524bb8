/**
 * The fail-open / fail-closed policy of one tenant's pipeline, with in-memory stand-ins for
 * PostgreSQL and Valkey (the real services are exercised by test/integration/evaluator-*.test.ts).
 */
import { describe, expect, it } from "vitest";
import { isPostgresOutage } from "../../../runtime/postgresOutage.ts";
import { ruleRow, T0 } from "../rules/fixtures.ts";
import { emptySnapshot } from "../state/tenantSnapshot.ts";
import { type AlertWrites, NO_MAINTENANCE } from "../store/alertWrites.ts";
import type { EvaluationCommit, EvaluatorStore, TenantData } from "../store/pgStore.ts";
import { CircuitBreaker } from "./circuitBreaker.ts";
import { ManualClock } from "./clock.ts";
import type { EvaluationRecord } from "./evaluationRecord.ts";
import type { EvaluatorFaults } from "./evaluatorFaults.ts";
import { DependencyUnavailableError, isValkeyOutage } from "./outages.ts";
import { leaseTtlMs, type PipelineContext, runTenantPipeline, type StateGateway } from "./tenantPipeline.ts";

const windowRow = ruleRow({
  id: "w1",
  tenant_id: "t1",
  rule_type: "window",
  window_seconds: 300,
  min_count: 1,
});
const thresholdRow = ruleRow({ id: "r1", tenant_id: "t1" });

const FENCE = { seq: 4, judged: "100:104:101", evalMs: T0 - 60_000, readSnapshot: "120:121:" };

const data = (rows: Record<string, unknown>[] = [thresholdRow, windowRow]): TenantData => ({
  fence: FENCE,
  ruleRows: rows,
  deviceIds: ["d1"],
  readings: () => [],
  readingCount: 0,
  maintenance: NO_MAINTENANCE,
  openPairs: new Set(),
});
const readings = [{ deviceId: "d1", metric: "temp", ts: T0 - 1000, value: 42 }];

type LoadMode = "ok" | "conflict" | "outage" | "stale";

function harness(opts: { load?: LoadMode; write?: "ok" | "outage" | "defect" | "refused" } = {}) {
  const clock = new ManualClock(T0);
  const calls = {
    released: 0,
    stored: [] as { seq: number; delta: boolean }[],
    writes: [] as AlertWrites[],
    commits: [] as EvaluationCommit[],
    rebuilds: 0,
    forgotten: 0,
    records: [] as EvaluationRecord[],
    loads: 0,
  };
  const state: StateGateway = {
    async loadTenantState(_plan, fence) {
      calls.loads++;
      if (opts.load === "outage") throw new Error("Command timed out");
      if (opts.load === "conflict") return { kind: "held", holder: "other" };
      if (opts.load === "stale") return { kind: "stale", stored: fence.seq - 1 };
      const snapshot = emptySnapshot();
      snapshot.seq = fence.seq;
      snapshot.at = fence.evalMs;
      return { kind: "state", snapshot, source: "valkey" };
    },
    async storeTenantState(_plan, snapshot, delta) {
      calls.stored.push({ seq: snapshot.seq, delta: delta !== null });
      return { stored: true, full: delta === null };
    },
    async releaseTickLease() {
      calls.released++;
      return "released";
    },
    forget() {
      calls.forgotten++;
    },
  };
  const store: Pick<EvaluatorStore, "commitEvaluation"> = {
    async commitEvaluation(_t, writes, commit) {
      if (opts.write === "outage")
        throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      if (opts.write === "defect") throw Object.assign(new Error("violates check"), { code: "23514" });
      calls.commits.push(commit);
      if (opts.write === "refused") return { applied: false, opened: 0, updated: 0, resolved: 0, events: 0 };
      calls.writes.push(writes);
      return { applied: true, opened: writes.upserts.length, updated: 0, resolved: 0, events: 0 };
    },
  };
  const breaker = (isOutage: (e: unknown) => boolean) =>
    new CircuitBreaker({ name: "x", clock, failureThreshold: 3, cooldownMs: 1000, isOutage });
  const ctx: PipelineContext = {
    store: store as EvaluatorStore,
    state,
    rebuild: async () => {
      calls.rebuilds++;
      return emptySnapshot();
    },
    clock,
    breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
    token: "me",
    intervalMs: 60_000,
    onQuarantined: () => {},
    onValkeyFallback: () => {},
    onCommitProblem: () => {},
    onEvaluation: (r) => calls.records.push(r),
  };
  return { ctx, calls, clock };
}

const tick = { slot: Math.floor(T0 / 60_000), now: T0 };
const owned = { id: "t1", owned: true, handoff: false };
const ownedInHandoff = { id: "t1", owned: true, handoff: true };
const handedOff = { id: "t1", owned: false, handoff: true };

describe("runTenantPipeline", () => {
  it("evaluates, commits fence and alerts in one write, then stores the state as a delta", async () => {
    const h = harness();
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toMatchObject({
      kind: "evaluated",
      pairs: 2,
      degraded: false,
      stateSource: "valkey",
      seq: 5,
    });
    expect(h.calls.commits).toEqual([{ fence: FENCE, nowMs: T0, evaluator: "me" }]);
    expect(h.calls.writes).toHaveLength(1);
    expect(h.calls.stored).toEqual([{ seq: 5, delta: true }]);
    expect(h.calls.records.map((r) => [r.outcome, r.loadedSeq, r.readings.length])).toEqual([
      ["committed", 4, 1],
    ]);
  });

  it("a commit refused by the fence (a newer evaluation won) stores nothing and drops the copy", async () => {
    const h = harness({ write: "refused" });
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toEqual({ kind: "stale", loadedSeq: 4 });
    expect(h.calls.stored).toEqual([]);
    expect(h.calls.forgotten).toBeGreaterThan(0);
    expect(h.calls.records.map((r) => r.outcome)).toEqual(["refused"]);
  });

  it("Valkey holds another seq: the state is rebuilt from PostgreSQL and stored whole", async () => {
    const h = harness({ load: "stale" });
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toMatchObject({ kind: "evaluated", stateSource: "rebuilt", degraded: false });
    expect(h.calls.rebuilds).toBe(1);
    expect(h.calls.stored).toEqual([{ seq: 5, delta: false }]);
  });

  it("a lease held elsewhere (hand-off) is a conflict: nothing written", async () => {
    const h = harness({ load: "conflict" });
    const out = await runTenantPipeline(
      h.ctx,
      ownedInHandoff,
      data(),
      readings,
      tick,
      new AbortController().signal,
    );
    expect(out).toEqual({ kind: "conflict", holder: "other" });
    expect(h.calls.commits).toEqual([]);
  });

  it("Valkey down, owned tenant: evaluated on the state rebuilt from PostgreSQL, nothing stored", async () => {
    const h = harness({ load: "outage" });
    const out = await runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal);
    expect(out).toMatchObject({ kind: "evaluated", degraded: true, stateSource: "rebuilt" });
    expect(h.calls.rebuilds).toBe(1);
    // The window rule judged its reading on the rebuilt (empty) buffer: it fires like a healthy one.
    expect(h.calls.writes[0]!.upserts.map((u) => u.ruleId).sort()).toEqual(["r1", "w1"]);
    expect(h.calls.stored).toEqual([]);
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
    expect(h.calls.commits).toEqual([]);
    // The failed read may have taken the lease before failing: it is given back (compare-and-delete),
    // so the tenant's owner is not refused the slot.
    expect(h.calls.released).toBe(1);
  });

  it("a failed commit gives a hand-off lease back and reports PostgreSQL as unavailable", async () => {
    const h = harness({ write: "outage" });
    await expect(
      runTenantPipeline(h.ctx, ownedInHandoff, data(), readings, tick, new AbortController().signal),
    ).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(h.calls.released).toBe(1);
    expect(h.calls.stored).toEqual([]);
    expect(h.calls.records.map((r) => r.outcome)).toEqual(["failed"]);
  });

  it("a bad write is an error, not an outage", async () => {
    const h = harness({ write: "defect" });
    await expect(
      runTenantPipeline(h.ctx, owned, data(), readings, tick, new AbortController().signal),
    ).rejects.toThrow("violates check");
  });

  it("an aborted budget before the commit gives the lease back and writes nothing", async () => {
    const h = harness();
    const budget = new AbortController();
    budget.abort(new Error("over budget"));
    await expect(
      runTenantPipeline(h.ctx, ownedInHandoff, data(), readings, tick, budget.signal),
    ).rejects.toThrow("over budget");
    expect(h.calls.released).toBe(1);
    expect(h.calls.commits).toEqual([]);
  });

  it("a fault hook strikes after the state load and the lease; its throw gives the lease back", async () => {
    const h = harness();
    const seen: { tenantId: string; rules: string[]; released: number }[] = [];
    const faults: EvaluatorFaults = {
      async beforeEvaluate({ tenantId, rules }) {
        seen.push({ tenantId, rules: rules.map((r) => r.id), released: h.calls.released });
        throw new Error("test fault");
      },
    };
    await expect(
      runTenantPipeline(
        { ...h.ctx, faults },
        ownedInHandoff,
        data(),
        readings,
        tick,
        new AbortController().signal,
      ),
    ).rejects.toThrow("test fault");
    expect(seen).toEqual([{ tenantId: "t1", rules: ["r1", "w1"], released: 0 }]);
    expect(h.calls.released).toBe(1);
    expect(h.calls.commits).toEqual([]);
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

  it("a tenant over the pair limit is held back before its plan: no load, no lease, no commit (the fence stays)", async () => {
    const h = harness();
    const limits = { maxPairs: 2, maxReadings: 100 };
    // Two rules on d1, and a third device (unregistered, it sent a reading) for the unbound rule.
    const unbound = ruleRow({ id: "u1", tenant_id: "t1", device_id: null });
    const stray = { deviceId: "x9", metric: "temp", ts: T0 - 1000, value: 42 };
    const at = (rows: Record<string, unknown>[], rs = readings) =>
      runTenantPipeline(
        { ...h.ctx, limits },
        ownedInHandoff,
        data(rows),
        rs,
        tick,
        new AbortController().signal,
      );
    expect(await at([thresholdRow, windowRow])).toMatchObject({ kind: "evaluated", pairs: 2 });
    expect(h.calls.loads).toBe(1);
    // r1 on d1, plus u1 on d1 and on the unregistered x9: 3 pairs.
    expect(await at([thresholdRow, unbound], [...readings, stray])).toEqual({
      kind: "over_limit",
      exceeded: { limit: "pairs", cap: 2, count: 3 },
    });
    expect(h.calls.loads).toBe(1);
    expect(h.calls.commits).toHaveLength(1);
    expect(h.calls.stored).toHaveLength(1);
    expect(h.calls.released).toBe(0);
    expect(h.calls.records).toHaveLength(1);
  });

  it("the lease outlives the slot after the claimed one, also for an early claim", () => {
    expect(leaseTtlMs(10, 10 * 60_000 + 5000, 60_000)).toBe(2 * 60_000 - 5000);
    expect(leaseTtlMs(11, 10 * 60_000 + 30_000, 60_000)).toBe(150_000);
  });
});
