import { describe, expect, it } from "vitest";
import { T0, thresholdRule, windowRule } from "../../evaluator/src/rules/fixtures.ts";
import type { Reading } from "../../evaluator/src/rules/types.ts";
import { alertFingerprint, NO_MAINTENANCE } from "../../evaluator/src/store/alertWrites.ts";
import type { EvaluationRecord } from "../../evaluator/src/tick/evaluationRecord.ts";
import {
  type AlertRow,
  checkHistory,
  type ExpectedReading,
  formatViolations,
  type HistoryInput,
  HistoryRecorder,
  replayAlerts,
} from "./history.ts";

const I = 60_000;
const at = (k: number) => T0 + k * I;

/** temp > 30 on d1, escalating to critical after two minutes. */
const hot = thresholdRule({
  id: "hot",
  device_id: "d1",
  threshold: "30",
  escalation: { after_seconds: 120, severity: "critical" },
});
/** Two readings above 50 within five minutes, on any device. */
const burst = windowRule({
  id: "burst",
  device_id: null,
  threshold: "50",
  window_seconds: 300,
  min_count: 2,
});

const reading = (deviceId: string, s: number, value: number): Reading => ({
  deviceId,
  metric: "temp",
  ts: T0 + s * 1000,
  value,
});
const R1 = reading("d1", 50, 42);
const R2 = reading("d2", 100, 55);
const R3 = reading("d1", 110, 45);
const R4 = reading("d2", 170, 60);
const R5 = reading("d1", 175, 40);
const R6 = reading("d1", 230, 20);

function rec(
  evaluator: string,
  k: number,
  loadedSeq: number,
  outcome: EvaluationRecord["outcome"],
  stateSource: EvaluationRecord["stateSource"],
  readings: readonly Reading[],
): EvaluationRecord {
  return {
    tenantId: "t1",
    evaluator,
    now: at(k),
    slot: k,
    loadedSeq,
    outcome,
    stateSource,
    readings,
    rules: [hot, burst],
    deviceIds: ["d1", "d2"],
    maintenance: NO_MAINTENANCE,
  };
}

/**
 * Two evaluators alternating on one tenant, with a race lost at slot 1, an overrunning old owner
 * refused at slot 3 and a PostgreSQL error at slot 6.
 */
function cleanRecords(): EvaluationRecord[] {
  return [
    rec("A", 1, 0, "committed", "rebuilt", [R1]),
    rec("B", 1, 0, "refused", "rebuilt", [R1]),
    rec("B", 2, 1, "committed", "valkey", [R2, R3]),
    rec("A", 3, 2, "committed", "valkey", [R4, R5]),
    rec("B", 3, 2, "refused", "valkey", [R4, R5]),
    rec("A", 4, 3, "committed", "kept", [R6]),
    rec("B", 5, 4, "committed", "valkey", []),
    rec("A", 6, 5, "failed", "valkey", []),
    rec("B", 6, 5, "committed", "rebuilt", []),
    rec("B", 7, 6, "committed", "kept", []),
  ];
}

const expectedReadings: ExpectedReading[] = [R1, R2, R3, R4, R5, R6].map((r) => ({ tenantId: "t1", ...r }));

/**
 * What PostgreSQL holds after the clean history, worked out by hand: `hot` fires at 1, escalates at
 * 3 (two minutes firing) and resolves at 4 (20 °C); `burst` fires at 3 (55 and 60 within the
 * window), stays firing while both readings are in the window and resolves at 7 (55 aged out).
 */
function cleanAlerts(): AlertRow[] {
  return [
    {
      tenant_id: "t1",
      rule_id: "hot",
      device_id: "d1",
      fingerprint: alertFingerprint("t1", "hot", "d1"),
      state: "resolved",
      severity: "critical",
      first_seen: at(1),
      last_seen: at(3),
      resolved_at: at(4),
      occurrences: 3,
      value: 40,
    },
    {
      tenant_id: "t1",
      rule_id: "burst",
      device_id: "d2",
      fingerprint: alertFingerprint("t1", "burst", "d2"),
      state: "resolved",
      severity: "warning",
      first_seen: at(3),
      last_seen: at(6),
      resolved_at: at(7),
      occurrences: 4,
      value: 2,
    },
  ];
}

function clean(overrides: Partial<HistoryInput> = {}): HistoryInput {
  return { records: cleanRecords(), expectedReadings, alerts: cleanAlerts(), ...overrides };
}

