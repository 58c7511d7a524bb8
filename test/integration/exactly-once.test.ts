/**
 * Exactly-once evaluation, proven by what was judged: several evaluators (shard pods) on the real
 * PostgreSQL, Valkey/Redis and evaluator code, driven through schedules of ticks, hand-offs,
 * overruns, kills, restarts with another interval, Valkey flushes and outages, and late-committing
 * ingests. Every evaluation is recorded and the history checker (test/support/history.ts) asserts
 * the invariants over the whole run: (a) each reading judged once by each rule, none skipped;
 * (b) the committed evaluations of a tenant form one chain, a stale one writes nothing; (d) the
 * alerts table is exactly what one healthy evaluator would have written judging the same readings
 * in the same order. The five reproductions of the review come first as fixed schedules, then
 * generated ones (EO_INTERLEAVING_RUNS, default 200).
 */
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tenantStateField, tenantStateKey } from "../../evaluator/src/state/keys.ts";
import { decodeAnomalyStats } from "../../evaluator/src/state/valueEncoding.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { type AlertRow, checkHistory, formatViolations } from "../support/history.ts";
import {
  type InterleavingOptions,
  runAndCheck,
  runSchedule,
  type Step,
  scheduleStep,
} from "../support/interleavings.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { connectValkey } from "../support/valkey.ts";

const I = 60_000;
let db: TestDatabase;
let valkey: Redis;

beforeAll(async () => {
  db = await createTestDatabase("exactly_once");
  await migrateUp({ db: db.pool });
  valkey = connectValkey();
});

afterAll(async () => {
  valkey.disconnect();
  await db.drop();
});

const options = (shards: number[] = [0, 1]): InterleavingOptions => ({
  db: db.pool,
  dbUrl: db.url,
  valkey,
  tenants: 1,
  shards,
  intervalMs: I,
  budgetMs: 5_000,
});

const hotAlerts = (rows: readonly AlertRow[]) => rows.filter((r) => r.rule_id === "hot");
const ingest = (value: number, device = 0): Step => ({ kind: "ingest", tenant: 0, device, value });

describe("the five reproduced paths", () => {
  it("1. an early tick in a slot does not skip the next regular tick (no gap above the interval)", async () => {
    // Two ticks of one pod inside one slot (a NOTIFY tick, then the regular one), then the next
    // slot's: every one of them judges new readings once, and none is refused or skipped.
    const run = await runAndCheck(options([0]), [
      ingest(10),
      { kind: "tick", pod: 0 },
      { kind: "advance", ms: 15_000 },
      ingest(80),
      { kind: "tick", pod: 0 },
      { kind: "advance", ms: 45_000 },
      ingest(20),
      { kind: "tick", pod: 0 },
    ]);
    const committed = run.check.records.filter((r) => r.outcome === "committed");
    expect(committed.slice(0, 3).map((r) => r.readings.map((x) => x.value))).toEqual([[10], [80], [20]]);
    expect(committed.slice(0, 3).map((r) => r.slot - committed[0]!.slot)).toEqual([0, 0, 1]);
  });

  it("2. an overrun old owner judging slot s after the new owner judged s+1 cannot re-open a cleared alert", async () => {
    const run = await runAndCheck(options([0, 1]), [
      ingest(80),
      { kind: "tick", pod: 0 }, // shard 0 fires "hot" (80 > 70)
      { kind: "advance", ms: I },
      ingest(90),
      // The old owner's slot-s evaluation of the 90 hangs before its commit …
      { kind: "overrun", pod: 0 },
      { kind: "move", tenant: 0, shard: 1 },
      ingest(20),
      { kind: "advance", ms: I },
      // … the new owner judges the 90 and the 20: resolved …
      { kind: "tick", pod: 1 },
      // … and the old owner's late commit of slot s is refused: nothing re-opens.
      { kind: "release" },
    ]);
    const stale = run.check.records.filter((r) => r.outcome === "refused");
    expect(stale.map((r) => r.readings.map((x) => x.value))).toEqual([[90]]);
    // The new owner judged the 90 and the 20 together (the latest reading decides): resolved once.
    const hot = hotAlerts(run.check.alerts);
    expect(hot.map((r) => [r.state, r.occurrences])).toEqual([["resolved", 1]]);
  });

  it("3. without a lease (Valkey down) a second pod cannot duplicate an evaluation or skip a cooldown", async () => {
    // Two pods of shard 0 (a rollout's overlap); pod 1 has lost Valkey, so it takes no lease and
    // reads no cooldown from Valkey. It fires, pod 0 evaluates next: the 90 s cooldown holds.
    const run = await runAndCheck(options([0, 0]), [
      { kind: "valkey", pod: 1, up: false },
      ingest(80),
      { kind: "tick", pod: 1 },
      { kind: "tick", pod: 0 },
      ingest(10),
      { kind: "advance", ms: 20_000 },
      { kind: "tick", pod: 0 },
      ingest(85),
      { kind: "advance", ms: 20_000 },
      { kind: "tick", pod: 1 },
      { kind: "tick", pod: 0 },
    ]);
    // One incident, resolved by the 10; the 85 came within the cooldown: no second alert row.
    expect(hotAlerts(run.check.alerts).map((r) => [r.state, r.occurrences])).toEqual([["resolved", 1]]);
  });

  it("4. a restarted or new evaluator judges no reading its predecessor already judged", async () => {
    const run = await runAndCheck(options([0, 1]), [
      ingest(80),
      { kind: "tick", pod: 0 },
      ingest(85),
      { kind: "advance", ms: 10_000 },
      { kind: "tick", pod: 0 },
      { kind: "restart", pod: 0, intervalMs: I },
      { kind: "advance", ms: 50_000 },
      { kind: "tick", pod: 0 },
      { kind: "move", tenant: 0, shard: 1 },
      { kind: "advance", ms: I },
      { kind: "tick", pod: 1 },
      { kind: "tick", pod: 0 },
    ]);
    // One open alert, bumped once per reading above 70: the 80 opened it, the 85 bumped it; no
    // evaluation after the restart or the hand-off judged either again.
    expect(hotAlerts(run.check.alerts).map((r) => [r.state, r.occurrences])).toEqual([["open", 2]]);
  });

  it("5. a stale commit is never forced over the new owner's newer state", async () => {
    let stats: string | null = null;
    const inspect = async ([t]: readonly string[]) => {
      stats = await valkey.hget(tenantStateKey(t!), tenantStateField("anom", "d1", "anom"));
    };
    const run = await runAndCheck({ ...options([0, 1]), inspect }, [
      ...[50, 52, 51, 53].flatMap((v): Step[] => [
        ingest(v),
        { kind: "tick", pod: 0 },
        { kind: "advance", ms: I },
      ]),
      ingest(54),
      { kind: "overrun", pod: 0 },
      { kind: "move", tenant: 0, shard: 1 },
      ...[55, 56].flatMap((v): Step[] => [{ kind: "advance", ms: I }, ingest(v), { kind: "tick", pod: 1 }]),
      // The old owner's commit comes after it left the membership (its copy was dropped).
      { kind: "tick", pod: 0 },
      { kind: "release" },
    ]);
    expect(run.check.records.filter((r) => r.outcome === "refused")).toHaveLength(1);
    // The anomaly statistics in Valkey learned all seven readings once each, the last one last.
    const learned = decodeAnomalyStats(stats);
    const last = run.check.expectedReadings!.at(-1)!;
    expect([learned?.n, learned?.lastTs]).toEqual([7, last.ts]);
  });
});

