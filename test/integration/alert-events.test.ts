/**
 * The alert-event outbox (`alert_events`, migration 000009) on the real PostgreSQL, Valkey/Redis and
 * evaluator code: every change of an alert's state appends exactly one event in the commit that
 * makes it, stamped with that evaluation's seq, and NOTIFYs `alert_events` when it commits; a stale
 * evaluation, a duplicate one and a hand-off between shards append nothing more. Proven by what was
 * judged: the history checker (test/support/history.ts) replays the committed evaluations on one
 * healthy evaluator and compares the events by (tenant, rule, device, kind, seq) and id, over fixed
 * schedules and generated interleavings (EO_EVENTS_RUNS, default 40) with escalations, cooldowns,
 * maintenance windows and Valkey flushes and outages during them. The generated interleavings of exactly-once.test.ts check the events too.
 */
import fc from "fast-check";
import type { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AlertWrites, alertFingerprint } from "../../evaluator/src/store/alertWrites.ts";
import { createPgStore, type EvaluatorStore } from "../../evaluator/src/store/pgStore.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { type AlertEventRow, checkHistory } from "../support/history.ts";
import {
  type InterleavingOptions,
  RULES,
  runAndCheck,
  type Step,
  scheduleStep,
} from "../support/interleavings.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { connectValkey } from "../support/valkey.ts";

const I = 60_000;
let db: TestDatabase;
let valkey: Redis;

beforeAll(async () => {
  db = await createTestDatabase("alert_events");
  await migrateUp({ db: db.pool });
  valkey = connectValkey();
});

afterAll(async () => {
  valkey.disconnect();
  await db.drop();
});

/** "hot" escalates from warning to critical once it has fired for 90 s. */
const HOT: Record<string, unknown> = {
  id: "hot",
  rule_type: "threshold",
  operator: ">",
  threshold: 70,
  severity: "warning",
  escalation: { after_seconds: 90, severity: "critical" },
};

/** "hot" without an escalation. */
const PLAIN: Record<string, unknown> = { id: "hot", rule_type: "threshold", operator: ">", threshold: 70 };

const options = (
  shards: number[],
  rules: readonly Record<string, unknown>[] = [HOT],
): InterleavingOptions => ({
  db: db.pool,
  dbUrl: db.url,
  valkey,
  tenants: 1,
  shards,
  intervalMs: I,
  budgetMs: 5_000,
  rules,
});

const ingest = (value: number, device = 0, tenant = 0): Step => ({ kind: "ingest", tenant, device, value });
const tick = (pod = 0): Step => ({ kind: "tick", pod });
const advance = (ms = I): Step => ({ kind: "advance", ms });

/** The events as (kind, severity, seq) of one rule and device. */
const story = (events: readonly AlertEventRow[], rule = "hot", device = "d1") =>
  events.filter((e) => e.rule_id === rule && e.device_id === device).map((e) => [e.kind, e.severity, e.seq]);

