/**
 * The history checker: proves the exactly-once invariants of DESIGN §4 over what a test run did.
 *
 * The evaluators report every evaluation that judged (`EvaluationRecord`, through the tenant
 * pipeline's `onEvaluation` hook) to a {@link HistoryRecorder}; the test notes what it did to them
 * (hand-offs, kills, flushes…), reads the `alerts` rows ({@link HISTORY_ALERTS_SQL}) and hands all
 * of it to {@link checkHistory}, which checks:
 *
 * - (a) every reading is judged at most once by each rule that applies to it, and every reading
 *   that arrived is judged;
 * - (b) the committed evaluations of a tenant have loadedSeq 0, 1, 2… (no gap, no repeat) and a
 *   non-decreasing `now`; a refused one was really stale; a `kept` state is the evaluator's own;
 * - (c) while a shard is up and outside declared outages, no tenant waits longer than a bound;
 * - (d) the `alerts` rows are exactly what ONE healthy evaluator produces when it judges the same
 *   readings in the same order: the committed records are replayed in seq order through the real
 *   pure engine (planTenant → advanceTick → evaluateTenant → buildAlertWrites → applyCommit) into an
 *   in-memory model of the table with the semantics of `commit_evaluation.sql`, then diffed; the
 *   same replay gives the `alert_events` rows (when given, {@link HISTORY_ALERT_EVENTS_SQL}): one
 *   per change of an alert's state, stamped with the seq of the evaluation that made it, compared
 *   by (rule, device, kind, seq) and severity, with unique ids rising with the seq.
 *
 * Pure: no I/O, no clock. Every violation carries the interleaving of its tenant (records and
 * noted events in time order) around the moment it concerns, so a failure can be read without
 * re-running the test.
 */
import { evaluateTenant } from "../../evaluator/src/rules/evaluateTenant.ts";
import { pairKey, planTenant } from "../../evaluator/src/rules/planTenant.ts";
import { groupReadings } from "../../evaluator/src/rules/readings.ts";
import { type Reading, type Rule, SEVERITIES, type Severity } from "../../evaluator/src/rules/types.ts";
import { advanceTick, applyCommit, emptySnapshot } from "../../evaluator/src/state/tenantSnapshot.ts";
import { buildAlertWrites } from "../../evaluator/src/store/alertWrites.ts";
import type { EvaluationRecord } from "../../evaluator/src/tick/evaluationRecord.ts";

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/**
 * Something the test did to the system or saw happen, for the interleaving printed with a
 * violation. Well-known kinds: `hand-off`, `kill`, `restart`, `flush`, `breaker-trip`, `overrun`,
 * `outage`; any other string is printed as it is.
 */
export interface HistoryEvent {
  readonly kind: string;
  readonly detail: string;
  /** When (epoch ms, the clock of the records' `now`). */
  readonly at: number;
  /** The tenant it concerns; absent: every tenant (a process kill, a Valkey flush). */
  readonly tenantId?: string;
}

/** A time interval `[from, to]`, epoch ms in the clock of the records' `now`. */
export interface Interval {
  readonly from: number;
  readonly to: number;
}

/** Intervals of every tenant (an array), or per tenant id (a map; a tenant missing from it has none). */
export type TenantIntervals = readonly Interval[] | ReadonlyMap<string, readonly Interval[]>;

/** A reading the test inserted into `telemetry`. */
export interface ExpectedReading {
  readonly tenantId: string;
  readonly deviceId: string;
  readonly metric: string;
  /** Epoch ms; the evaluator reads whole milliseconds, so a fraction is truncated before matching. */
  readonly ts: number;
  readonly value: number;
}

/** An `alerts` row as read by {@link HISTORY_ALERTS_SQL}: the columns, times in epoch ms. */
export interface AlertRow {
  readonly tenant_id: string;
  readonly rule_id: string;
  readonly device_id: string | null;
  readonly fingerprint: string;
  readonly state: "open" | "resolved";
  readonly severity: Severity;
  readonly first_seen: number;
  readonly last_seen: number;
  readonly resolved_at: number | null;
  readonly occurrences: number;
  readonly value: number | null;
}

/**
 * The query whose rows {@link checkHistory} takes as `alerts` ($1: tenant ids). Times come back as
 * float8 epoch ms (`extract` alone returns numeric, which pg hands over as a string).
 */
export const HISTORY_ALERTS_SQL = `SELECT tenant_id, rule_id, device_id, fingerprint, state, severity::text AS severity,
       (extract(epoch FROM first_seen) * 1000)::float8 AS first_seen,
       (extract(epoch FROM last_seen) * 1000)::float8 AS last_seen,
       (extract(epoch FROM resolved_at) * 1000)::float8 AS resolved_at,
       occurrences, value
  FROM alerts
 WHERE tenant_id = ANY ($1::text[])
 ORDER BY id`;

/** An `alert_events` row as read by {@link HISTORY_ALERT_EVENTS_SQL}. */
export interface AlertEventRow {
  readonly id: number;
  readonly tenant_id: string;
  readonly rule_id: string;
  readonly device_id: string | null;
  readonly kind: "fired" | "escalated" | "resolved" | "suppressed";
  readonly severity: Severity;
  readonly seq: number;
}

