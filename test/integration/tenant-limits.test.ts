/**
 * Tenant limits (`TENANT_MAX_PAIRS`, `TENANT_MAX_READINGS`) in a real tick, on the real PostgreSQL
 * and Valkey/Redis: a tenant over a limit is quarantined — not evaluated, counted by
 * `evaluator_tenants_over_limit_total{limit}`, logged `tenant_over_limit`, its fence unmoved —
 * while the other tenants of the shard are evaluated as usual; once the limit is raised, every
 * reading it held back is judged exactly once (the history checker, test/support/history.ts).
 */
import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createEvaluatorMetrics, type EvaluatorMetrics } from "../../evaluator/src/metrics.ts";
import { readRebuiltState } from "../../evaluator/src/state/rebuild.ts";
import { ValkeyState } from "../../evaluator/src/state/valkeyState.ts";
import { createPgStore } from "../../evaluator/src/store/pgStore.ts";
import { CircuitBreaker } from "../../evaluator/src/tick/circuitBreaker.ts";
import { isValkeyOutage } from "../../evaluator/src/tick/outages.ts";
import type { TenantLimits } from "../../evaluator/src/tick/tenantLimits.ts";
import { TickRunner, type TickSummary } from "../../evaluator/src/tick/tickRunner.ts";
import { systemClock } from "../../runtime/clock.ts";
import { isPostgresOutage } from "../../runtime/postgresOutage.ts";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import {
  type AlertRow,
  checkHistory,
  type ExpectedReading,
  formatViolations,
  HISTORY_ALERTS_SQL,
  HistoryRecorder,
} from "../support/history.ts";

const I = 60_000;
// Slot-aligned "now" of the test: ticks run at T0 + k·I.
const T0 = Math.floor(Date.now() / I) * I;

const fx = useEvaluatorFixture("limits");

interface Runner {
  readonly runner: TickRunner;
  readonly metrics: EvaluatorMetrics;
  /** Every log line, parsed. */
  readonly lines: Record<string, unknown>[];
}

function runner(limits: TenantLimits, history: HistoryRecorder, token: string): Runner {
  const breaker = (isOutage: (e: unknown) => boolean) =>
    new CircuitBreaker({ name: "x", clock: systemClock, failureThreshold: 1000, cooldownMs: 1000, isOutage });
  const lines: Record<string, unknown>[] = [];
  const metrics = createEvaluatorMetrics(new Registry());
  const r = new TickRunner({
    settings: {
      shardSet: fx.shardSet,
      shardIndex: 0,
      intervalMs: I,
      tenantBudgetMs: 10_000,
      concurrency: 4,
      tenantLimits: limits,
    },
    store: createPgStore(fx.pool),
    state: new ValkeyState(fx.valkey()),
    rebuild: (plan, fence, wallNow) => readRebuiltState(fx.pool, plan, fence, wallNow),
    clock: systemClock,
    log: pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) }),
    metrics,
    breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
    token,
    onEvaluation: history.record,
  });
  return { runner: r, metrics, lines };
}

/** Runs the tick of slot T0/I + k at T0 + k·I. */
function tickAt(r: Runner, k: number): Promise<TickSummary> {
  return r.runner.runTick({ slot: T0 / I + k, now: T0 + k * I, trigger: "timer" });
}

async function overLimitCounts(m: EvaluatorMetrics): Promise<Record<string, number>> {
  const { values } = await m.tenantsOverLimit.get();
  return Object.fromEntries(values.map((v) => [String(v.labels["limit"]), v.value]));
}

/** The tenants' fences (seq, judged-through snapshot, tick time), by tenant id. */
async function fences(ids: readonly string[]): Promise<Map<string, unknown>> {
  const { rows } = await fx.pool.query<{ tenant_id: string }>(
    "SELECT tenant_id, seq, judged::text AS judged, eval_ms FROM tenant_fences WHERE tenant_id = ANY ($1::text[])",
    [ids],
  );
  return new Map(rows.map((r) => [r.tenant_id, r]));
}