describe("one event per change of an alert's state", () => {
  it("fired, escalated and resolved, each once, stamped with the seq of the evaluation that made it", async () => {
    const run = await runAndCheck(options([0]), [
      ingest(80),
      tick(), // seq 1: fires (warning)
      advance(),
      ingest(85),
      tick(), // seq 2: still firing for 60 s: no event
      advance(),
      ingest(90),
      tick(), // seq 3: firing for 120 s ≥ 90 s: escalated to critical
      advance(),
      ingest(95),
      tick(), // seq 4: still firing: no event
      advance(),
      ingest(10),
      tick(), // seq 5: resolved
    ]);
    const events = run.check.alertEvents!;
    expect(story(events)).toEqual([
      ["fired", "warning", 1],
      ["escalated", "critical", 3],
      ["resolved", "critical", 5],
    ]);
    expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort((a, b) => a - b));
    // Each was appended by the committed evaluation of its seq, whose readings decided it.
    const committed = run.check.records.filter((r) => r.outcome === "committed");
    const bySeq = new Map(committed.map((r) => [r.loadedSeq + 1, r.readings.map((x) => x.value)]));
    expect(events.map((e) => bySeq.get(e.seq))).toEqual([[80], [90], [10]]);
  });

  it("a fire held back by a maintenance window is one suppressed event; the alert fires when the window ends", async () => {
    const run = await runAndCheck(options([0]), [
      { kind: "maintenance", tenant: 0, device: null, ms: 150_000 },
      ingest(80),
      tick(), // seq 1: the fire is held back: suppressed
      advance(),
      ingest(85),
      tick(), // seq 2: still firing, still held back: no event
      advance(),
      ingest(90),
      tick(), // seq 3: the same
      advance(),
      ingest(95),
      tick(), // seq 4: the window has ended: the alert opens (escalated already: it fired at seq 1)
      advance(),
      ingest(10),
      tick(), // seq 5: resolved
    ]);
    expect(story(run.check.alertEvents!)).toEqual([
      ["suppressed", "warning", 1],
      ["fired", "critical", 4],
      ["resolved", "critical", 5],
    ]);
  });
});

describe("a held-back fire, after Valkey lost its lifecycle", () => {
  const flush: Step = { kind: "flush", tenant: 0 };

  it("a flush mid-window rebuilds the lifecycle as firing: one suppressed event, then fired when the window ends", async () => {
    const run = await runAndCheck(options([0]), [
      { kind: "maintenance", tenant: 0, device: null, ms: 150_000 },
      ingest(80),
      tick(), // seq 1: suppressed
      advance(),
      flush,
      ingest(85),
      tick(), // seq 2: rebuilt from the suppression row: firing, still held back
      advance(),
      { kind: "valkey", pod: 0, up: false },
      ingest(90),
      tick(), // seq 3: Valkey down: rebuilt again, and nothing stored
      { kind: "valkey", pod: 0, up: true },
      advance(),
      ingest(95),
      tick(), // seq 4: the window has ended: the alert opens
      advance(),
      ingest(10),
      tick(), // seq 5: resolved
    ]);
    expect(story(run.check.alertEvents!)).toEqual([
      ["suppressed", "warning", 1],
      ["fired", "critical", 4],
      ["resolved", "critical", 5],
    ]);
    const { rows } = await db.pool.query<{ state: string; n: number }>(
      `SELECT state, count(*)::int AS n FROM alert_suppressions
        WHERE tenant_id = ANY ($1::text[]) GROUP BY state`,
      [run.check.tenants],
    );
    expect(rows).toEqual([{ state: "ended", n: 1 }]);
  });

  it("a condition that clears and holds again within the window is two suppressed events, flush or not", async () => {
    const run = await runAndCheck(options([0]), [
      { kind: "maintenance", tenant: 0, device: null, ms: 400_000 },
      ingest(80),
      tick(), // seq 1: suppressed
      advance(),
      flush,
      ingest(10),
      tick(), // seq 2: cleared (Valkey had lost the lifecycle: the rebuilt one resolves)
      advance(),
      flush,
      ingest(80),
      tick(), // seq 3: a new condition: suppressed again
    ]);
    expect(story(run.check.alertEvents!)).toEqual([
      ["suppressed", "warning", 1],
      ["suppressed", "warning", 3],
    ]);
  });
});