/** The query whose rows {@link checkHistory} takes as `alertEvents` ($1: tenant ids), in read order. */
export const HISTORY_ALERT_EVENTS_SQL = `SELECT id::float8 AS id, tenant_id, rule_id, device_id, kind, severity,
       seq::float8 AS seq
  FROM alert_events
 WHERE tenant_id = ANY ($1::text[])
 ORDER BY xid, id`;

/** Everything {@link checkHistory} judges. */
export interface HistoryInput {
  /** Every evaluation record, in the order they were reported. */
  readonly records: readonly EvaluationRecord[];
  /** What the test noted (see {@link HistoryRecorder.note}). */
  readonly events?: readonly HistoryEvent[];
  /**
   * Every reading the test inserted (the complete list: a judged reading not in it is reported).
   * Absent: the at-least-once half of (a) is not checked. Readings a tenant's first evaluation does
   * not read by design (ts before its first-read bound) must be left out.
   */
  readonly expectedReadings?: readonly ExpectedReading[];
  /** The `alerts` rows of the checked tenants ({@link HISTORY_ALERTS_SQL}). */
  readonly alerts: readonly AlertRow[];
  /** The `alert_events` rows of the checked tenants ({@link HISTORY_ALERT_EVENTS_SQL}); absent: not checked. */
  readonly alertEvents?: readonly AlertEventRow[];
  /** Tenants to check besides those named by records, readings and alerts. */
  readonly tenants?: readonly string[];
  /** (c): the longest a tenant may go without a committed evaluation (I + largest shard offset). */
  readonly maxGapMs?: number;
  /** (c): when a shard owning the tenant was up. (c) is skipped unless this and `maxGapMs` are given. */
  readonly upIntervals?: TenantIntervals;
  /** (c): declared outages (Valkey/PostgreSQL down, processes killed), during which (c) does not hold. */
  readonly outages?: TenantIntervals;
  /** Interleaving entries printed on each side of what a violation concerns (default 6). */
  readonly context?: number;
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

/** The invariants of DESIGN §4, by their letter. */
export type Invariant = "a" | "b" | "c" | "d";

/** Which check found a violation. */
export type ViolationCheck =
  /** (a) a reading judged by more committed evaluations (or more times) than it was inserted. */
  | "judged-more-than-once"
  /** (a) an inserted reading no committed evaluation judged. */
  | "never-judged"
  /** (a) a committed evaluation judged a reading that was never inserted. */
  | "unexpected-reading"
  /** (b) no committed evaluation moved the fence from some seq. */
  | "seq-gap"
  /** (b) two committed evaluations moved the fence from the same seq. */
  | "seq-repeat"
  /** (b) a committed evaluation's `now` is older than its predecessor's. */
  | "now-backwards"
  /** (b) a refused evaluation that no committed one had made stale. */
  | "refused-not-stale"
  /** (b) a `kept` state that is not the evaluator's own last commit. */
  | "kept-foreign-state"
  /** (c) a tenant waited longer than the bound while its shard was up. */
  | "evaluation-gap"
  /** (d) the `alerts` rows differ from a single healthy evaluator's. */
  | "alerts-differ"
  /** (d) the `alert_events` rows differ from a single healthy evaluator's (or repeat an id). */
  | "alert-events-differ";

/** One broken invariant. */
export interface Violation {
  readonly invariant: Invariant;
  readonly check: ViolationCheck;
  readonly tenantId: string;
  readonly message: string;
  /** The tenant's records and events around the violation, in time order (`>` marks the ones involved). */
  readonly interleaving: readonly string[];
}

/** Counts for a log line. */
export interface HistorySummary {
  readonly tenants: number;
  readonly evaluations: { readonly committed: number; readonly refused: number; readonly failed: number };
  /** Inserted (as declared) and judged by committed evaluations (with repeats). */
  readonly readings: { readonly expected: number | null; readonly judged: number };
  readonly alerts: { readonly open: number; readonly resolved: number };
  readonly events: number;
  readonly violations: number;
}

/** Result of {@link checkHistory}. */
export interface HistoryResult {
  readonly violations: readonly Violation[];
  readonly summary: HistorySummary;
}

// ---------------------------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------------------------

/**
 * Collects a run's evaluation records and the test's notes. Hand {@link record} (bound) to the
 * pipeline's `onEvaluation`; call {@link note} for what the test does; pass {@link records} and
 * {@link events} to {@link checkHistory}.
 */
export class HistoryRecorder {
  readonly #records: EvaluationRecord[] = [];
  readonly #events: HistoryEvent[] = [];

  /** Keeps one evaluation record (an arrow function, so it can be passed as the hook as it is). */
  readonly record = (r: EvaluationRecord): void => {
    this.#records.push(r);
  };

  /**
   * Notes something the test did or saw, e.g. `note("kill", "shard 1 (SIGKILL)", clock.now())`.
   * @param tenantId the tenant it concerns; absent: every tenant
   */
  note(kind: string, detail: string, at: number, tenantId?: string): void {
    this.#events.push(tenantId === undefined ? { kind, detail, at } : { kind, detail, at, tenantId });
  }