describe("the hand-off between overlapping evaluators", () => {
  it("(c): ticking at the shards' offsets through two hand-offs, no tenant waits more than I + the largest offset", async () => {
    const slots = (n: number): Step[] => Array.from({ length: n }, () => ({ kind: "slot" }));
    const run = await runSchedule({ ...options([0, 1]), tenants: 2 }, [
      ...slots(2),
      { kind: "move", tenant: 0, shard: 1 },
      { kind: "move", tenant: 1, shard: 0 },
      ingest(75),
      ...slots(3),
      { kind: "move", tenant: 0, shard: 0 },
      ...slots(3),
    ]);
    const committed = run.check.records.filter((r) => r.outcome === "committed").map((r) => r.now);
    const result = checkHistory({
      ...run.check,
      maxGapMs: I + run.maxOffsetMs,
      upIntervals: [{ from: Math.min(...committed), to: Math.max(...committed) }],
    });
    expect(result.violations, formatViolations(result.violations)).toEqual([]);
    expect(result.summary.evaluations.committed).toBeGreaterThanOrEqual(2 * 8);
  });

  it("a second reshard within one interval (0 → 1 → 0) and an interval change renumbering slots", async () => {
    await runAndCheck(options([0, 1]), [
      ingest(80),
      { kind: "tick", pod: 0 },
      { kind: "move", tenant: 0, shard: 1 },
      { kind: "advance", ms: 10_000 },
      ingest(75, 1),
      { kind: "tick", pod: 1 },
      { kind: "move", tenant: 0, shard: 0 },
      { kind: "restart", pod: 1, intervalMs: 30_000 },
      ingest(60, 1),
      { kind: "tick", pod: 1 },
      { kind: "tick", pod: 0 },
      { kind: "advance", ms: 30_000 },
      { kind: "tick", pod: 1 },
      { kind: "tick", pod: 0 },
    ]);
  });
});

const step = scheduleStep(
  [I, I, 30_000],
  [
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("flush" as const), tenant: fc.nat(2) }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("valkey" as const), pod: fc.nat(2), up: fc.boolean() }),
    },
  ],
);

const RUNS = Number(process.env["EO_INTERLEAVING_RUNS"] ?? 200);

describe("generated interleavings", () => {
  it(`hold every invariant over ${RUNS} generated schedules (3 pods: shard 0, and shard 1 twice)`, {
    timeout: Math.max(300_000, RUNS * 10_000),
  }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), async (steps) => {
        await runAndCheck({ ...options([0, 1, 1]), tenants: 3 }, steps);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
  });
});