describe("nothing more from a stale evaluation, a duplicate one or a hand-off", () => {
  it("an overrun old owner's late commit, whose writes would resolve the alert, appends no event", async () => {
    const run = await runAndCheck(options([0, 1], [PLAIN]), [
      ingest(80),
      tick(0), // seq 1: fired on shard 0
      advance(),
      ingest(10),
      // The old owner judges the 10 (a resolve) and hangs before its commit …
      { kind: "overrun", pod: 0 },
      { kind: "move", tenant: 0, shard: 1 },
      ingest(95),
      advance(),
      // … the new owner judges the 10 and the 95 (still firing: no event) …
      tick(1),
      // … and the old owner's commit is refused: no resolved event.
      { kind: "release" },
    ]);
    const refused = run.check.records.filter((r) => r.outcome === "refused");
    expect(refused.map((r) => [r.loadedSeq, r.readings.map((x) => x.value)])).toEqual([[1, [10]]]);
    const events = run.check.alertEvents!;
    expect(story(events)).toEqual([["fired", "warning", 1]]);
    // The checker is not vacuous: the event the refused evaluation would have appended, or a
    // missing one, is reported.
    const stale: AlertEventRow = { ...events[0]!, id: events[0]!.id + 1, kind: "resolved", seq: 2 };
    for (const alertEvents of [[...events, stale], []]) {
      const { violations } = checkHistory({ ...run.check, alertEvents });
      expect(violations.map((v) => v.check)).toEqual(["alert-events-differ"]);
    }
  });

  it("a rollout's second pod that judged the same seq without the lease appends nothing", async () => {
    // Two pods of shard 0; pod 1 has lost Valkey (no lease). Pod 0's evaluation of seq 1 hangs,
    // pod 1 judges the same readings from the same seq and commits, then pod 0's commit is refused.
    const run = await runAndCheck(options([0, 0]), [
      { kind: "valkey", pod: 1, up: false },
      ingest(80),
      { kind: "overrun", pod: 0 },
      tick(1),
      { kind: "release" },
      advance(),
      ingest(10),
      tick(1),
    ]);
    const records = run.check.records;
    const duplicate = records.find((r) => r.outcome === "refused" && r.loadedSeq === 0);
    const winner = records.find((r) => r.outcome === "committed" && r.loadedSeq === 0);
    expect(duplicate?.readings.map((x) => x.value)).toEqual([80]);
    expect(winner?.evaluator).not.toBe(duplicate?.evaluator);
    expect(story(run.check.alertEvents!)).toEqual([
      ["fired", "warning", 1],
      ["resolved", "warning", 2],
    ]);
  });

  it("ticking at the shards' offsets through hand-offs 0 → 1 → 0, each change is one event of one shard", async () => {
    const slots = (n: number): Step[] => Array.from({ length: n }, () => ({ kind: "slot" }));
    const run = await runAndCheck({ ...options([0, 1], [PLAIN]), tenants: 2 }, [
      ingest(80, 0, 0),
      ingest(80, 1, 1),
      ...slots(1),
      { kind: "move", tenant: 0, shard: 1 },
      { kind: "move", tenant: 1, shard: 0 },
      ingest(90, 0, 0),
      ingest(10, 1, 1),
      ...slots(2),
      { kind: "move", tenant: 0, shard: 0 },
      ingest(10, 0, 0),
      ...slots(2),
    ]);
    const events = run.check.alertEvents!;
    const [t0, t1] = run.check.tenants!;
    const of = (t: string, device: string) =>
      events.filter((e) => e.tenant_id === t && e.device_id === device).map((e) => e.kind);
    expect(of(t0!, "d1")).toEqual(["fired", "resolved"]);
    expect(of(t1!, "d2")).toEqual(["fired", "resolved"]);
    // Both shards committed evaluations of the moved tenants; each event's seq is one of them.
    const committed = run.check.records.filter((r) => r.outcome === "committed");
    expect(new Set(committed.map((r) => r.evaluator.split("#")[1])).size).toBe(2);
    for (const e of events) {
      expect(committed.filter((r) => r.tenantId === e.tenant_id && r.loadedSeq + 1 === e.seq)).toHaveLength(
        1,
      );
    }
  });
});

/**
 * The exactly-once generator's steps, plus maintenance windows, Valkey flushes and outages; rules
 * with an escalation and with a cooldown. A flush or an outage during a window makes the evaluator
 * rebuild a lifecycle whose fire was held back: the suppression row (migration 000010) must make
 * it firing again, so that no second `suppressed` event is written for one condition.
 */