  /** The records so far, in the order they were reported. */
  get records(): readonly EvaluationRecord[] {
    return this.#records;
  }

  /** The notes so far. */
  get events(): readonly HistoryEvent[] {
    return this.#events;
  }
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

const DEFAULT_CONTEXT = 6;
/** Readings listed per record in an interleaving line. */
const MAX_READINGS_SHOWN = 8;
/** Times read back from timestamptz are rounded to microseconds. */
const TIME_TOLERANCE_MS = 0.001;

/** What a violation's interleaving centres on: records (by index in `records`) and/or a time range. */
interface Focus {
  readonly records?: readonly number[];
  readonly from?: number;
  readonly to?: number;
}

/** One tenant's share of the input. */
interface TenantHistory {
  readonly tenantId: string;
  /** Indices into `records`, in report order. */
  readonly recordIdx: number[];
  readonly events: HistoryEvent[];
}

/**
 * Checks invariants (a)–(d) over one run (see the module comment). Every tenant named by a record,
 * an expected reading, an alert row or `tenants` is checked; (c) only when `maxGapMs` and
 * `upIntervals` are given, the at-least-once half of (a) only when `expectedReadings` is.
 */
export function checkHistory(input: HistoryInput): HistoryResult {
  const { records } = input;
  const context = input.context ?? DEFAULT_CONTEXT;
  const tenants = new Map<string, TenantHistory>();
  const tenant = (id: string): TenantHistory => {
    let t = tenants.get(id);
    if (!t) {
      t = { tenantId: id, recordIdx: [], events: [] };
      tenants.set(id, t);
    }
    return t;
  };
  records.forEach((r, i) => {
    tenant(r.tenantId).recordIdx.push(i);
  });
  for (const r of input.expectedReadings ?? []) tenant(r.tenantId);
  for (const a of input.alerts) tenant(a.tenant_id);
  for (const e of input.alertEvents ?? []) tenant(e.tenant_id);
  for (const id of input.tenants ?? []) tenant(id);
  if (input.upIntervals instanceof Map) for (const id of input.upIntervals.keys()) tenant(id);
  const globalEvents = (input.events ?? []).filter((e) => e.tenantId === undefined);
  for (const e of input.events ?? []) if (e.tenantId !== undefined) tenant(e.tenantId).events.push(e);
  for (const t of tenants.values()) t.events.push(...globalEvents);

  const violations: Violation[] = [];
  for (const t of [...tenants.values()].sort((x, y) => cmpStr(x.tenantId, y.tenantId))) {
    const timeline = buildTimeline(records, t);
    const report = (invariant: Invariant, check: ViolationCheck, message: string, focus: Focus) =>
      violations.push({
        invariant,
        check,
        tenantId: t.tenantId,
        message,
        interleaving: interleaving(timeline, focus, context),
      });
    const committed = t.recordIdx
      .filter((i) => records[i]!.outcome === "committed")
      .sort((x, y) => records[x]!.loadedSeq - records[y]!.loadedSeq || x - y);
    checkReadings(input, t.tenantId, committed, report);
    checkOrder(records, t.recordIdx, committed, report);
    if (input.maxGapMs !== undefined && input.upIntervals !== undefined) {
      checkGaps(input, t.tenantId, committed, report);
    }
    checkAlerts(input, t.tenantId, committed, report);
    if (input.alertEvents !== undefined) checkAlertEvents(input, t.tenantId, committed, report);
  }
  if (input.alertEvents !== undefined) {
    const seen = new Set<number>();
    for (const e of input.alertEvents) {
      if (!seen.has(e.id)) {
        seen.add(e.id);
        continue;
      }
      violations.push({
        invariant: "d",
        check: "alert-events-differ",
        tenantId: e.tenant_id,
        message: `alert event id ${e.id} appears more than once`,
        interleaving: [],
      });
    }
  }

  let judged = 0;
  const evaluations = { committed: 0, refused: 0, failed: 0 };
  for (const r of records) {
    evaluations[r.outcome]++;
    if (r.outcome === "committed") judged += r.readings.length;
  }
  const summary: HistorySummary = {
    tenants: tenants.size,
    evaluations,
    readings: { expected: input.expectedReadings?.length ?? null, judged },
    alerts: {
      open: input.alerts.filter((a) => a.state === "open").length,
      resolved: input.alerts.filter((a) => a.state === "resolved").length,
    },
    events: input.events?.length ?? 0,
    violations: violations.length,
  };
  return { violations, summary };
}

type Report = (invariant: Invariant, check: ViolationCheck, message: string, focus: Focus) => void;

// --- (a) ---------------------------------------------------------------------------------------

/** Identity of a reading as the evaluator sees it (whole milliseconds). */
function readingKey(deviceId: string, metric: string, ts: number, value: number): string {
  return JSON.stringify([deviceId, metric, Number.isFinite(ts) ? Math.floor(ts) : String(ts), String(value)]);
}

function applies(rule: Rule, r: Reading): boolean {
  return rule.metric === r.metric && (rule.deviceId === null || rule.deviceId === r.deviceId);
}

function checkReadings(input: HistoryInput, tenantId: string, committed: readonly number[], report: Report) {
  const { records } = input;
  const expected = new Map<string, { reading: ExpectedReading; count: number }>();
  for (const r of input.expectedReadings ?? []) {
    if (r.tenantId !== tenantId) continue;
    const key = readingKey(r.deviceId, r.metric, r.ts, r.value);
    const e = expected.get(key);
    if (e) e.count++;
    else expected.set(key, { reading: r, count: 1 });
  }
  // Every appearance of every reading in a committed record of the tenant.
  const judged = new Map<string, { reading: Reading; at: number[] }>();
  for (const i of committed) {
    for (const r of records[i]!.readings) {
      const key = readingKey(r.deviceId, r.metric, r.ts, r.value);
      const j = judged.get(key);
      if (j) j.at.push(i);
      else judged.set(key, { reading: r, at: [i] });
    }
  }

  for (const [key, { reading, at }] of judged) {
    const allowed = expected.get(key)?.count ?? 1;
    if (at.length > allowed) {
      // Per rule, so the message says which judgements were repeated.
      const byRule = new Map<string, number[]>();
      for (const i of at) {
        for (const rule of records[i]!.rules) {
          if (!applies(rule, reading)) continue;
          const list = byRule.get(rule.id) ?? [];
          list.push(i);
          byRule.set(rule.id, list);
        }
      }
      const rules = [...byRule].filter(([, list]) => list.length > allowed);
      const what =
        rules.length === 0
          ? `(no rule applies to it in more than ${allowed} of them)`
          : `by rule ${rules.map(([id]) => id).join(", ")}`;
      report(
        "a",
        "judged-more-than-once",
        `reading ${describeReading(reading)} judged ${at.length}× (inserted ${allowed}×) ${what}, in ` +
          at.map((i) => describeRecordShort(records[i]!)).join("; "),
        { records: at },
      );
    }
    if (input.expectedReadings !== undefined && !expected.has(key)) {
      report(
        "a",
        "unexpected-reading",
        `reading ${describeReading(reading)} was judged but never inserted, in ` +
          at.map((i) => describeRecordShort(records[i]!)).join("; "),
        { records: at },
      );
    }
  }

  for (const [key, { reading, count }] of expected) {
    // A non-finite reading is read but dropped by `readingsFor`: nothing judges it.
    if (!Number.isFinite(reading.ts) || !Number.isFinite(reading.value)) continue;
    const n = judged.get(key)?.at.length ?? 0;
    if (n < count) {
      report(
        "a",
        "never-judged",
        `reading ${describeReading(reading)} inserted ${count}× was judged ${n}× by committed evaluations`,
        { from: reading.ts, to: reading.ts },
      );
    }
  }
}

// --- (b) ---------------------------------------------------------------------------------------

function checkOrder(
  records: readonly EvaluationRecord[],
  all: readonly number[],
  committed: readonly number[],
  report: Report,
) {
  const bySeq = new Map<number, number[]>();
  for (const i of committed) {
    const seq = records[i]!.loadedSeq;
    const list = bySeq.get(seq);
    if (list) list.push(i);
    else bySeq.set(seq, [i]);
  }
  let next = 0;
  for (const [seq, list] of [...bySeq].sort(([x], [y]) => x - y)) {
    if (seq > next) {
      const missing = seq - 1 === next ? `${next}` : `${next}…${seq - 1}`;
      const before = bySeq.get(next - 1)?.at(-1);
      report(
        "b",
        "seq-gap",
        `no recorded evaluation committed from seq ${missing} (committed: ${[...bySeq.keys()].sort((x, y) => x - y).join(",")})`,
        { records: before === undefined ? [list[0]!] : [before, list[0]!] },
      );
    }
    if (list.length > 1) {
      report(
        "b",
        "seq-repeat",
        `${list.length} evaluations committed from seq ${seq}: ` +
          list.map((i) => describeRecordShort(records[i]!)).join("; "),
        { records: list },
      );
    }
    next = seq + 1;
  }

  for (let k = 1; k < committed.length; k++) {
    const prev = records[committed[k - 1]!]!;
    const cur = records[committed[k]!]!;
    if (cur.now < prev.now) {
      report(
        "b",
        "now-backwards",
        `committed evaluation ${describeRecordShort(cur)} is older than its predecessor ${describeRecordShort(prev)}`,
        { records: [committed[k - 1]!, committed[k]!] },
      );
    }
  }

  for (const i of all) {
    const r = records[i]!;
    if (r.outcome === "refused") {
      // Stale: someone committed from its seq or later, or produced its seq with a newer tick time.
      const stale = committed.some((c) => {
        const o = records[c]!;
        return o.loadedSeq >= r.loadedSeq || (o.loadedSeq === r.loadedSeq - 1 && o.now > r.now);
      });
      if (!stale) {
        report(
          "b",
          "refused-not-stale",
          `evaluation ${describeRecordShort(r)} was refused, but no committed evaluation had moved the fence past seq ${r.loadedSeq} or produced it at a later tick`,
          { records: [i] },
        );
      }
    }
    if (r.stateSource === "kept") {
      const producers = committed.filter((c) => records[c]!.loadedSeq === r.loadedSeq - 1);
      const foreign = r.loadedSeq === 0 || producers.some((c) => records[c]!.evaluator !== r.evaluator);
      if (foreign) {
        report(
          "b",
          "kept-foreign-state",
          r.loadedSeq === 0
            ? `evaluation ${describeRecordShort(r)} kept a state although the tenant was never evaluated`
            : `evaluation ${describeRecordShort(r)} kept its own state, but seq ${r.loadedSeq} was committed by ` +
                producers.map((c) => records[c]!.evaluator).join(", "),
          { records: [...producers, i] },
        );
      }
    }
  }
}

// --- (c) ---------------------------------------------------------------------------------------

function intervalsOf(intervals: TenantIntervals | undefined, tenantId: string): readonly Interval[] {
  if (intervals === undefined) return [];
  if (intervals instanceof Map) return intervals.get(tenantId) ?? [];
  return intervals as readonly Interval[];
}

/** Sorted, merged intervals. */
function merge(intervals: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const iv of [...intervals].filter((x) => x.to >= x.from).sort((x, y) => x.from - y.from)) {
    const last = out.at(-1);
    if (last && iv.from <= last.to) out[out.length - 1] = { from: last.from, to: Math.max(last.to, iv.to) };
    else out.push(iv);
  }
  return out;
}

/** `up` minus `down`: the stretches during which the bound holds. */
function subtract(up: readonly Interval[], down: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const u of merge(up)) {
    let from = u.from;
    for (const d of merge(down)) {
      if (d.to <= from || d.from >= u.to) continue;
      if (d.from > from) out.push({ from, to: d.from });
      from = Math.max(from, d.to);
    }
    if (from < u.to) out.push({ from, to: u.to });
  }
  return out;
}