/** The checks that fired, in order. */
function checksOf(input: HistoryInput): string[] {
  return checkHistory(input).violations.map((v) => `${v.invariant}:${v.check}`);
}

function withRecord(k: number, patch: Partial<EvaluationRecord>): EvaluationRecord[] {
  const records = cleanRecords();
  records[k] = { ...records[k]!, ...patch };
  return records;
}

function withAlert(k: number, patch: Partial<AlertRow>): AlertRow[] {
  const alerts = cleanAlerts();
  alerts[k] = { ...alerts[k]!, ...patch };
  return alerts;
}

describe("replayAlerts (the oracle of invariant d)", () => {
  it("replays the committed records on one healthy evaluator", () => {
    expect(replayAlerts(cleanRecords())).toEqual(expect.arrayContaining(cleanAlerts()));
    expect(replayAlerts(cleanRecords())).toHaveLength(2);
  });

  it("ignores refused and failed records", () => {
    const records = cleanRecords().map((r) =>
      r.outcome === "committed" ? r : { ...r, readings: [reading("d2", 10, 99), reading("d2", 11, 99)] },
    );
    expect(replayAlerts(records)).toEqual(expect.arrayContaining(cleanAlerts()));
  });

  it("skips upserts for a device that is not registered, as the foreign-key guard does", () => {
    const any = thresholdRule({ id: "any", device_id: null, threshold: "0" });
    const records: EvaluationRecord[] = [
      {
        ...rec("A", 1, 0, "committed", "rebuilt", [reading("d9", 10, 5), reading("d1", 10, 5)]),
        rules: [any],
      },
    ];
    expect(replayAlerts(records).map((r) => r.device_id)).toEqual(["d1"]);
  });

  it("does not open or bump an alert under maintenance", () => {
    const records = cleanRecords().map((r) =>
      r.now === at(2) ? { ...r, maintenance: { tenantWide: true, deviceIds: new Set<string>() } } : r,
    );
    const hotRow = replayAlerts(records).find((r) => r.rule_id === "hot");
    expect(hotRow).toMatchObject({ occurrences: 2, state: "resolved" });
  });
});