const step = scheduleStep(
  [I],
  [
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("maintenance" as const),
        tenant: fc.nat(2),
        device: fc.option(fc.nat(1), { nil: null }),
        ms: fc.integer({ min: 10_000, max: 150_000 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("flush" as const), tenant: fc.nat(2) }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("valkey" as const), pod: fc.nat(2), up: fc.boolean() }),
    },
  ],
);

/** A threshold with a cooldown: its rebuilt cooldown starts at a held-back fire too. */
const COOL: Record<string, unknown> = {
  id: "cool",
  rule_type: "threshold",
  operator: ">",
  threshold: 60,
  cooldown_seconds: 90,
};

const RUNS = Number(process.env["EO_EVENTS_RUNS"] ?? 40);

describe("generated interleavings", () => {
  it(`append exactly the events one healthy evaluator would, over ${RUNS} schedules (3 pods: shard 0, and shard 1 twice)`, {
    timeout: Math.max(300_000, RUNS * 10_000),
  }, async () => {
    const rules = [HOT, COOL, ...RULES.filter((r) => r["id"] !== "hot")];
    let events = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), async (steps) => {
        const run = await runAndCheck({ ...options([0, 1, 1], rules), tenants: 3 }, steps);
        events += run.check.alertEvents!.length;
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    // Not vacuous: the schedules changed alerts.
    expect(events).toBeGreaterThan(RUNS);
  });

  it(`maintenance windows while Valkey loses the lifecycle: one suppressed event per held-back condition, over ${RUNS} schedules of one tenant`, {
    timeout: Math.max(300_000, RUNS * 10_000),
  }, async () => {
    // Each round ingests a reading (mostly above the thresholds) and ticks; flushes, Valkey
    // outages and windows fall between rounds, so held-back fires meet rebuilt lifecycles often.
    const round = fc
      .record({ value: fc.constantFrom(10, 65, 80, 95, 95), device: fc.nat(1) })
      .map(({ value, device }): Step[] => [ingest(value, device), tick(), advance()]);
    const fault = fc.oneof(
      fc.constant<Step[]>([{ kind: "flush", tenant: 0 }]),
      fc.boolean().map((up): Step[] => [{ kind: "valkey", pod: 0, up }]),
      fc
        .record({
          device: fc.option(fc.nat(1), { nil: null }),
          ms: fc.integer({ min: 60_000, max: 300_000 }),
        })
        .map(({ device, ms }): Step[] => [{ kind: "maintenance", tenant: 0, device, ms }]),
    );
    const kinds = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof({ weight: 3, arbitrary: round }, { weight: 2, arbitrary: fault }), {
          minLength: 8,
          maxLength: 30,
        }),
        async (parts) => {
          const run = await runAndCheck(options([0], [HOT, COOL]), parts.flat());
          for (const e of run.check.alertEvents!) kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
        },
      ),
      { numRuns: RUNS, endOnFailure: true },
    );
    // Not vacuous: fires were held back, and alerts opened after their windows.
    expect(kinds.get("suppressed") ?? 0).toBeGreaterThan(RUNS / 4);
    expect(kinds.get("fired") ?? 0).toBeGreaterThan(RUNS / 4);
  });
});