function checkGaps(input: HistoryInput, tenantId: string, committed: readonly number[], report: Report) {
  const bound = input.maxGapMs!;
  const nows = committed.map((i) => input.records[i]!.now).sort((x, y) => x - y);
  const segments = subtract(intervalsOf(input.upIntervals, tenantId), intervalsOf(input.outages, tenantId));
  // Each stretch starts afresh (an outage's end is like a shard coming up): from its start to the
  // first evaluation, between evaluations, and from the last to its end.
  for (const seg of segments) {
    const points = [seg.from, ...nows.filter((n) => n >= seg.from && n <= seg.to), seg.to];
    for (let k = 1; k < points.length; k++) {
      const from = points[k - 1]!;
      const to = points[k]!;
      if (to - from <= bound) continue;
      const what =
        k === 1
          ? "from the shard coming up (or an outage's end)"
          : k === points.length - 1
            ? "from the last evaluation to the end of the up time"
            : "between committed evaluations";
      report(
        "c",
        "evaluation-gap",
        `no committed evaluation for ${to - from} ms (bound ${bound} ms) ${what}: ${iso(from)} → ${iso(to)}`,
        { from, to },
      );
    }
  }
}

// --- (d) ---------------------------------------------------------------------------------------

/** A model `alert_events` row, and which committed record appended it. */
interface ModelEvent {
  readonly rule_id: string;
  readonly device_id: string;
  readonly kind: AlertEventRow["kind"];
  readonly severity: Severity;
  readonly seq: number;
  readonly writer: number;
}

