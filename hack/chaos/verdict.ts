/**
 * The verdict of a chaos run: what the system did (fence observations, alert rows and events, the
 * telemetry table, the final assignment), judged against what the telemetry schedule
 * (`telemetry.ts`) and the timeline's outages (`scenario.ts`) say it must have done:
 *
 * - `duplicate-alerts`: two rows of one fingerprint open at once, two `fired` events of one
 *   (tenant, rule, device) with no `resolved` between them, or two rows for one high episode;
 * - `missed-evaluations`: a tenant that got telemetry went longer than `maxGapMs` without an
 *   evaluation, outside every outage (Prometheus stops excepted: they only blind the autoscaler);
 * - `fence-regressed`: a tenant's fence seq went back, or its tick time did;
 * - `expected-alerts`: a high episode outside outages with no alert (`missed-alert`), a late one
 *   (`late-alert`), or an alert not resolved in time by the first low reading (`late-resolve`) or
 *   resolved before it (`early-resolve`);
 * - `unjustified-alerts`: an alert no high episode explains;
 * - `assignment`: a tenant without a valid shard, or shards without a running evaluator;
 * - `lost-rows`: acknowledged readings missing from `telemetry`, alert rows seen during the run
 *   missing at the end.
 *
 * Pure: no I/O, no clock. The result is plain JSON (the run's report).
 */
import type { Scenario } from "./scenario.ts";
import {
  episodes,
  RULE,
  deviceId as seededDeviceId,
  tenantId as seededTenantId,
  THRESHOLD,
} from "./telemetry.ts";

/** A time interval, epoch ms. */
export interface OutageInterval {
  readonly kind: string;
  readonly fromMs: number;
  readonly toMs: number;
  /** A killed, paused or skewed evaluator's shard: it excuses only the tenants that shard evaluated around it. */
  readonly shard?: number;
}

/** An `alerts` row at the end of the run, times in epoch ms. */
export interface AlertObservation {
  readonly id: number;
  readonly tenantId: string;
  readonly ruleId: string;
  readonly deviceId: string;
  readonly fingerprint: string;
  readonly state: "open" | "resolved";
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
  readonly resolvedAtMs: number | null;
}

/** One process's resource use over the run. */
export interface ResourceUse {
  /** e.g. `operator`, `evaluator shard-1 #2` (each incarnation its own row), `postgres`. */
  readonly process: string;
  /** e.g. `operator`, `evaluator`, `postgres`, `valkey`, `prometheus`. */
  readonly kind: string;
  readonly peakRssBytes: number;
  readonly cpuSeconds: number;
}

/** An interval during which a tenant received readings. */
export interface ActiveInterval {
  readonly tenantId: string;
  readonly fromMs: number;
  readonly toMs: number;
}

/** A reading the generator inserted and PostgreSQL acknowledged. */
export interface InsertedReadingRow {
  readonly tenantId: string;
  readonly deviceId: string;
  readonly ts: number;
  readonly value: number;
}

/** A reading found in the `telemetry` table at the end. */
export interface StoredReadingRow {
  readonly tenantId: string;
  readonly deviceId: string;
  readonly ts: number;
}

/** A change of a tenant's `tenant_fences` row, as a poll saw it. */
export interface FenceObservation {
  readonly tenantId: string;
  readonly seq: number;
  /** The tick time of the evaluation that moved the fence to `seq`. */
  readonly evalMs: number;
  readonly evaluator: string;
  readonly observedAtMs: number;
}

/** An `alert_events` row. */
export interface AlertEventRow {
  readonly id: number;
  readonly tenantId: string;
  readonly ruleId: string;
  readonly deviceId: string | null;
  readonly kind: string;
  readonly seq: number;
}

/**
 * Everything the verdict judges; all times are epoch ms. The lists are plain arrays so a run can
 * fill them as it goes; the verdict never changes them.
 */
export interface VerdictInput {
  readonly scenario: Scenario;
  readonly runStartMs: number;
  readonly runEndMs: number;
  readonly bounds: { readonly maxGapMs: number; readonly alertLatencyMs: number };
  /** The timeline's outages (`outageIntervals`), shifted by the run's start. */
  readonly outages: OutageInterval[];
  /** When each tenant received readings (a tenant may have several intervals). */
  readonly activeTenants: ActiveInterval[];
  readonly insertedReadings: InsertedReadingRow[];
  /** Readings in the `telemetry` table at the end (of the same tenants). */
  readonly storedReadings: StoredReadingRow[];
  /** `tenant_fences` polled about once a second: one entry per change of seq seen. */
  readonly fenceObservations: FenceObservation[];
  /** `alerts` rows at the end. */
  readonly alerts: AlertObservation[];
  /** Alert ids seen by polls during the run (a row seen then but missing at the end was lost). */
  readonly alertIdsSeen: number[];
  /** `alert_events` rows, in id order. */
  readonly alertEvents: AlertEventRow[];
  /** At the end: each tenant's shard_index, the set's shard count, the shards with a running evaluator. */
  readonly assignment: {
    readonly tenants: { readonly tenantId: string; readonly shardIndex: number | null }[];
    readonly shardCount: number;
    readonly runningShards: number[];
  };
  readonly resources: ResourceUse[];
}