describe("checkHistory", () => {
  it("reports nothing for a clean history of two alternating evaluators", () => {
    const result = checkHistory(
      clean({
        maxGapMs: I + 5_000,
        upIntervals: [{ from: T0, to: at(7) }],
        events: [{ kind: "hand-off", detail: "t1: shard 0 → 1", at: T0 + 90_000 }],
      }),
    );
    expect(formatViolations(result.violations)).toBe("no violations");
    expect(result.summary).toEqual({
      tenants: 1,
      evaluations: { committed: 7, refused: 2, failed: 1 },
      readings: { expected: 6, judged: 6 },
      alerts: { open: 0, resolved: 2 },
      events: 1,
      violations: 0,
    });
  });

  it("accepts database times rounded to microseconds", () => {
    const alerts = cleanAlerts().map((a) => ({ ...a, first_seen: a.first_seen + 0.0004 }));
    expect(checksOf(clean({ alerts }))).toEqual([]);
  });

  describe("(a) judged exactly once", () => {
    it("reports a reading judged by two committed evaluations, naming the rules", () => {
      const records = withRecord(3, { readings: [R3, R4, R5] });
      const { violations } = checkHistory(clean({ records }));
      expect(violations.map((v) => v.check)).toEqual(["judged-more-than-once"]);
      expect(violations[0]!.message).toMatch(/judged 2× .*by rule hot, burst/);
      expect(violations[0]!.interleaving.filter((l) => l.startsWith(">"))).toHaveLength(2);
    });

    it("allows a reading inserted twice to be judged twice", () => {
      const records = withRecord(3, { readings: [R3, R4, R5] });
      const twice = [...expectedReadings, { tenantId: "t1", ...R3 }];
      expect(checksOf(clean({ records, expectedReadings: twice }))).toEqual([]);
    });

    it("reports a reading that was inserted but never judged", () => {
      const skipped = { tenantId: "t1", ...reading("d2", 200, 10) };
      const { violations } = checkHistory(clean({ expectedReadings: [...expectedReadings, skipped] }));
      expect(violations.map((v) => v.check)).toEqual(["never-judged"]);
      expect(violations[0]!.message).toContain("d2/temp@2026-01-01T00:03:20.000Z=10");
    });

    it("does not expect a non-finite reading to be judged", () => {
      const nan = { tenantId: "t1", ...reading("d2", 200, Number.NaN) };
      expect(checksOf(clean({ expectedReadings: [...expectedReadings, nan] }))).toEqual([]);
    });

    it("reports a judged reading that was never inserted", () => {
      const records = withRecord(6, { readings: [reading("d3", 280, 1)] });
      expect(checksOf(clean({ records }))).toEqual(["a:unexpected-reading"]);
    });

    it("matches readings on whole milliseconds, as the evaluator reads them", () => {
      const fractional = expectedReadings.map((r) => ({ ...r, ts: r.ts + 0.7 }));
      expect(checksOf(clean({ expectedReadings: fractional }))).toEqual([]);
    });
  });

  describe("(b) totally ordered evaluations", () => {
    it("reports a seq gap", () => {
      const records = cleanRecords().map((r, k) => (k >= 5 ? { ...r, loadedSeq: r.loadedSeq + 1 } : r));
      const { violations } = checkHistory(clean({ records }));
      expect(violations.map((v) => v.check)).toEqual(["seq-gap"]);
      expect(violations[0]!.message).toContain("from seq 3");
    });

    it("reports a seq committed twice", () => {
      const records = cleanRecords().map((r, k) => (k >= 6 ? { ...r, loadedSeq: r.loadedSeq - 1 } : r));
      const { violations } = checkHistory(clean({ records }));
      expect(violations.map((v) => v.check)).toEqual(["seq-repeat"]);
      expect(violations[0]!.message).toMatch(/2 evaluations committed from seq 3: A .*; B /);
    });

    it("reports a committed evaluation older than its predecessor", () => {
      const records = withRecord(6, { now: at(4) - 1_000 });
      expect(checksOf(clean({ records }))).toEqual(["b:now-backwards"]);
    });

    it("reports a refusal that no newer commit explains", () => {
      const records = [...cleanRecords(), rec("C", 8, 7, "refused", "valkey", [])];
      expect(checksOf(clean({ records }))).toEqual(["b:refused-not-stale"]);
    });

    it("accepts the refusal of an overrun that loaded a seq produced by a newer tick", () => {
      // C loaded seq 7 (produced at slot 7) while still working on slot 6.
      const records = [...cleanRecords(), rec("C", 6, 7, "refused", "valkey", [])];
      expect(checksOf(clean({ records }))).toEqual([]);
    });

    it("reports a kept state that another evaluator committed", () => {
      const records = withRecord(6, { stateSource: "kept" });
      expect(checksOf(clean({ records }))).toEqual(["b:kept-foreign-state"]);
    });
  });

  describe("(c) bounded wait", () => {
    it("reports a tenant left unevaluated while its shard was up", () => {
      const { violations } = checkHistory(
        clean({ maxGapMs: I + 5_000, upIntervals: [{ from: T0, to: at(10) }] }),
      );
      expect(violations.map((v) => v.check)).toEqual(["evaluation-gap"]);
      expect(violations[0]!.message).toMatch(/for 180000 ms \(bound 65000 ms\) from the last evaluation/);
    });

    it("reports a gap between evaluations and after coming up", () => {
      // Slots 5 and 6 missed: the later evaluations happen two intervals late.
      const records = cleanRecords().map((r) => (r.now >= at(5) ? { ...r, now: r.now + 2 * I } : r));
      const upIntervals = new Map([["t1", [{ from: T0 - I, to: at(9) }]]]);
      const input = clean({ records, alerts: replayAlerts(records), maxGapMs: I + 5_000, upIntervals });
      const { violations } = checkHistory(input);
      expect(violations.map((v) => v.message.replace(/: \d{4}-.*/, ""))).toEqual([
        "no committed evaluation for 120000 ms (bound 65000 ms) from the shard coming up (or an outage's end)",
        "no committed evaluation for 180000 ms (bound 65000 ms) between committed evaluations",
      ]);
    });

    it("does not count declared outages", () => {
      const upIntervals = [{ from: T0, to: at(10) }];
      const outages = [{ from: at(7) + 30_000, to: at(10) }];
      expect(checksOf(clean({ maxGapMs: I + 5_000, upIntervals, outages }))).toEqual([]);
    });

    it("is skipped without up intervals", () => {
      expect(checksOf(clean({ maxGapMs: 1 }))).toEqual([]);
    });
  });

  describe("(d) alerts as one healthy evaluator", () => {
    it("reports an extra occurrence (a stale evaluation's write)", () => {
      const { violations } = checkHistory(clean({ alerts: withAlert(1, { occurrences: 5 }) }));
      expect(violations.map((v) => v.check)).toEqual(["alerts-differ"]);
      expect(violations[0]!.message).toContain("burst/d2 incident 1: want ≠ got: occurrences 4 ≠ 5");
    });

    it("reports a second open row of one condition", () => {
      const extra: AlertRow = {
        ...cleanAlerts()[0]!,
        state: "open",
        severity: "warning",
        first_seen: at(5),
        last_seen: at(5),
        resolved_at: null,
        occurrences: 1,
      };
      const { violations } = checkHistory(clean({ alerts: [...cleanAlerts(), extra] }));
      expect(violations.map((v) => v.check)).toEqual(["alerts-differ"]);
      expect(violations[0]!.message).toMatch(/hot\/d1 incident 2: unexpected row open warning/);
    });

    it("reports a missing resolve", () => {
      const { violations } = checkHistory(
        clean({ alerts: withAlert(0, { state: "open", resolved_at: null }) }),
      );
      expect(violations.map((v) => v.check)).toEqual(["alerts-differ"]);
      expect(violations[0]!.message).toContain("state resolved ≠ open");
      expect(violations[0]!.message).toContain("resolved_at 2026-01-01T00:04:00.000Z ≠ null");
    });

    it("reports a missing alert, and an alert of a tenant never evaluated", () => {
      const other = {
        ...cleanAlerts()[0]!,
        tenant_id: "t2",
        fingerprint: alertFingerprint("t2", "hot", "d1"),
      };
      const { violations } = checkHistory(clean({ alerts: [cleanAlerts()[0]!, other] }));
      expect(violations.map((v) => `${v.tenantId}:${v.check}`)).toEqual([
        "t1:alerts-differ",
        "t2:alerts-differ",
      ]);
      expect(violations[0]!.message).toMatch(/burst\/d2 incident 1: missing row resolved warning/);
      expect(violations[1]!.message).toMatch(/hot\/d1 incident 1: unexpected row/);
    });
  });
});