/** A model row, and which committed records wrote it (for the interleaving). */
interface ModelRow {
  tenant_id: string;
  rule_id: string;
  device_id: string;
  fingerprint: string;
  state: "open" | "resolved";
  severity: Severity;
  first_seen: number;
  last_seen: number;
  resolved_at: number | null;
  occurrences: number;
  value: number | null;
  writers: number[];
}

function rank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/**
 * Replays one tenant's committed records (indices, already in seq order) on a single healthy
 * evaluator: the real pure engine, the tick's `now` as wall clock, and a model of the alerts table
 * with the semantics of `commit_evaluation.sql`.
 */
function replayTenant(records: readonly EvaluationRecord[], tenantId: string, order: readonly number[]) {
  const rows: ModelRow[] = [];
  const events: ModelEvent[] = [];
  const open = new Map<string, ModelRow>();
  /** Fingerprints with an open `alert_suppressions` row. */
  const suppressing = new Set<string>();
  const snapshot = emptySnapshot();
  for (const i of order) {
    const r = records[i]!;
    const input = {
      tenantId,
      rules: r.rules,
      deviceIds: r.deviceIds,
      readingsByDeviceMetric: groupReadings(r.readings),
      now: r.now,
    };
    const plan = planTenant(input);
    const step = advanceTick(snapshot, plan, r.now);
    const evaluation = evaluateTenant({ ...input, state: step.state, plan });
    const openPairs = new Set([...open.values()].map((row) => pairKey(row.rule_id, row.device_id)));
    const rulesById = new Map(r.rules.map((rule) => [rule.id, rule]));
    const writes = buildAlertWrites(tenantId, rulesById, evaluation, openPairs, r.maintenance);

    // Both CTEs see the table as it was before the statement: resolve only rows open before it.
    const openBefore = new Map(open);
    const ruleIds = new Set(r.rules.map((rule) => rule.id));
    const deviceIds = new Set(r.deviceIds);
    const seq = r.loadedSeq + 1;
    const event = (ruleId: string, deviceId: string, kind: ModelEvent["kind"], severity: Severity) =>
      events.push({ rule_id: ruleId, device_id: deviceId, kind, severity, seq, writer: i });
    for (const u of writes.upserts) {
      // The foreign-key guard: a rule or device that does not exist is skipped.
      if (!ruleIds.has(u.ruleId) || !deviceIds.has(u.deviceId)) continue;
      const row = open.get(u.fingerprint);
      if (row) {
        row.last_seen = Math.max(row.last_seen, u.lastSeenMs);
        row.occurrences++;
        row.value = u.value;
        if (rank(u.severity) > rank(row.severity)) {
          row.severity = u.severity;
          event(u.ruleId, u.deviceId, "escalated", u.severity);
        }
        row.writers.push(i);
      } else {
        event(u.ruleId, u.deviceId, "fired", u.severity);
        const inserted: ModelRow = {
          tenant_id: tenantId,
          rule_id: u.ruleId,
          device_id: u.deviceId,
          fingerprint: u.fingerprint,
          state: "open",
          severity: u.severity,
          first_seen: u.firstSeenMs,
          last_seen: u.lastSeenMs,
          resolved_at: null,
          occurrences: 1,
          value: u.value,
          writers: [i],
        };
        rows.push(inserted);
        open.set(u.fingerprint, inserted);
      }
    }
    for (const fp of writes.resolves) {
      const row = openBefore.get(fp);
      if (row?.state !== "open") continue;
      row.state = "resolved";
      row.resolved_at = Math.max(row.last_seen, r.now);
      row.writers.push(i);
      open.delete(fp);
      event(row.rule_id, row.device_id, "resolved", row.severity);
    }
    // A suppression opens unless one is open; an upsert or a resolve of its fingerprint ends it.
    for (const s of writes.suppressions ?? []) {
      if (!ruleIds.has(s.ruleId) || !deviceIds.has(s.deviceId) || suppressing.has(s.fingerprint)) continue;
      suppressing.add(s.fingerprint);
      event(s.ruleId, s.deviceId, "suppressed", s.severity);
    }
    for (const u of writes.upserts) suppressing.delete(u.fingerprint);
    for (const fp of writes.resolves) suppressing.delete(fp);
    applyCommit(snapshot, evaluation.stateUpdates, r.now);
  }
  return { rows, events };
}