/** The checks, in report order. */
export const CHECKS = [
  "duplicate-alerts",
  "missed-evaluations",
  "fence-regressed",
  "expected-alerts",
  "unjustified-alerts",
  "assignment",
  "lost-rows",
] as const;

export type CheckName = (typeof CHECKS)[number];

/** One thing the run got wrong. */
export interface Violation {
  /** What went wrong within the check, e.g. `missed-alert`, `late-alert`. */
  readonly kind: string;
  /** One line naming the tenant/device and the times (`t+12.5s`: from the run's start). */
  readonly message: string;
  /** The same as data (epoch ms). */
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface CheckResult {
  readonly name: CheckName;
  /** Every violation found (`violations` keeps at most {@link MAX_KEPT_VIOLATIONS} of them). */
  readonly count: number;
  readonly violations: readonly Violation[];
}

export interface ResourceTotal {
  readonly kind: string;
  readonly processes: number;
  /** The highest peak of one process of the kind (incarnations do not run at once). */
  readonly peakRssBytes: number;
  readonly cpuSeconds: number;
}

/**
 * Counts of what the run did, every one a number (a type, not an interface, so it reads as a
 * `Record<string, number>` too).
 */
export type VerdictSummary = {
  readonly durationSeconds: number;
  readonly tenants: number;
  /** Tenants that received telemetry at some time. */
  readonly activeTenants: number;
  /** (tenant, device) pairs with readings. */
  readonly devices: number;
  /** Readings inserted (acknowledged). */
  readonly readings: number;
  readonly storedReadings: number;
  /** Inserted readings on the other side of the threshold than the schedule says (0 unless the generator is wrong). */
  readonly offScheduleReadings: number;
  /** Committed evaluations seen during the run (seq advance between each tenant's first and last observation). */
  readonly evaluations: number;
  readonly fenceObservations: number;
  /** High episodes judged. */
  readonly episodesChecked: number;
  /** High episodes excused: overlapping an outage, or too close to the end to judge. */
  readonly episodesExcused: number;
  /** Alert rows. */
  readonly alerts: number;
  readonly openAlerts: number;
  readonly events: number;
  readonly outages: number;
};

export interface Verdict {
  /** No check has a violation. */
  readonly ok: boolean;
  /** The scenario's name. */
  readonly scenario: string;
  readonly checks: readonly CheckResult[];
  readonly summary: VerdictSummary;
  readonly resources: {
    readonly processes: readonly ResourceUse[];
    readonly totals: readonly ResourceTotal[];
  };
}

/** Violations kept per check, so a badly broken run still gives a report of sane size. */
export const MAX_KEPT_VIOLATIONS = 1000;
/** Example lines per failing check in {@link formatVerdict}. */
const MAX_EXAMPLES = 10;

type Report = (check: CheckName, kind: string, message: string, detail: Record<string, unknown>) => void;
/** The first outage that overlaps [fromMs, toMs] and excuses `tenant` (every tenant when omitted). */
type Excuse = (fromMs: number, toMs: number, tenant?: string) => OutageInterval | undefined;

interface Context {
  readonly input: VerdictInput;
  readonly report: Report;
  /** The first outage (Prometheus stops aside) that overlaps [fromMs, toMs]. */
  readonly excuse: Excuse;
  /** `t+12.5s`. */
  readonly at: (ms: number) => string;
  /** The fence observations of each tenant, in input order (grouped once; readers sort copies). */
  readonly fencesByTenant: ReadonlyMap<string, readonly FenceObservation[]>;
}

/** Judges one chaos run (see the module comment). */
export function computeVerdict(input: VerdictInput): Verdict {
  const results = new Map<CheckName, { count: number; violations: Violation[] }>(
    CHECKS.map((name) => [name, { count: 0, violations: [] }]),
  );
  const report: Report = (check, kind, message, detail) => {
    const r = results.get(check)!;
    r.count++;
    if (r.violations.length < MAX_KEPT_VIOLATIONS)
      r.violations.push({ kind, message, detail: { kind, ...detail } });
  };
  // Prometheus being down only blinds the autoscaler, and Valkey being down only makes the
  // evaluators rebuild their state from PostgreSQL: evaluations and alerts must go on as usual.
  const excusing = input.outages.filter((o) => o.kind !== "prometheus" && o.kind !== "valkey");
  // A shard's outage excuses the tenants that shard evaluated from a gap before it to a gap after
  // it (the evaluator token names the shard: `<set>#<shard>#<host>#<random>`).
  const fencesByTenant = groupBy(input.fenceObservations, (o) => o.tenantId);
  const reach = input.bounds.maxGapMs;
  const concerns = (o: OutageInterval, tenant: string | undefined) =>
    o.shard === undefined ||
    tenant === undefined ||
    (fencesByTenant.get(tenant) ?? []).some(
      (e) =>
        Number(e.evaluator.split("#")[1]) === o.shard &&
        e.observedAtMs >= o.fromMs - reach &&
        e.observedAtMs <= o.toMs + reach,
    );
  const excuse: Excuse = (fromMs, toMs, tenant) =>
    excusing.find((o) => o.fromMs <= toMs && o.toMs >= fromMs && concerns(o, tenant));
  const at = (ms: number) => relative(ms, input.runStartMs);
  const ctx: Context = { input, report, excuse, at, fencesByTenant };

  const inserted = groupReadings(input);
  const episodeCounts = checkAlerts(ctx, inserted);
  checkDuplicateRows(ctx);
  checkFiredEvents(ctx);
  const evaluations = checkEvaluations(ctx);
  checkFences(ctx);
  checkAssignment(ctx);
  checkLostRows(ctx, inserted);

  const checks: CheckResult[] = CHECKS.map((name) => ({ name, ...results.get(name)! }));
  const { scenario } = input;
  const summary: VerdictSummary = {
    durationSeconds: (input.runEndMs - input.runStartMs) / 1000,
    tenants: scenario.tenants,
    activeTenants: new Set(input.activeTenants.map((a) => a.tenantId)).size,
    devices: [...inserted.values()].reduce((n, devices) => n + devices.size, 0),
    readings: input.insertedReadings.length,
    storedReadings: input.storedReadings.length,
    offScheduleReadings: episodeCounts.offSchedule,
    evaluations,
    fenceObservations: input.fenceObservations.length,
    episodesChecked: episodeCounts.checked,
    episodesExcused: episodeCounts.excused,
    alerts: input.alerts.length,
    openAlerts: input.alerts.filter((a) => a.state === "open").length,
    events: input.alertEvents.length,
    outages: input.outages.length,
  };
  return {
    ok: checks.every((c) => c.count === 0),
    scenario: scenario.name,
    checks,
    summary,
    resources: resourceTables(input.resources),
  };
}

// --- readings --------------------------------------------------------------------------------

interface InsertedReading {
  readonly ts: number;
  readonly value: number;
}

/** tenant → device → inserted readings, by ts, one per ts. */
type InsertedIndex = Map<string, Map<string, InsertedReading[]>>;

function groupReadings(input: VerdictInput): InsertedIndex {
  const index: InsertedIndex = new Map();
  for (const r of input.insertedReadings) {
    let devices = index.get(r.tenantId);
    if (!devices) {
      devices = new Map();
      index.set(r.tenantId, devices);
    }
    const list = devices.get(r.deviceId);
    if (list) list.push({ ts: r.ts, value: r.value });
    else devices.set(r.deviceId, [{ ts: r.ts, value: r.value }]);
  }
  for (const devices of index.values()) {
    for (const [device, list] of devices) {
      list.sort((a, b) => a.ts - b.ts);
      // A reading inserted twice (a retried insert) is one row (the primary key).
      devices.set(
        device,
        list.filter((r, i) => i === 0 || r.ts !== list[i - 1]!.ts),
      );
    }
  }
  return index;
}

// --- expected and unjustified alerts ---------------------------------------------------------

/**
 * A run of high readings as the evaluator saw them: consecutive in the inserted readings of the
 * device (slots the tenant got no telemetry in are skipped: the evaluator saw nothing there, so
 * an alert stays open across them).
 */
interface ObservedEpisode {
  readonly startTs: number;
  readonly lastHighTs: number;
  /** The first low reading after it; null: none was inserted. */
  readonly endTs: number | null;
  readonly alerts: AlertObservation[];
}

function observedEpisodes(
  tenant: string,
  device: string,
  readings: readonly InsertedReading[],
  runStartMs: number,
  readingMs: number,
): { episodes: ObservedEpisode[]; offSchedule: number } {
  const slotOf = (ts: number) => Math.round((ts - runStartMs) / readingMs);
  const out: ObservedEpisode[] = [];
  const last = readings.at(-1);
  if (!last || slotOf(last.ts) < 0) return { episodes: out, offSchedule: 0 };
  const highs = episodes(tenant, device, Math.max(0, slotOf(readings[0]!.ts)), slotOf(last.ts) + 1);
  let h = 0;
  let open: { startTs: number; lastHighTs: number } | null = null;
  let offSchedule = 0;
  for (const r of readings) {
    const slot = slotOf(r.ts);
    if (slot < 0) continue;
    while (h < highs.length && highs[h]!.endSlot <= slot) h++;
    const high = h < highs.length && highs[h]!.startSlot <= slot;
    if (high !== r.value > THRESHOLD) offSchedule++;
    if (high) {
      if (open) open.lastHighTs = r.ts;
      else open = { startTs: r.ts, lastHighTs: r.ts };
    } else if (open) {
      out.push({ ...open, endTs: r.ts, alerts: [] });
      open = null;
    }
  }
  if (open) out.push({ ...open, endTs: null, alerts: [] });
  return { episodes: out, offSchedule };
}

function checkAlerts(
  ctx: Context,
  inserted: InsertedIndex,
): { checked: number; excused: number; offSchedule: number } {
  // For a failing episode's report: the tenant's evaluations around it (what was judged when).
  const { fencesByTenant } = ctx;
  const evaluationsAround = (tenant: string, ep: ObservedEpisode) => {
    const from = ep.startTs - 2 * ctx.input.scenario.tickSeconds * 1000;
    const to = (ep.endTs ?? ctx.input.runEndMs) + ctx.input.bounds.alertLatencyMs;
    return (fencesByTenant.get(tenant) ?? []).filter((o) => o.observedAtMs >= from && o.observedAtMs <= to);
  };
  const { input, report, excuse, at } = ctx;
  const { scenario, runStartMs, runEndMs } = input;
  const latency = input.bounds.alertLatencyMs;
  // A tick's time is when it started; it may read a reading inserted moments later, so an alert's
  // first_seen may precede its first high reading by up to the time a tick takes to read.
  const earlyMs = (scenario.tickSeconds * 1000) / 2;
  const skewTolerance = skewToleranceFor(input);
  const tenants = new Set(Array.from({ length: scenario.tenants }, (_, i) => seededTenantId(i)));
  const devices = new Set(Array.from({ length: scenario.devicesPerTenant }, (_, j) => seededDeviceId(j)));

  const alertsByDevice = new Map<string, AlertObservation[]>();
  for (const a of input.alerts) {
    if (a.ruleId !== RULE.id || !tenants.has(a.tenantId) || !devices.has(a.deviceId)) {
      report(
        "unjustified-alerts",
        "not-in-schedule",
        `${a.tenantId}/${a.deviceId}: alert #${a.id} of rule ${a.ruleId} at ${at(a.firstSeenMs)}: no such tenant, device or rule in the schedule`,
        { alert: a },
      );
      continue;
    }
    const key = deviceKey(a.tenantId, a.deviceId);
    const list = alertsByDevice.get(key);
    if (list) list.push(a);
    else alertsByDevice.set(key, [a]);
  }

  const pairs = new Map<string, { tenant: string; device: string }>();
  for (const [tenant, byDevice] of inserted) {
    for (const device of byDevice.keys()) pairs.set(deviceKey(tenant, device), { tenant, device });
  }
  for (const a of input.alerts) {
    const key = deviceKey(a.tenantId, a.deviceId);
    if (alertsByDevice.has(key)) pairs.set(key, { tenant: a.tenantId, device: a.deviceId });
  }

  let checked = 0;
  let excused = 0;
  let offSchedule = 0;
  for (const key of [...pairs.keys()].sort()) {
    const { tenant, device } = pairs.get(key)!;
    const name = `${tenant}/${device}`;
    const readings = inserted.get(tenant)?.get(device) ?? [];
    const observed = observedEpisodes(tenant, device, readings, runStartMs, scenario.readingSeconds * 1000);
    offSchedule += observed.offSchedule;
    const eps = observed.episodes;

    // Each alert belongs to the latest episode that began before it fired. A clock running behind
    // stamps first_seen early (so an episode may begin up to that skew after it), one running ahead
    // stamps it late (so it may come up to that skew after the episode's window); an alert resolved
    // before an episode began is an earlier episode's whatever its first_seen says.
    const alerts = [...(alertsByDevice.get(key) ?? [])].sort(
      (a, b) => a.firstSeenMs - b.firstSeenMs || a.id - b.id,
    );
    for (const a of alerts) {
      const { behind, ahead } = skewTolerance(a.firstSeenMs);
      let k = eps.findLastIndex((x) => x.startTs - earlyMs - behind <= a.firstSeenMs);
      while (k > 0 && a.resolvedAtMs !== null && a.resolvedAtMs < eps[k]!.startTs - earlyMs) k--;
      const ep = k >= 0 ? eps[k]! : undefined;
      if (ep && a.firstSeenMs <= (ep.endTs ?? runEndMs) + latency + ahead) {
        ep.alerts.push(a);
        continue;
      }
      report(
        "unjustified-alerts",
        "no-episode",
        ep
          ? `${name}: alert #${a.id} fired at ${at(a.firstSeenMs)}, after the high episode of ${at(ep.startTs)}–${at(ep.endTs ?? runEndMs)} ended (+${latency / 1000}s)`
          : `${name}: alert #${a.id} fired at ${at(a.firstSeenMs)}, before any high reading`,
        { tenantId: tenant, deviceId: device, alert: a, episode: ep ? episodeDetail(ep) : null },
      );
    }

    for (const ep of eps) {
      const end = ep.endTs ?? runEndMs;
      const span = `high ${at(ep.startTs)}–${at(end)}`;
      if (ep.alerts.length > 1) {
        report(
          "duplicate-alerts",
          "episode-rows",
          `${name}: ${ep.alerts.length} alert rows (#${ep.alerts.map((a) => a.id).join(", #")}) for one high episode (${span})`,
          {
            tenantId: tenant,
            deviceId: device,
            episode: episodeDetail(ep),
            evaluations: evaluationsAround(tenant, ep),
          },
        );
      }
      const outage = excuse(ep.startTs, end, tenant);
      const judgeable = ep.startTs + latency <= runEndMs;
      if (outage || !judgeable) excused++;
      else checked++;
      const first = ep.alerts[0];
      if (!outage && judgeable) {
        if (!first) {
          report("expected-alerts", "missed-alert", `${name}: no alert for the high episode ${span}`, {
            tenantId: tenant,
            deviceId: device,
            episode: episodeDetail(ep),
            evaluations: evaluationsAround(tenant, ep),
          });
        } else if (first.firstSeenMs > ep.startTs + latency) {
          report(
            "expected-alerts",
            "late-alert",
            `${name}: alert #${first.id} fired at ${at(first.firstSeenMs)}, ${(first.firstSeenMs - ep.startTs) / 1000}s after the episode began at ${at(ep.startTs)} (bound ${latency / 1000}s)`,
            {
              tenantId: tenant,
              deviceId: device,
              episode: episodeDetail(ep),
              evaluations: evaluationsAround(tenant, ep),
            },
          );
        }
      }
      // The row open when the low reading came is the one that must resolve.
      const last = ep.alerts.at(-1);
      if (!last) continue;
      if (
        ep.endTs !== null &&
        ep.endTs + latency <= runEndMs &&
        !excuse(ep.endTs, ep.endTs + latency, tenant)
      ) {
        if (last.resolvedAtMs === null || last.resolvedAtMs > ep.endTs + latency) {
          report(
            "expected-alerts",
            "late-resolve",
            `${name}: alert #${last.id} ${last.resolvedAtMs === null ? "never resolved" : `resolved at ${at(last.resolvedAtMs)}`}; first low reading at ${at(ep.endTs)} (bound ${latency / 1000}s)`,
            {
              tenantId: tenant,
              deviceId: device,
              alert: last,
              episode: episodeDetail(ep),
              evaluations: evaluationsAround(tenant, ep),
            },
          );
        }
      }
      const resolved = last.resolvedAtMs;
      if (
        resolved !== null &&
        resolved < (ep.endTs ?? Number.POSITIVE_INFINITY) - earlyMs &&
        !excuse(resolved, ep.endTs ?? runEndMs, tenant)
      ) {
        report(
          "expected-alerts",
          "early-resolve",
          `${name}: alert #${last.id} resolved at ${at(resolved)}, ${ep.endTs === null ? "with no low reading after its episode" : `before the first low reading at ${at(ep.endTs)}`}`,
          {
            tenantId: tenant,
            deviceId: device,
            alert: last,
            episode: episodeDetail(ep),
            evaluations: evaluationsAround(tenant, ep),
          },
        );
      }
    }
  }
  return { checked, excused, offSchedule };
}

/**
 * Near a skew or a pause, how far an evaluator's tick times may run behind and ahead of the
 * readings they judge (ms, both ≥ 0); elsewhere 0 and 0. A skewed clock is off by its skew either
 * way. A tick's time is when it started: an evaluator paused mid-tick reads, once resumed, readings
 * newer than that time and stamps them with it, so its alerts may come up to the pause early.
 */
function skewToleranceFor(input: VerdictInput): (ms: number) => { behind: number; ahead: number } {
  const seconds = (kind: "skew" | "pause") =>
    input.scenario.timeline.flatMap((a) => (a.kind === kind ? [a.seconds * 1000] : []));
  const pauseBehind = Math.max(0, ...seconds("pause"));
  const skewBehind = Math.max(0, ...seconds("skew").map((s) => -s));
  const skewAhead = Math.max(0, ...seconds("skew"));
  const spans = input.outages.flatMap((o) =>
    o.kind === "pause"
      ? [{ from: o.fromMs, to: o.toMs, behind: pauseBehind, ahead: 0 }]
      : o.kind === "skew"
        ? [{ from: o.fromMs, to: o.toMs, behind: skewBehind, ahead: skewAhead }]
        : [],
  );
  return (ms) => {
    let behind = 0;
    let ahead = 0;
    for (const s of spans) {
      const reach = Math.max(s.behind, s.ahead);
      if (s.from <= ms + reach && s.to >= ms - reach) {
        behind = Math.max(behind, s.behind);
        ahead = Math.max(ahead, s.ahead);
      }
    }
    return { behind, ahead };
  };
}

function episodeDetail(ep: ObservedEpisode): Record<string, unknown> {
  return {
    startTs: ep.startTs,
    lastHighTs: ep.lastHighTs,
    endTs: ep.endTs,
    alertIds: ep.alerts.map((a) => a.id),
    alerts: ep.alerts,
  };
}

// --- duplicates ------------------------------------------------------------------------------

/** Two rows of one fingerprint whose [first_seen, resolved_at ?? ∞) overlap. */
function checkDuplicateRows({ input, report, at }: Context): void {
  const byFingerprint = new Map<string, AlertObservation[]>();
  for (const a of input.alerts) {
    const list = byFingerprint.get(a.fingerprint);
    if (list) list.push(a);
    else byFingerprint.set(a.fingerprint, [a]);
  }
  for (const [fingerprint, rows] of byFingerprint) {
    rows.sort((a, b) => a.firstSeenMs - b.firstSeenMs || a.id - b.id);
    // The row reaching furthest so far: any later row starting before its end overlaps it.
    let reach: AlertObservation | undefined;
    for (const row of rows) {
      const reachEnd = reach ? (reach.resolvedAtMs ?? Number.POSITIVE_INFINITY) : Number.NEGATIVE_INFINITY;
      if (reach && row.firstSeenMs < reachEnd) {
        report(
          "duplicate-alerts",
          "overlapping-rows",
          `${row.tenantId}/${row.deviceId}: alert rows #${reach.id} (${at(reach.firstSeenMs)}–${reach.resolvedAtMs === null ? "open" : at(reach.resolvedAtMs)}) and #${row.id} (from ${at(row.firstSeenMs)}) of rule ${row.ruleId} overlap`,
          { fingerprint, rows: [reach, row] },
        );
      }
      if ((row.resolvedAtMs ?? Number.POSITIVE_INFINITY) > reachEnd) reach = row;
    }
  }
}

/** Two `fired` events of one (tenant, rule, device) with no `resolved` between them, in id order. */
function checkFiredEvents({ input, report }: Context): void {
  const open = new Map<string, number>();
  const events = [...input.alertEvents].sort((a, b) => a.id - b.id);
  for (const ev of events) {
    const key = JSON.stringify([ev.tenantId, ev.ruleId, ev.deviceId]);
    if (ev.kind === "resolved") {
      open.delete(key);
    } else if (ev.kind === "fired") {
      const previous = open.get(key);
      if (previous !== undefined) {
        report(
          "duplicate-alerts",
          "fired-twice",
          `${ev.tenantId}/${ev.deviceId ?? "-"}: rule ${ev.ruleId} fired twice (events #${previous} and #${ev.id}, seq ${ev.seq}) with no resolve between`,
          { tenantId: ev.tenantId, ruleId: ev.ruleId, deviceId: ev.deviceId, eventIds: [previous, ev.id] },
        );
      }
      open.set(key, ev.id);
    }
  }
}

// --- evaluations -----------------------------------------------------------------------------

/**
 * Per tenant that got telemetry: from its activation (or the run's start) plus a grace of
 * `maxGapMs`, to the run's end, no gap between observed evaluations longer than `maxGapMs`
 * outside outages. A gap across which the seq advanced by more than one is no violation: the
 * evaluations between happened, the once-a-second poll just missed them. Returns the number of
 * evaluations seen.
 */
function checkEvaluations({ input, report, excuse, at, fencesByTenant }: Context): number {
  const maxGap = input.bounds.maxGapMs;
  const byTenant = new Map(
    [...fencesByTenant].map(([tenant, obs]) => [
      tenant,
      [...obs].sort((a, b) => a.seq - b.seq || a.observedAtMs - b.observedAtMs),
    ]),
  );
  let evaluations = 0;
  for (const obs of byTenant.values()) evaluations += obs.at(-1)!.seq - obs[0]!.seq;

  const activation = new Map<string, number>();
  for (const a of input.activeTenants) {
    activation.set(a.tenantId, Math.min(activation.get(a.tenantId) ?? Number.POSITIVE_INFINITY, a.fromMs));
  }
  for (const [tenant, activeFromMs] of [...activation].sort(([a], [b]) => cmp(a, b))) {
    const from = Math.max(input.runStartMs, activeFromMs) + maxGap;
    const obs = byTenant.get(tenant) ?? [];
    const gap = (
      kind: string,
      fromMs: number,
      toMs: number,
      what: string,
      detail: Record<string, unknown>,
    ) => {
      if (toMs - fromMs <= maxGap || excuse(fromMs, toMs, tenant)) return;
      report(
        "missed-evaluations",
        kind,
        `${tenant}: no evaluation for ${((toMs - fromMs) / 1000).toFixed(1)}s (${at(fromMs)}–${at(toMs)}) ${what}, outside outages (bound ${maxGap / 1000}s)`,
        { tenantId: tenant, fromMs, toMs, ...detail },
      );
    };
    const first = obs[0];
    const last = obs.at(-1);
    if (!first || !last) {
      gap("no-evaluation", from, input.runEndMs, "at all", {});
      continue;
    }
    gap("first-evaluation-late", from, first.evalMs, `before seq ${first.seq}`, { seq: first.seq });
    for (let i = 1; i < obs.length; i++) {
      const a = obs[i - 1]!;
      const b = obs[i]!;
      if (b.seq - a.seq !== 1 || b.evalMs <= from) continue;
      gap("gap", Math.max(a.evalMs, from), b.evalMs, `between seq ${a.seq} and ${b.seq}`, {
        seqs: [a.seq, b.seq],
        evaluators: [a.evaluator, b.evaluator],
      });
    }
    gap("no-evaluation-at-end", Math.max(last.evalMs, from), input.runEndMs, `after seq ${last.seq}`, {
      seq: last.seq,
    });
  }
  return evaluations;
}

/** Per tenant: seq only rises as polled, and the tick time never falls as the seq rises. */
function checkFences({ report, at, fencesByTenant }: Context): void {
  for (const [tenant, obs] of [...fencesByTenant].sort(([a], [b]) => cmp(a, b))) {
    const polled = [...obs].sort((a, b) => a.observedAtMs - b.observedAtMs);
    for (let i = 1; i < polled.length; i++) {
      const a = polled[i - 1]!;
      const b = polled[i]!;
      const detail = { tenantId: tenant, observations: [a, b] };
      if (b.seq < a.seq) {
        report(
          "fence-regressed",
          "seq-backwards",
          `${tenant}: fence seq went back from ${a.seq} to ${b.seq} (polled at ${at(a.observedAtMs)}, ${at(b.observedAtMs)})`,
          detail,
        );
      } else if (b.seq === a.seq && (b.evalMs !== a.evalMs || b.evaluator !== a.evaluator)) {
        report(
          "fence-regressed",
          "seq-rewritten",
          `${tenant}: fence seq ${a.seq} seen with two evaluations (${a.evaluator} at ${at(a.evalMs)}, ${b.evaluator} at ${at(b.evalMs)})`,
          detail,
        );
      }
    }
    const bySeq = [...obs].sort((a, b) => a.seq - b.seq || a.observedAtMs - b.observedAtMs);
    for (let i = 1; i < bySeq.length; i++) {
      const a = bySeq[i - 1]!;
      const b = bySeq[i]!;
      if (b.seq > a.seq && b.evalMs < a.evalMs) {
        report(
          "fence-regressed",
          "tick-time-backwards",
          `${tenant}: tick time went back from ${at(a.evalMs)} (seq ${a.seq}) to ${at(b.evalMs)} (seq ${b.seq})`,
          { tenantId: tenant, observations: [a, b] },
        );
      }
    }
  }
}

// --- assignment and lost rows ----------------------------------------------------------------

function checkAssignment({ input, report }: Context): void {
  const { tenants, shardCount, runningShards } = input.assignment;
  const shardOf = new Map(tenants.map((t) => [t.tenantId, t.shardIndex]));
  for (let i = 0; i < input.scenario.tenants; i++) {
    const tenant = seededTenantId(i);
    if (!shardOf.has(tenant)) {
      report("assignment", "tenant-missing", `${tenant}: not in the tenants table`, { tenantId: tenant });
      continue;
    }
    const shard = shardOf.get(tenant) ?? null;
    if (shard === null || !Number.isInteger(shard) || shard < 0 || shard >= shardCount) {
      report(
        "assignment",
        "bad-shard-index",
        `${tenant}: shard_index ${shard ?? "NULL"} is not a shard of ${shardCount}`,
        { tenantId: tenant, shardIndex: shard, shardCount },
      );
    }
  }
  const running = [...new Set(runningShards)].sort((a, b) => a - b);
  if (running.length !== shardCount) {
    report(
      "assignment",
      "shard-count",
      `the set has ${shardCount} shards but ${running.length} evaluators run (shards ${running.join(", ") || "none"})`,
      { shardCount, runningShards: running },
    );
  }
  for (let i = 0; i < shardCount; i++) {
    if (!running.includes(i)) {
      report("assignment", "shard-not-running", `shard ${i} of ${shardCount} has no running evaluator`, {
        shard: i,
        shardCount,
        runningShards: running,
      });
    }
  }
}

function checkLostRows({ input, report, at }: Context, inserted: InsertedIndex): void {
  const stored = new Map<string, Set<number>>();
  for (const r of input.storedReadings) {
    const key = deviceKey(r.tenantId, r.deviceId);
    const set = stored.get(key);
    if (set) set.add(Math.round(r.ts));
    else stored.set(key, new Set([Math.round(r.ts)]));
  }
  for (const [tenant, devices] of [...inserted].sort(([a], [b]) => cmp(a, b))) {
    for (const [device, readings] of [...devices].sort(([a], [b]) => cmp(a, b))) {
      const present = stored.get(deviceKey(tenant, device));
      for (const r of readings) {
        if (present?.has(Math.round(r.ts))) continue;
        report(
          "lost-rows",
          "reading-lost",
          `${tenant}/${device}: the reading at ${at(r.ts)} was acknowledged but is not in telemetry`,
          { tenantId: tenant, deviceId: device, ts: r.ts, value: r.value },
        );
      }
    }
  }
  const present = new Set(input.alerts.map((a) => a.id));
  for (const id of [...new Set(input.alertIdsSeen)].sort((a, b) => a - b)) {
    if (present.has(id)) continue;
    report("lost-rows", "alert-lost", `alert #${id} was seen during the run but is gone at the end`, {
      alertId: id,
    });
  }
}

// --- resources -------------------------------------------------------------------------------

function resourceTables(rows: readonly ResourceUse[]): Verdict["resources"] {
  const processes = [...rows].sort((a, b) => cmp(a.kind, b.kind) || cmp(a.process, b.process));
  const totals = new Map<
    string,
    { kind: string; processes: number; peakRssBytes: number; cpuSeconds: number }
  >();
  for (const r of processes) {
    const t = totals.get(r.kind) ?? { kind: r.kind, processes: 0, peakRssBytes: 0, cpuSeconds: 0 };
    t.processes++;
    t.peakRssBytes = Math.max(t.peakRssBytes, r.peakRssBytes);
    t.cpuSeconds += r.cpuSeconds;
    totals.set(r.kind, t);
  }
  return { processes, totals: [...totals.values()] };
}

// --- formatting ------------------------------------------------------------------------------

/**
 * The verdict for a terminal: one row per check (violations, PASS/FAIL), up to 10 example lines
 * per failing check, the summary counts, and the resource table (per process, then per kind).
 */
export function formatVerdict(v: Verdict): string {
  const s = v.summary;
  const lines: string[] = [
    `chaos verdict: ${v.ok ? "PASS" : "FAIL"} (${v.scenario}, ${s.durationSeconds}s)`,
    "",
    ...table(
      ["CHECK", "VIOLATIONS", "RESULT"],
      v.checks.map((c) => [c.name, String(c.count), c.count === 0 ? "PASS" : "FAIL"]),
      [false, true, false],
    ),
  ];
  for (const c of v.checks) {
    if (c.count === 0) continue;
    lines.push("", `${c.name} (${c.count}):`);
    for (const violation of c.violations.slice(0, MAX_EXAMPLES)) lines.push(`  ${violation.message}`);
    if (c.count > MAX_EXAMPLES) lines.push(`  … and ${c.count - MAX_EXAMPLES} more`);
  }
  lines.push(
    "",
    `tenants ${s.tenants} (${s.activeTenants} with telemetry), devices ${s.devices}, ` +
      `readings ${s.readings} inserted / ${s.storedReadings} stored` +
      (s.offScheduleReadings > 0 ? ` (${s.offScheduleReadings} off schedule)` : ""),
    `evaluations ${s.evaluations} (${s.fenceObservations} fence observations), ` +
      `high episodes ${s.episodesChecked} checked / ${s.episodesExcused} excused, ` +
      `alerts ${s.alerts} (${s.openAlerts} open), events ${s.events}, outages ${s.outages}`,
  );
  if (v.resources.processes.length > 0) {
    lines.push(
      "",
      ...table(
        ["PROCESS", "KIND", "PEAK RSS", "CPU"],
        [
          ...v.resources.processes.map((r) => [
            r.process,
            r.kind,
            mebibytes(r.peakRssBytes),
            seconds(r.cpuSeconds),
          ]),
          ...v.resources.totals.map((t) => [
            `all ${t.kind} (${t.processes})`,
            t.kind,
            mebibytes(t.peakRssBytes),
            seconds(t.cpuSeconds),
          ]),
        ],
        [false, false, true, true],
      ),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** A fixed-width table; `right[i]`: column i is right-aligned. */
function table(
  header: readonly string[],
  body: readonly (readonly string[])[],
  right: readonly boolean[],
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...body.map(line)];
}

function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function seconds(s: number): string {
  return `${s.toFixed(1)} s`;
}

// --- helpers ---------------------------------------------------------------------------------

/** `t+12.5s`: a time as an offset from the run's start. */
function relative(ms: number, runStartMs: number): string {
  const s = (ms - runStartMs) / 1000;
  return `t${s < 0 ? "-" : "+"}${Math.abs(s).toFixed(1)}s`;
}

function deviceKey(tenant: string, device: string): string {
  return `${tenant}\u0000${device}`;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