describe("HistoryRecorder and formatViolations", () => {
  it("prints a violation with its tenant's interleaving", () => {
    const history = new HistoryRecorder();
    const onEvaluation = history.record;
    for (const r of withRecord(3, { readings: [R3, R4, R5] })) onEvaluation(r);
    history.note("hand-off", "t1: shard 0 → 1", T0 + 150_000, "t1");
    history.note("kill", "shard 0 (SIGKILL)", T0 + 160_000);
    history.note("flush", "other tenant", T0 + 165_000, "t2");

    const { violations } = checkHistory({
      records: history.records,
      events: history.events,
      expectedReadings,
      alerts: cleanAlerts(),
      tenants: ["t1"],
      context: 1,
    });
    const text = formatViolations(violations);
    expect(text).toContain("1. (a) judged-more-than-once — tenant t1");
    expect(violations.map((v) => v.tenantId)).toEqual(["t1"]);
    // Events of t1 and of every tenant, not t2's; `>` marks the two evaluations that judged R3.
    expect(violations[0]!.interleaving).toEqual([
      "  … 1 earlier",
      "  2026-01-01T00:01:00.000Z  B seq 0 refused slot 1 state rebuilt readings 1 [d1/temp=42]",
      "> 2026-01-01T00:02:00.000Z  B seq 1→2 committed slot 2 state valkey readings 2 [d2/temp=55 d1/temp=45]",
      "  2026-01-01T00:02:30.000Z  hand-off: t1: shard 0 → 1",
      "  2026-01-01T00:02:40.000Z  kill: shard 0 (SIGKILL)",
      "> 2026-01-01T00:03:00.000Z  A seq 2→3 committed slot 3 state valkey readings 3 [d1/temp=45 d2/temp=60 d1/temp=40]",
      "  2026-01-01T00:03:00.000Z  B seq 2 refused slot 3 state valkey readings 2 [d2/temp=60 d1/temp=40]",
      "  … 5 later",
    ]);
  });

  it("limits the number printed", () => {
    const records = withRecord(3, { readings: [R1, R2, R3, R4, R5] });
    const { violations } = checkHistory(clean({ records }));
    expect(violations).toHaveLength(3);
    expect(formatViolations(violations, 1)).toMatch(/^3 violation\(s\):\n1\. .*\n[\s\S]*… and 2 more$/);
  });
});