/**
 * The `alerts` rows ONE healthy evaluator would have produced from the committed records (each
 * tenant's replayed in seq order): the oracle of invariant (d), exported for tests and debugging.
 */
export function replayAlerts(records: readonly EvaluationRecord[]): AlertRow[] {
  const byTenant = new Map<string, number[]>();
  records.forEach((r, i) => {
    if (r.outcome !== "committed") return;
    const list = byTenant.get(r.tenantId) ?? [];
    list.push(i);
    byTenant.set(r.tenantId, list);
  });
  const out: AlertRow[] = [];
  for (const [tenantId, list] of byTenant) {
    list.sort((x, y) => records[x]!.loadedSeq - records[y]!.loadedSeq || x - y);
    for (const { writers: _, ...row } of replayTenant(records, tenantId, list).rows) out.push(row);
  }
  return out;
}

function sameTime(a: number | null, b: number | null): boolean {
  if (a === null || b === null) return a === b;
  return Math.abs(a - b) <= TIME_TOLERANCE_MS;
}

/** Rows of one fingerprint in incident order. */
function byIncident(a: AlertRow, b: AlertRow): number {
  return (
    a.first_seen - b.first_seen ||
    (a.state === b.state ? 0 : a.state === "resolved" ? -1 : 1) ||
    (a.resolved_at ?? Number.POSITIVE_INFINITY) - (b.resolved_at ?? Number.POSITIVE_INFINITY) ||
    a.last_seen - b.last_seen
  );
}

function rowDifferences(want: AlertRow, got: AlertRow): string[] {
  const diffs: string[] = [];
  if (want.state !== got.state) diffs.push(`state ${want.state} ≠ ${got.state}`);
  if (want.severity !== got.severity) diffs.push(`severity ${want.severity} ≠ ${got.severity}`);
  if (want.occurrences !== got.occurrences)
    diffs.push(`occurrences ${want.occurrences} ≠ ${got.occurrences}`);
  if (!sameTime(want.first_seen, got.first_seen))
    diffs.push(`first_seen ${iso(want.first_seen)} ≠ ${iso(got.first_seen)}`);
  if (!sameTime(want.last_seen, got.last_seen))
    diffs.push(`last_seen ${iso(want.last_seen)} ≠ ${iso(got.last_seen)}`);
  if (!sameTime(want.resolved_at, got.resolved_at))
    diffs.push(`resolved_at ${isoOrNull(want.resolved_at)} ≠ ${isoOrNull(got.resolved_at)}`);
  return diffs;
}