describe("the commit statement", () => {
  const T = Date.UTC(2026, 0, 1);

  async function tenant(id: string): Promise<void> {
    await db.pool.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ($1, 's', 0)", [id]);
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ($1, 'd1')", [id]);
    await db.pool.query(
      "INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold) VALUES ($1, 'hot', 'temp', 'threshold', '>', 30)",
      [id],
    );
  }

  function fire(tenantId: string): AlertWrites {
    return {
      upserts: [
        {
          ruleId: "hot",
          deviceId: "d1",
          fingerprint: alertFingerprint(tenantId, "hot", "d1"),
          severity: "warning",
          firstSeenMs: T,
          lastSeenMs: T,
          value: 40,
          message: "temp > 30 (value 40)",
          escalated: false,
        },
      ],
      resolves: [],
      counts: { fire: 1, stillFiring: 0, resolve: 0 },
      suppressedByMaintenance: 0,
    };
  }

  async function fenceOf(store: EvaluatorStore, tenantId: string) {
    return (await store.readTenantData([tenantId], T, T - 3_600_000)).get(tenantId)!.fence;
  }

  async function eventsOf(tenantId: string) {
    const { rows } = await db.pool.query<{ kind: string; seq: string; alert_id: string; payload: unknown }>(
      "SELECT kind, seq::text, alert_id::text, payload FROM alert_events WHERE tenant_id = $1 ORDER BY id",
      [tenantId],
    );
    return rows;
  }

  it("six concurrent commits of one evaluation: one applies, one event, one NOTIFY after the commit", async () => {
    await tenant("dup");
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const notes: string[] = [];
    listener.on("notification", (n) => {
      if (n.channel === "alert_events") notes.push(n.payload ?? "");
    });
    await listener.query("LISTEN alert_events");
    try {
      const stores = Array.from({ length: 6 }, () => createPgStore(db.pool));
      const fence = await fenceOf(stores[0]!, "dup");
      const results = await Promise.all(
        stores.map((s, k) => s.commitEvaluation("dup", fire("dup"), { fence, nowMs: T, evaluator: `e${k}` })),
      );
      expect(results.filter((r) => r.applied).map((r) => r.events)).toEqual([1]);
      expect(results.filter((r) => !r.applied).map((r) => r.events)).toEqual([0, 0, 0, 0, 0]);
      const events = await eventsOf("dup");
      const { rows: alerts } = await db.pool.query("SELECT id::text FROM alerts WHERE tenant_id = 'dup'");
      expect(events).toEqual([
        {
          kind: "fired",
          seq: "1",
          alert_id: alerts[0]!["id"],
          payload: {
            value: 40,
            message: "temp > 30 (value 40)",
            first_seen: "2026-01-01T00:00:00+00:00",
            last_seen: "2026-01-01T00:00:00+00:00",
          },
        },
      ]);
      // A refused commit sends nothing; the applied one's NOTIFY names the tenant.
      await listener.query("SELECT 1");
      expect(notes).toEqual(["dup"]);
    } finally {
      await listener.end();
    }
  });

  it("a NOTIFY is delivered when the transaction commits, never before, and not at all on a rollback", async () => {
    await tenant("tx");
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const notes: string[] = [];
    listener.on("notification", (n) => notes.push(n.payload ?? ""));
    await listener.query("LISTEN alert_events");
    const client = await db.pool.connect();
    try {
      const store = createPgStore(client);
      const fence = await fenceOf(createPgStore(db.pool), "tx");
      await client.query("BEGIN");
      expect(
        (await store.commitEvaluation("tx", fire("tx"), { fence, nowMs: T, evaluator: "e" })).events,
      ).toBe(1);
      await listener.query("SELECT 1");
      expect(notes).toEqual([]);
      await client.query("ROLLBACK");
      await listener.query("SELECT 1");
      expect(notes).toEqual([]);
      expect(await eventsOf("tx")).toEqual([]);
      await store.commitEvaluation("tx", fire("tx"), { fence, nowMs: T, evaluator: "e" });
      await listener.query("SELECT 1");
      expect(notes).toEqual(["tx"]);
    } finally {
      client.release();
      await listener.end();
    }
  });

  it("with alert events off, the alerts are written and the outbox is left alone", async () => {
    await tenant("off");
    const store = createPgStore(db.pool, { alertEvents: false });
    const fence = await fenceOf(store, "off");
    const result = await store.commitEvaluation("off", fire("off"), { fence, nowMs: T, evaluator: "e" });
    expect(result).toMatchObject({ applied: true, opened: 1, events: 0 });
    expect(await eventsOf("off")).toEqual([]);
  });
});