describe("tenant limits in a tick", () => {
  it("quarantines a tenant over the pairs or readings limit alone, and judges its readings once the limit is raised", async () => {
    // Two unbound rules: a tenant's pairs are 2 × (its devices + the unregistered ones that send).
    const rules = [
      {
        id: "hot",
        rule_type: "threshold",
        device_id: null,
        operator: ">",
        threshold: 30,
        cooldown_seconds: 0,
      },
      {
        id: "win",
        rule_type: "window",
        device_id: null,
        operator: ">",
        threshold: 30,
        window_seconds: 300,
        min_count: 2,
        cooldown_seconds: 0,
      },
    ] as const;
    const normals = await fx.tenants(2, { devices: ["d1", "d2"], rules });
    const pairsTenant = await fx.tenant({ devices: ["d1", "d2", "d3", "d4"], rules });
    const readingsTenant = await fx.tenant({ devices: ["d1"], rules });
    const all = [...normals, pairsTenant, readingsTenant];
    const limits: TenantLimits = { maxPairs: 10, maxReadings: 5 };

    const expected: ExpectedReading[] = [];
    const reading = async (tenantId: string, deviceId: string, s: number, value: number) => {
      await fx.reading(tenantId, value, { device: deviceId, atMs: T0 + s * 1000 });
      expected.push({ tenantId, deviceId, metric: "temp", ts: T0 + s * 1000, value });
    };
    const history = new HistoryRecorder();
    const limited = runner(limits, history, "evaluator-limited");

    // Tick 0: every tenant under both limits (8 pairs, 3 readings at most).
    for (const t of normals) await reading(t, "d1", -10, 42);
    await reading(pairsTenant, "d1", -20, 40);
    await reading(pairsTenant, "d2", -10, 20);
    for (const s of [-30, -20, -10]) await reading(readingsTenant, "d1", s, 35);
    expect(await tickAt(limited, 0)).toMatchObject({ evaluated: 4, overLimit: 0, failed: 0 });
    const fencesBefore = await fences([pairsTenant, readingsTenant]);
    expect([...fencesBefore.values()]).toMatchObject([{ seq: "1" }, { seq: "1" }]);

    // Ticks 1 and 2: two unregistered devices make the first 2 × (4 + 2) = 12 pairs (4 readings,
    // unjudged at tick 2 still); the second receives 7 readings a tick. The others go on as usual.
    await reading(pairsTenant, "x1", 30, 45);
    await reading(pairsTenant, "x1", 40, 48);
    await reading(pairsTenant, "x2", 40, 46);
    await reading(pairsTenant, "d3", 50, 47);
    for (let k = 1; k <= 2; k++) {
      for (const t of normals) await reading(t, "d1", 60 * k - 10, k === 1 ? 20 : 50);
      for (let i = 0; i < 7; i++) await reading(readingsTenant, "d1", 60 * k - 50 + 5 * i, 31 + i);
      const evaluatedBefore = history.records.length;
      const summary = await tickAt(limited, k);
      expect(summary).toMatchObject({ evaluated: 2, overLimit: 2, failed: 0, backlog: 0 });
      // Only the normal tenants were evaluated.
      expect(new Set(history.records.slice(evaluatedBefore).map((r) => r.tenantId))).toEqual(
        new Set(normals),
      );
      expect(await overLimitCounts(limited.metrics)).toEqual({ pairs: k, readings: k });
      // The quarantined tenants' fences did not move: their readings stay unjudged.
      expect(await fences([pairsTenant, readingsTenant])).toEqual(fencesBefore);
    }
    const warned = limited.lines.filter((l) => l["msg"] === "tenant_over_limit");
    expect(warned).toHaveLength(4);
    for (const line of warned) expect(line["level"]).toBe(40);
    // Pairs counted exactly; readings counted up to the limit + 1 (no more are read).
    expect(warned.filter((l) => l["tenant"] === pairsTenant)).toMatchObject([
      { limit: "pairs", cap: 10, count: 12, slot: T0 / I + 1 },
      { limit: "pairs", cap: 10, count: 12, slot: T0 / I + 2 },
    ]);
    expect(warned.filter((l) => l["tenant"] === readingsTenant)).toMatchObject([
      { limit: "readings", cap: 5, count: 6 },
      { limit: "readings", cap: 5, count: 6 },
    ]);
    // The normal tenants alerted as usual: fired at tick 0, resolved at 1, fired again at 2.
    const { rows } = await fx.pool.query<{ tenant_id: string; rule_id: string; state: string }>(
      "SELECT tenant_id, rule_id, state FROM alerts WHERE tenant_id = ANY ($1::text[]) AND rule_id = 'hot' ORDER BY id",
      [normals],
    );
    for (const t of normals) {
      expect(rows.filter((r) => r.tenant_id === t).map((r) => r.state)).toEqual(["resolved", "open"]);
    }

    // The limits raised (a new evaluator with larger ones): every tenant is evaluated, and the
    // quarantined ones judge all the readings they held back, once.
    const raised = runner({ maxPairs: 1_000, maxReadings: 1_000 }, history, "evaluator-raised");
    // Pairs: 2 × 2 per normal tenant, 2 × (4 + 2) of the first (its unregistered devices' pairs are
    // evaluated, though alerts are written for registered devices only), 2 × 1 of the second.
    expect(await tickAt(raised, 3)).toMatchObject({
      evaluated: 4,
      rules: 8 + 12 + 2,
      overLimit: 0,
      failed: 0,
    });
    expect(await overLimitCounts(raised.metrics)).toEqual({ pairs: 0, readings: 0 });
    const caughtUp = history.records.filter(
      (r) => r.now === T0 + 3 * I && (r.tenantId === pairsTenant || r.tenantId === readingsTenant),
    );
    expect(caughtUp.map((r) => [r.tenantId, r.outcome, r.loadedSeq, r.readings.length])).toEqual(
      expect.arrayContaining([
        [pairsTenant, "committed", 1, 4],
        [readingsTenant, "committed", 1, 14],
      ]),
    );
    // Another tick: nothing left over, nothing judged twice.
    await tickAt(raised, 4);

    const alerts = (await fx.pool.query<AlertRow>(HISTORY_ALERTS_SQL, [all])).rows;
    expect(
      alerts.filter((a) => a.tenant_id === pairsTenant).map((a) => `${a.rule_id}/${a.device_id}`),
    ).toEqual(["hot/d1", "hot/d3"]);
    const result = checkHistory({
      records: history.records,
      expectedReadings: expected,
      alerts,
      tenants: all,
    });
    expect(result.violations, formatViolations(result.violations)).toEqual([]);
    expect(result.summary.readings).toEqual({ expected: expected.length, judged: expected.length });
  });
});