function checkAlerts(input: HistoryInput, tenantId: string, committed: readonly number[], report: Report) {
  const model = replayTenant(input.records, tenantId, committed).rows;
  const actual = input.alerts.filter((a) => a.tenant_id === tenantId);
  const group = <T extends AlertRow>(rows: readonly T[]) => {
    const m = new Map<string, T[]>();
    for (const row of rows) {
      const list = m.get(row.fingerprint) ?? [];
      list.push(row);
      m.set(row.fingerprint, list);
    }
    for (const list of m.values()) list.sort(byIncident);
    return m;
  };
  const want = group(model);
  const got = group(actual);
  const lines: string[] = [];
  const involved = new Set<number>();
  const fingerprints = [...new Set([...want.keys(), ...got.keys()])].sort((x, y) => {
    const a = (want.get(x) ?? got.get(x))![0]!;
    const b = (want.get(y) ?? got.get(y))![0]!;
    return cmpStr(pairLabel(a), pairLabel(b)) || cmpStr(x, y);
  });
  for (const fp of fingerprints) {
    const w = want.get(fp) ?? [];
    const g = got.get(fp) ?? [];
    const label = pairLabel((w[0] ?? g[0])!);
    const fpLines: string[] = [];
    for (let k = 0; k < Math.max(w.length, g.length); k++) {
      const a = w[k];
      const b = g[k];
      if (a && b) {
        const diffs = rowDifferences(a, b);
        if (diffs.length > 0) fpLines.push(`${label} incident ${k + 1}: want ≠ got: ${diffs.join("; ")}`);
      } else if (a) {
        fpLines.push(`${label} incident ${k + 1}: missing row ${describeRow(a)}`);
      } else if (b) {
        fpLines.push(`${label} incident ${k + 1}: unexpected row ${describeRow(b)}`);
      }
    }
    if (fpLines.length > 0) {
      lines.push(...fpLines);
      for (const row of w) for (const i of row.writers) involved.add(i);
    }
  }
  if (lines.length === 0) return;
  report(
    "d",
    "alerts-differ",
    `alerts in PostgreSQL differ from one healthy evaluator replaying the ${committed.length} committed ` +
      `evaluations in seq order (want = replay, got = database):\n  ${lines.join("\n  ")}`,
    involved.size > 0 ? { records: [...involved] } : {},
  );
}

/**
 * (d) for the outbox: the tenant's `alert_events` rows are exactly the replay's, matched by
 * (seq, rule, device, kind) with their severity, so an event of a refused (stale or duplicate)
 * evaluation, a missing one, or one stamped with another evaluation's seq all show; and the ids of
 * the tenant's events rise with the seq (evaluations of a tenant commit one after another).
 */
function checkAlertEvents(
  input: HistoryInput,
  tenantId: string,
  committed: readonly number[],
  report: Report,
) {
  const model = replayTenant(input.records, tenantId, committed).events;
  const actual = (input.alertEvents ?? []).filter((e) => e.tenant_id === tenantId);
  const key = (e: {
    seq: number;
    rule_id: string;
    device_id: string | null;
    kind: string;
    severity: string;
  }) => `seq ${e.seq} ${e.rule_id}/${e.device_id ?? "-"} ${e.kind} ${e.severity}`;
  const want = new Map<string, ModelEvent[]>();
  for (const e of model) want.set(key(e), [...(want.get(key(e)) ?? []), e]);
  const got = new Map<string, AlertEventRow[]>();
  for (const e of actual) got.set(key(e), [...(got.get(key(e)) ?? []), e]);
  const lines: string[] = [];
  const involved = new Set<number>();
  for (const k of [...new Set([...want.keys(), ...got.keys()])].sort()) {
    const w = want.get(k) ?? [];
    const g = got.get(k) ?? [];
    if (w.length === g.length) continue;
    lines.push(
      w.length > g.length
        ? `missing event ${k} (want ${w.length}, got ${g.length})`
        : `unexpected event ${k} (want ${w.length}, got ${g.length}: ids ${g.map((e) => e.id).join(", ")})`,
    );
    for (const e of w) involved.add(e.writer);
  }
  const bySeq = [...actual].sort((x, y) => x.seq - y.seq || x.id - y.id);
  for (let k = 1; k < bySeq.length; k++) {
    const prev = bySeq[k - 1]!;
    const cur = bySeq[k]!;
    if (cur.id <= prev.id)
      lines.push(`event id ${cur.id} (seq ${cur.seq}) is not above id ${prev.id} (seq ${prev.seq})`);
  }
  if (lines.length === 0) return;
  report(
    "d",
    "alert-events-differ",
    `alert_events differ from one healthy evaluator replaying the ${committed.length} committed ` +
      `evaluations in seq order:\n  ${lines.join("\n  ")}`,
    involved.size > 0 ? { records: [...involved] } : {},
  );
}

// ---------------------------------------------------------------------------------------------
// Interleavings and formatting
// ---------------------------------------------------------------------------------------------

interface TimelineEntry {
  readonly at: number;
  /** Events sort before records at the same time (they usually cause what follows). */
  readonly rank: number;
  readonly order: number;
  readonly record: number | null;
  readonly text: string;
}

function buildTimeline(records: readonly EvaluationRecord[], t: TenantHistory): TimelineEntry[] {
  const entries: TimelineEntry[] = [];
  for (const [k, e] of t.events.entries()) {
    entries.push({ at: e.at, rank: 0, order: k, record: null, text: `${iso(e.at)}  ${e.kind}: ${e.detail}` });
  }
  for (const i of t.recordIdx) {
    const r = records[i]!;
    entries.push({ at: r.now, rank: 1, order: i, record: i, text: `${iso(r.now)}  ${describeRecord(r)}` });
  }
  return entries.sort((x, y) => x.at - y.at || x.rank - y.rank || x.order - y.order);
}

/** The timeline around `focus`, `context` entries each side; `>` marks the involved records. */
function interleaving(timeline: readonly TimelineEntry[], focus: Focus, context: number): string[] {
  if (timeline.length === 0) return [];
  const marked = new Set(focus.records ?? []);
  const inFocus: number[] = [];
  timeline.forEach((e, k) => {
    const inRange =
      focus.from !== undefined && focus.to !== undefined && e.at >= focus.from && e.at <= focus.to;
    if ((e.record !== null && marked.has(e.record)) || inRange) inFocus.push(k);
  });
  let lo: number;
  let hi: number;
  if (inFocus.length > 0) {
    lo = inFocus[0]!;
    hi = inFocus.at(-1)!;
  } else if (focus.from !== undefined) {
    // Nothing at the focused time: show what surrounds it.
    const at = timeline.findIndex((e) => e.at > focus.from!);
    lo = at < 0 ? timeline.length : at;
    hi = lo - 1;
  } else {
    lo = timeline.length;
    hi = timeline.length - 1;
  }
  const from = Math.max(0, lo - context);
  const to = Math.min(timeline.length - 1, hi + context);
  const lines: string[] = [];
  if (from > 0) lines.push(`  … ${from} earlier`);
  for (let k = from; k <= to; k++) {
    const e = timeline[k]!;
    lines.push(`${e.record !== null && marked.has(e.record) ? ">" : " "} ${e.text}`);
  }
  if (to < timeline.length - 1) lines.push(`  … ${timeline.length - 1 - to} later`);
  return lines;
}

/**
 * Violations as text for a test failure: each with its invariant, tenant, message and interleaving.
 * @param limit at most this many are printed (default 20); the rest are counted
 */
export function formatViolations(violations: readonly Violation[], limit = 20): string {
  if (violations.length === 0) return "no violations";
  const parts = violations
    .slice(0, limit)
    .map(
      (v, k) =>
        `${k + 1}. (${v.invariant}) ${v.check} — tenant ${v.tenantId}\n   ${v.message.replaceAll("\n", "\n   ")}\n` +
        v.interleaving.map((l) => `     ${l}`).join("\n"),
    );
  const more = violations.length > limit ? `\n… and ${violations.length - limit} more` : "";
  return `${violations.length} violation(s):\n${parts.join("\n")}${more}`;
}

function iso(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

function isoOrNull(ms: number | null): string {
  return ms === null ? "null" : iso(ms);
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function pairLabel(row: AlertRow): string {
  return `${row.rule_id}/${row.device_id ?? "-"}`;
}

function describeReading(r: Pick<Reading, "deviceId" | "metric" | "ts" | "value">): string {
  return `${r.deviceId}/${r.metric}@${iso(r.ts)}=${r.value}`;
}

function describeRow(row: AlertRow): string {
  const resolved = row.resolved_at === null ? "" : ` resolved_at ${iso(row.resolved_at)}`;
  return (
    `${row.state} ${row.severity} first_seen ${iso(row.first_seen)} last_seen ${iso(row.last_seen)}` +
    `${resolved} occurrences ${row.occurrences} value ${row.value}`
  );
}

function describeRecordShort(r: EvaluationRecord): string {
  return `${r.evaluator} seq ${r.loadedSeq} ${r.outcome} @${iso(r.now)}`;
}

function describeRecord(r: EvaluationRecord): string {
  const fence = r.outcome === "committed" ? `seq ${r.loadedSeq}→${r.loadedSeq + 1}` : `seq ${r.loadedSeq}`;
  const shown = r.readings.slice(0, MAX_READINGS_SHOWN).map((x) => `${x.deviceId}/${x.metric}=${x.value}`);
  if (r.readings.length > MAX_READINGS_SHOWN) shown.push("…");
  const readings = shown.join(" ");
  return (
    `${r.evaluator} ${fence} ${r.outcome} slot ${r.slot} state ${r.stateSource} ` +
    `readings ${r.readings.length}${readings === "" ? "" : ` [${readings}]`}`
  );
}
