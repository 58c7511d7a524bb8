import { describe, expect, it } from "vitest";
import { parseScenario, resolvedBounds } from "./scenario.ts";
import { deviceId, episodes, RULE, slotTs, THRESHOLD, tenantId, valueAt } from "./telemetry.ts";
import {
  type AlertObservation,
  CHECKS,
  computeVerdict,
  formatVerdict,
  type Verdict,
  type VerdictInput,
} from "./verdict.ts";

/** 4 tenants × 3 devices for 5 minutes; an alert is due within 15 s, an evaluation every 20 s. */
const SCENARIO = parseScenario(
  {
    name: "unit",
    tenants: 4,
    devicesPerTenant: 3,
    tickSeconds: 5,
    readingSeconds: 5,
    durationSeconds: 300,
    initialShards: 3,
    maxShards: 3,
    bounds: { alertLatencySeconds: 15 },
    timeline: [],
  },
  "unit.json",
);
const BOUNDS = resolvedBounds(SCENARIO);
const TICK = SCENARIO.tickSeconds * 1000;
const START = Date.UTC(2030, 0, 1);
const END = START + SCENARIO.durationSeconds * 1000;
const s = (seconds: number) => START + seconds * 1000;
/** Tenant 3 gets no telemetry in [100 s, 200 s): its alerts must stay open across the pause. */
const QUIET = { tenant: tenantId(3), fromMs: s(100), toMs: s(200) };

/**
 * What a perfect evaluator does with the schedule: every tenant evaluated every tick (at its own
 * offset within the tick), each tick judging the readings inserted since the previous one by the
 * latest of them; a fence observation per evaluation; an alert row and a `fired` event when the
 * latest is high and none is open, a resolve and a `resolved` event when it is low.
 */
function cleanHistory(): VerdictInput {
  const activeTenants: VerdictInput["activeTenants"] = [];
  const insertedReadings: VerdictInput["insertedReadings"] = [];
  const fenceObservations: VerdictInput["fenceObservations"] = [];
  const alerts: AlertObservation[] = [];
  const events: { at: number; tenantId: string; deviceId: string; kind: string; seq: number }[] = [];

  for (let t = 0; t < SCENARIO.tenants; t++) {
    const tenant = tenantId(t);
    if (tenant === QUIET.tenant) {
      activeTenants.push({ tenantId: tenant, fromMs: START, toMs: QUIET.fromMs });
      activeTenants.push({ tenantId: tenant, fromMs: QUIET.toMs, toMs: END });
    } else {
      activeTenants.push({ tenantId: tenant, fromMs: START, toMs: END });
    }
    const readings: { deviceId: string; ts: number; value: number }[] = [];
    for (let k = 0; slotTs(START, SCENARIO.readingSeconds, k) < END; k++) {
      const ts = slotTs(START, SCENARIO.readingSeconds, k);
      if (tenant === QUIET.tenant && ts >= QUIET.fromMs && ts < QUIET.toMs) continue;
      for (let d = 0; d < SCENARIO.devicesPerTenant; d++) {
        const r = { tenantId: tenant, deviceId: deviceId(d), ts, value: valueAt(tenant, deviceId(d), k) };
        insertedReadings.push(r);
        readings.push(r);
      }
    }

    /** Device → index in `alerts` of its open row. */
    const open = new Map<string, number>();
    let seq = 40 + t;
    let judged = 0;
    for (let now = START + 1000 + 700 * t; now <= END; now += TICK) {
      seq++;
      const fresh = readings.filter((r) => r.ts > judged && r.ts <= now);
      judged = now;
      for (let d = 0; d < SCENARIO.devicesPerTenant; d++) {
        const device = deviceId(d);
        const latest = fresh.filter((r) => r.deviceId === device).at(-1);
        if (!latest) continue;
        const i = open.get(device);
        if (latest.value > THRESHOLD && i === undefined) {
          open.set(device, alerts.length);
          alerts.push({
            id: 0,
            tenantId: tenant,
            ruleId: RULE.id,
            deviceId: device,
            fingerprint: `${tenant}/${RULE.id}/${device}`,
            state: "open",
            firstSeenMs: now,
            lastSeenMs: now,
            resolvedAtMs: null,
          });
          events.push({ at: now, tenantId: tenant, deviceId: device, kind: "fired", seq });
        } else if (latest.value > THRESHOLD && i !== undefined) {
          alerts[i] = { ...alerts[i]!, lastSeenMs: now };
        } else if (i !== undefined) {
          open.delete(device);
          alerts[i] = { ...alerts[i]!, state: "resolved", resolvedAtMs: now };
          events.push({ at: now, tenantId: tenant, deviceId: device, kind: "resolved", seq });
        }
      }
      fenceObservations.push({
        tenantId: tenant,
        seq,
        evalMs: now,
        evaluator: `unit/set#${t % 3}#host#token`,
        observedAtMs: now + 300,
      });
    }
  }

  const rows = alerts.sort((a, b) => a.firstSeenMs - b.firstSeenMs).map((a, i) => ({ ...a, id: i + 1 }));
  return {
    scenario: SCENARIO,
    runStartMs: START,
    runEndMs: END,
    bounds: { maxGapMs: BOUNDS.maxGapSeconds * 1000, alertLatencyMs: BOUNDS.alertLatencySeconds * 1000 },
    outages: [],
    activeTenants,
    insertedReadings,
    storedReadings: insertedReadings.map(({ tenantId, deviceId, ts }) => ({ tenantId, deviceId, ts })),
    fenceObservations,
    alerts: rows,
    alertIdsSeen: rows.map((a) => a.id),
    alertEvents: events
      .sort((a, b) => a.at - b.at)
      .map((e, i) => ({
        id: i + 1,
        tenantId: e.tenantId,
        ruleId: RULE.id,
        deviceId: e.deviceId,
        kind: e.kind,
        seq: e.seq,
      })),
    assignment: {
      tenants: Array.from({ length: SCENARIO.tenants }, (_, i) => ({
        tenantId: tenantId(i),
        shardIndex: i % 3,
      })),
      shardCount: 3,
      runningShards: [0, 1, 2],
    },
    resources: [
      { process: "operator", kind: "operator", peakRssBytes: 80 * 2 ** 20, cpuSeconds: 3.5 },
      { process: "evaluator shard-0", kind: "evaluator", peakRssBytes: 120 * 2 ** 20, cpuSeconds: 10 },
      { process: "evaluator shard-0 #2", kind: "evaluator", peakRssBytes: 100 * 2 ** 20, cpuSeconds: 2 },
      { process: "postgres", kind: "postgres", peakRssBytes: 300 * 2 ** 20, cpuSeconds: 20 },
    ],
  };
}

const CLEAN = cleanHistory();

/** A copy of the clean history to mutate. */
function history(): VerdictInput {
  return structuredClone(CLEAN);
}

/** Names of the checks with violations. */
function failing(v: Verdict): string[] {
  return v.checks.filter((c) => c.count > 0).map((c) => c.name);
}

function messages(v: Verdict, check: string): string[] {
  return v.checks.find((c) => c.name === check)!.violations.map((x) => x.message);
}

/** The alerts of one device, by first seen. */
function alertsOf(input: VerdictInput, tenant: string, device: string): AlertObservation[] {
  return input.alerts.filter((a) => a.tenantId === tenant && a.deviceId === device);
}

/**
 * Removes a tenant's fence observations with tick times in (fromMs, toMs) and renumbers the later
 * ones so that the seq advances by `advance` across the hole.
 */
function dropEvaluations(input: VerdictInput, tenant: string, fromMs: number, toMs: number, advance: number) {
  const mine = input.fenceObservations.filter((o) => o.tenantId === tenant);
  const removed = mine.filter((o) => o.evalMs > fromMs && o.evalMs < toMs).length;
  expect(removed).toBeGreaterThan(3);
  const shift = removed + 1 - advance;
  const kept = input.fenceObservations.filter(
    (o) => o.tenantId !== tenant || o.evalMs <= fromMs || o.evalMs >= toMs,
  );
  input.fenceObservations.length = 0;
  input.fenceObservations.push(
    ...kept.map((o) => (o.tenantId === tenant && o.evalMs >= toMs ? { ...o, seq: o.seq - shift } : o)),
  );
}

describe("computeVerdict on a perfect evaluator's history", () => {
  it("passes every check, and counts what happened", () => {
    const v = computeVerdict(CLEAN);
    expect(v.checks.map((c) => [c.name, c.count])).toEqual(CHECKS.map((name) => [name, 0]));
    expect(v.ok).toBe(true);
    expect(v.scenario).toBe("unit");
    expect(v.summary).toMatchObject({
      tenants: 4,
      activeTenants: 4,
      devices: 12,
      readings: CLEAN.insertedReadings.length,
      storedReadings: CLEAN.insertedReadings.length,
      offScheduleReadings: 0,
      fenceObservations: CLEAN.fenceObservations.length,
      alerts: CLEAN.alerts.length,
      events: CLEAN.alertEvents.length,
      outages: 0,
    });
    expect(v.summary.evaluations).toBe(CLEAN.fenceObservations.length - 4);
    expect(v.summary.episodesChecked).toBeGreaterThan(40);
    // Only the episodes too close to the end to be judged: at most one per device.
    expect(v.summary.episodesExcused).toBeLessThanOrEqual(12);
  });

  it("the history exercises what the checks rely on", () => {
    // Alerts that stayed open across tenant 3's quiet time.
    const across = CLEAN.alerts.filter(
      (a) =>
        a.tenantId === QUIET.tenant && a.firstSeenMs < QUIET.fromMs && (a.resolvedAtMs ?? END) > QUIET.toMs,
    );
    expect(across.length).toBeGreaterThan(0);
    expect(CLEAN.alerts.some((a) => a.state === "open")).toBe(true);
    expect(CLEAN.alerts.length).toBeGreaterThan(40);
  });

  it("is plain JSON", () => {
    const v = computeVerdict(history());
    expect(JSON.parse(JSON.stringify(v))).toEqual(v);
  });
});

describe("computeVerdict finds each kind of violation, in its check only", () => {
  const T1 = tenantId(1);
  const D1 = deviceId(1);

  it("duplicate-alerts: a second row of one fingerprint open at the same time", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts.push({ ...a, id: 9001, firstSeenMs: a.firstSeenMs + 1000 });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["duplicate-alerts"]);
    expect(messages(v, "duplicate-alerts")).toContainEqual(
      expect.stringMatching(new RegExp(`^${T1}/${D1}: alert rows #${a.id} .* and #9001 .* overlap$`)),
    );
  });

  it("duplicate-alerts: a second fired event with no resolve between", () => {
    const input = history();
    const at = input.alertEvents.findIndex(
      (e) => e.tenantId === T1 && e.deviceId === D1 && e.kind === "fired",
    );
    const fired = input.alertEvents[at]!;
    input.alertEvents.splice(at + 1, 0, { ...fired, seq: fired.seq + 1 });
    input.alertEvents.forEach((e, i) => {
      input.alertEvents[i] = { ...e, id: i + 1 };
    });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["duplicate-alerts"]);
    expect(messages(v, "duplicate-alerts")).toEqual([
      `${T1}/${D1}: rule hot fired twice (events #${at + 1} and #${at + 2}, seq ${fired.seq + 1}) with no resolve between`,
    ]);
  });

  it("duplicate-alerts: two rows, one after the other, for one high episode", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    const i = input.alerts.indexOf(a);
    // Split the row at its next tick: an early resolve, then a new row.
    input.alerts[i] = {
      ...a,
      state: "resolved",
      lastSeenMs: a.firstSeenMs,
      resolvedAtMs: a.firstSeenMs + TICK,
    };
    input.alerts.push({ ...a, id: 9002, firstSeenMs: a.firstSeenMs + TICK });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["duplicate-alerts"]);
    expect(messages(v, "duplicate-alerts")).toEqual([
      expect.stringMatching(
        new RegExp(`^${T1}/${D1}: 2 alert rows \\(#${a.id}, #9002\\) for one high episode`),
      ),
    ]);
  });

  const GAP = { tenant: tenantId(2), fromMs: s(100), toMs: s(145) };

  it("missed-evaluations: a gap across which the seq advanced by one", () => {
    const input = history();
    dropEvaluations(input, GAP.tenant, GAP.fromMs, GAP.toMs, 1);
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["missed-evaluations"]);
    expect(messages(v, "missed-evaluations")).toEqual([
      expect.stringMatching(
        new RegExp(`^${GAP.tenant}: no evaluation for 50\\.0s \\(t\\+97\\.4s–t\\+147\\.4s\\) between seq`),
      ),
    ]);
  });

  it("missed-evaluations: the same gap inside an outage is excused, but not by a Prometheus stop", () => {
    const input = history();
    dropEvaluations(input, GAP.tenant, GAP.fromMs, GAP.toMs, 1);
    input.outages.push({ kind: "prometheus", fromMs: s(110), toMs: s(120) });
    expect(failing(computeVerdict(input))).toEqual(["missed-evaluations"]);
    input.outages.push({ kind: "postgres", fromMs: s(110), toMs: s(120) });
    expect(computeVerdict(input).ok).toBe(true);
  });

  it("missed-evaluations: a gap across which the seq advanced by two is only a missed poll", () => {
    const input = history();
    dropEvaluations(input, GAP.tenant, GAP.fromMs, GAP.toMs, 2);
    expect(computeVerdict(input).ok).toBe(true);
  });

  it("missed-evaluations: no evaluation in the last stretch of the run", () => {
    const input = history();
    const kept = input.fenceObservations.filter((o) => o.tenantId !== GAP.tenant || o.evalMs < s(250));
    input.fenceObservations.length = 0;
    input.fenceObservations.push(...kept);
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["missed-evaluations"]);
    expect(messages(v, "missed-evaluations")).toEqual([
      expect.stringMatching(
        new RegExp(`^${GAP.tenant}: no evaluation for .* after seq \\d+, outside outages`),
      ),
    ]);
  });

  it("missed-evaluations: counts from a tenant's activation plus a grace of one bound", () => {
    const input = history();
    const kept = input.fenceObservations.filter((o) => o.tenantId !== GAP.tenant || o.evalMs > s(160));
    input.fenceObservations.length = 0;
    input.fenceObservations.push(...kept);
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["missed-evaluations"]);
    expect(messages(v, "missed-evaluations")).toEqual([
      expect.stringMatching(
        new RegExp(`^${GAP.tenant}: no evaluation for 142\\.4s \\(t\\+20\\.0s–t\\+162\\.4s\\) before seq`),
      ),
    ]);
    // Had the tenant got its first telemetry at 150 s, the first evaluation was due by 170 s.
    for (const [i, a] of input.activeTenants.entries()) {
      if (a.tenantId === GAP.tenant) input.activeTenants[i] = { ...a, fromMs: s(150) };
    }
    expect(computeVerdict(input).ok).toBe(true);
  });

  it("fence-regressed: a tick time that goes back as the seq rises", () => {
    const input = history();
    const obs = input.fenceObservations;
    const i = obs.findIndex((o) => o.tenantId === T1 && o.evalMs > s(60));
    obs[i] = { ...obs[i]!, evalMs: obs[i - 1]!.evalMs - 1000 };
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["fence-regressed"]);
    expect(messages(v, "fence-regressed")).toEqual([
      expect.stringMatching(new RegExp(`^${T1}: tick time went back`)),
    ]);
  });

  it("fence-regressed: a poll that sees a lower seq than the one before", () => {
    const input = history();
    const obs = input.fenceObservations;
    const i = obs.findIndex((o) => o.tenantId === T1 && o.evalMs > s(60));
    const o = obs[i]!;
    obs.splice(i + 1, 0, {
      ...o,
      seq: o.seq - 1,
      evalMs: o.evalMs + 100,
      observedAtMs: o.observedAtMs + 100,
    });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["fence-regressed"]);
    expect(messages(v, "fence-regressed")).toContainEqual(
      expect.stringMatching(new RegExp(`^${T1}: fence seq went back from ${o.seq} to ${o.seq - 1}`)),
    );
  });

  it("expected-alerts: an alert three intervals late", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts[input.alerts.indexOf(a)] = { ...a, firstSeenMs: a.firstSeenMs + 3 * TICK };
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["expected-alerts"]);
    expect(v.checks.find((c) => c.name === "expected-alerts")!.violations.map((x) => x.kind)).toEqual([
      "late-alert",
    ]);
    expect(messages(v, "expected-alerts")[0]).toMatch(
      new RegExp(`^${T1}/${D1}: alert #${a.id} fired at .*bound 15s`),
    );
  });

  it("expected-alerts: a missing alert; excused when its episode overlaps an outage", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts.splice(input.alerts.indexOf(a), 1);
    input.alertIdsSeen.splice(input.alertIdsSeen.indexOf(a.id), 1);
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["expected-alerts"]);
    expect(v.checks.find((c) => c.name === "expected-alerts")!.violations.map((x) => x.kind)).toEqual([
      "missed-alert",
    ]);
    expect(messages(v, "expected-alerts")[0]).toMatch(
      new RegExp(`^${T1}/${D1}: no alert for the high episode`),
    );

    // Neither Prometheus nor Valkey being down excuses it: evaluations go on without them.
    input.outages.push({ kind: "valkey", fromMs: a.firstSeenMs - 1000, toMs: a.firstSeenMs });
    input.outages.push({ kind: "prometheus", fromMs: a.firstSeenMs - 1000, toMs: a.firstSeenMs });
    expect(failing(computeVerdict(input))).toEqual(["expected-alerts"]);
    input.outages.push({ kind: "postgres", fromMs: a.firstSeenMs - 1000, toMs: a.firstSeenMs });
    const excused = computeVerdict(input);
    expect(excused.ok).toBe(true);
    expect(excused.summary.episodesExcused).toBe(computeVerdict(CLEAN).summary.episodesExcused + 1);
  });

  it("an episode left without its alert (excused) does not pull the next episode's alert back to it", () => {
    // A device whose second episode's alert fired within the latency of the first episode's end:
    // the windows overlap, so matching by "earliest free episode" would move it back.
    // A latency bound as generous as the chaos runs' own (two ticks + a reading + 10 s, and more).
    const latency = 45_000;
    const slots = SCENARIO.durationSeconds / SCENARIO.readingSeconds;
    let found: { tenant: string; device: string; i: number } | undefined;
    for (let t = 0; t < 3 && !found; t++) {
      for (let d = 0; d < SCENARIO.devicesPerTenant && !found; d++) {
        const eps = episodes(tenantId(t), deviceId(d), 0, slots);
        const alerts = alertsOf(CLEAN, tenantId(t), deviceId(d));
        if (alerts.length !== eps.length) continue;
        for (let i = 0; i + 1 < eps.length && !found; i++) {
          const end = slotTs(START, SCENARIO.readingSeconds, eps[i]!.endSlot);
          if (alerts[i + 1]!.firstSeenMs <= end + latency)
            found = { tenant: tenantId(t), device: deviceId(d), i };
        }
      }
    }
    expect(found).toBeDefined();
    const input = history();
    const a = alertsOf(input, found!.tenant, found!.device)[found!.i]!;
    input.alerts.splice(input.alerts.indexOf(a), 1);
    input.alertIdsSeen.splice(input.alertIdsSeen.indexOf(a.id), 1);
    input.outages.push({ kind: "postgres", fromMs: a.firstSeenMs - 1000, toMs: a.firstSeenMs });
    const v = computeVerdict({ ...input, bounds: { ...input.bounds, alertLatencyMs: latency } });
    expect(v.checks.map((c) => [c.name, c.count])).toEqual(CHECKS.map((name) => [name, 0]));
  });

  it("expected-alerts: a killed, paused or skewed evaluator excuses only the tenants its shard evaluated", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts.splice(input.alerts.indexOf(a), 1);
    input.alertIdsSeen.splice(input.alertIdsSeen.indexOf(a.id), 1);
    const shardOfT1 = Number(input.fenceObservations.find((o) => o.tenantId === T1)!.evaluator.split("#")[1]);
    const other = (shardOfT1 + 1) % 3;
    const around = { fromMs: a.firstSeenMs - 1000, toMs: a.firstSeenMs };
    input.outages.push({ kind: "kill", ...around, shard: other });
    expect(failing(computeVerdict(input))).toEqual(["expected-alerts"]);
    input.outages.push({ kind: "pause", ...around, shard: shardOfT1 });
    expect(computeVerdict(input).ok).toBe(true);
  });

  it("expected-alerts: an alert resolved before the first low reading after its episode", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts[input.alerts.indexOf(a)] = { ...a, resolvedAtMs: a.firstSeenMs + 1000 };
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["expected-alerts"]);
    expect(messages(v, "expected-alerts")).toEqual([
      expect.stringMatching(
        new RegExp(`^${T1}/${D1}: alert #${a.id} resolved at .*, before the first low reading`),
      ),
    ]);
  });

  it("expected-alerts: first_seen may precede the first high reading by less than half a tick", () => {
    // A tick that started just before the reading was inserted, and read it.
    const offset = 1700; // tenant 1's evaluations run 1.7 s after each reading
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    const i = input.alerts.indexOf(a);
    input.alerts[i] = { ...a, firstSeenMs: a.firstSeenMs - offset - 1000 };
    expect(computeVerdict(input).ok).toBe(true);
    input.alerts[i] = { ...a, firstSeenMs: a.firstSeenMs - offset - 3000 };
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["expected-alerts", "unjustified-alerts"]);
    expect(messages(v, "unjustified-alerts")).toEqual([
      expect.stringMatching(new RegExp(`^${T1}/${D1}: alert #${a.id} fired at .*, before any high reading$`)),
    ]);
  });

  it("expected-alerts: an evaluator with a skewed clock is matched that much more loosely", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts[input.alerts.indexOf(a)] = { ...a, firstSeenMs: a.firstSeenMs - 8000 };
    expect(failing(computeVerdict(input))).toEqual(["expected-alerts", "unjustified-alerts"]);
    const skewed = parseScenario(
      { ...structuredClone(CLEAN.scenario), timeline: [{ at: 10, kind: "skew", shard: 1, seconds: -10 }] },
      "unit.json",
    );
    const v = computeVerdict({
      ...input,
      scenario: skewed,
      outages: [{ kind: "skew", fromMs: a.firstSeenMs, toMs: a.firstSeenMs + 30_000 }],
    });
    expect(v.checks.map((c) => [c.name, c.count])).toEqual(CHECKS.map((name) => [name, 0]));
  });

  it("duplicate-alerts: an alert stamped late by a clock running ahead and resolved late is its own episode's, not the next one's", () => {
    const input = history();
    const [first, second] = alertsOf(input, T1, D1);
    expect(second).toBeDefined();
    // Fired by an evaluator 20 s ahead (its first_seen lands within the skew of the next episode's
    // start) and resolved only when the next episode had begun (an outage delayed its low readings).
    const late = {
      ...first!,
      firstSeenMs: second!.firstSeenMs - 12_000,
      lastSeenMs: second!.firstSeenMs - 5_000,
      resolvedAtMs: second!.firstSeenMs,
    };
    input.alerts[input.alerts.indexOf(first!)] = late;
    const skewed = parseScenario(
      { ...structuredClone(CLEAN.scenario), timeline: [{ at: 10, kind: "skew", shard: 1, seconds: 20 }] },
      "unit.json",
    );
    const outages = [{ kind: "skew", fromMs: START, toMs: END }];
    const v = computeVerdict({ ...input, scenario: skewed, outages });
    expect(v.checks.find((c) => c.name === "duplicate-alerts")!.violations).toEqual([]);
    // A second row for the second episode, after its first one resolved, is still a duplicate.
    const again = {
      ...second!,
      id: 999_999,
      firstSeenMs: second!.resolvedAtMs! + 1000,
      lastSeenMs: second!.resolvedAtMs! + 1000,
      resolvedAtMs: second!.resolvedAtMs! + 2000,
    };
    const dup = computeVerdict({ ...input, alerts: [...input.alerts, again], scenario: skewed, outages });
    expect(dup.checks.find((c) => c.name === "duplicate-alerts")!.count).toBeGreaterThan(0);
  });

  it("expected-alerts: an evaluator paused mid-tick stamps its alerts up to the pause early", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    // Its tick began 8 s before the high reading it judged after the pause.
    input.alerts[input.alerts.indexOf(a)] = { ...a, firstSeenMs: a.firstSeenMs - 8000 };
    expect(failing(computeVerdict(input))).toContain("unjustified-alerts");
    const paused = parseScenario(
      { ...structuredClone(CLEAN.scenario), timeline: [{ at: 10, kind: "pause", shard: 1, seconds: 10 }] },
      "unit.json",
    );
    const v = computeVerdict({
      ...input,
      scenario: paused,
      outages: [{ kind: "pause", fromMs: a.firstSeenMs - 10_000, toMs: a.firstSeenMs + 20_000 }],
    });
    expect(v.checks.map((c) => [c.name, c.count])).toEqual(CHECKS.map((name) => [name, 0]));
  });

  it("expected-alerts: an alert that never resolved after its first low reading", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts[input.alerts.indexOf(a)] = { ...a, state: "open", resolvedAtMs: null };
    // Keep the later rows of the fingerprint from overlapping it: only the resolve is wrong.
    for (const later of alertsOf(input, T1, D1).slice(1)) input.alerts.splice(input.alerts.indexOf(later), 1);
    input.alertIdsSeen.length = 0;
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["expected-alerts"]);
    expect(v.checks.find((c) => c.name === "expected-alerts")!.violations.map((x) => x.kind)).toContain(
      "late-resolve",
    );
    expect(messages(v, "expected-alerts")).toContainEqual(
      expect.stringMatching(new RegExp(`^${T1}/${D1}: alert #${a.id} never resolved; first low reading at`)),
    );
  });

  it("unjustified-alerts: an alert before any high reading of its device", () => {
    const input = history();
    const t2 = tenantId(2);
    const d0 = deviceId(0);
    input.alerts.push({
      id: 9003,
      tenantId: t2,
      ruleId: RULE.id,
      deviceId: d0,
      fingerprint: `${t2}/${RULE.id}/${d0}`,
      state: "resolved",
      firstSeenMs: s(1),
      lastSeenMs: s(1),
      resolvedAtMs: s(2),
    });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["unjustified-alerts"]);
    expect(messages(v, "unjustified-alerts")).toEqual([
      `${t2}/${d0}: alert #9003 fired at t+1.0s, before any high reading`,
    ]);
  });

  it("unjustified-alerts: an alert long after an episode ended, before the next began", () => {
    const input = history();
    const rows = alertsOf(input, T1, D1);
    // A low stretch long enough to fire in it more than the bound after the episode, and more
    // than half a tick before the next.
    const k = rows.findIndex(
      (r, i) => r.resolvedAtMs !== null && rows[i + 1]!.firstSeenMs - r.resolvedAtMs >= 25_000,
    );
    expect(k).toBeGreaterThanOrEqual(0);
    const after = rows[k]!.resolvedAtMs! + 17_000;
    input.alerts.push({
      ...rows[k]!,
      id: 9005,
      firstSeenMs: after,
      lastSeenMs: after,
      resolvedAtMs: after + 1000,
    });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["unjustified-alerts"]);
    expect(messages(v, "unjustified-alerts")).toEqual([
      expect.stringMatching(
        new RegExp(`^${T1}/${D1}: alert #9005 fired at .*, after the high episode of .* ended \\(\\+15s\\)$`),
      ),
    ]);
  });

  it("unjustified-alerts: an alert of a rule or device the schedule does not have", () => {
    const input = history();
    const a = alertsOf(input, T1, D1)[0]!;
    input.alerts.push({ ...a, id: 9004, deviceId: "d999", fingerprint: "other" });
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["unjustified-alerts"]);
    expect(messages(v, "unjustified-alerts")[0]).toMatch(
      new RegExp(`^${T1}/d999: alert #9004 .*: no such tenant, device or rule in the schedule$`),
    );
  });

  it("assignment: a tenant on shard 7 of 3, and a shard with no evaluator", () => {
    const input = history();
    input.assignment.tenants[2] = { tenantId: tenantId(2), shardIndex: 7 };
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["assignment"]);
    expect(messages(v, "assignment")).toEqual([`${tenantId(2)}: shard_index 7 is not a shard of 3`]);

    const stopped = history();
    stopped.assignment.runningShards.splice(1, 1);
    expect(messages(computeVerdict(stopped), "assignment")).toEqual([
      "the set has 3 shards but 2 evaluators run (shards 0, 2)",
      "shard 1 of 3 has no running evaluator",
    ]);
  });

  it("lost-rows: a reading missing from telemetry, an alert row gone", () => {
    const input = history();
    const i = input.storedReadings.findIndex((r) => r.tenantId === T1 && r.deviceId === D1 && r.ts === s(50));
    input.storedReadings.splice(i, 1);
    input.alertIdsSeen.push(99_999);
    const v = computeVerdict(input);
    expect(failing(v)).toEqual(["lost-rows"]);
    expect(messages(v, "lost-rows")).toEqual([
      `${T1}/${D1}: the reading at t+50.0s was acknowledged but is not in telemetry`,
      "alert #99999 was seen during the run but is gone at the end",
    ]);
  });
});

describe("formatVerdict", () => {
  it("prints one row per check, examples of failures, the counts and the resources", () => {
    const input = history();
    input.storedReadings.splice(0, 12);
    const text = formatVerdict(computeVerdict(input));
    const lines = text.split("\n");
    expect(lines[0]).toBe("chaos verdict: FAIL (unit, 300s)");
    expect(lines).toContain("CHECK               VIOLATIONS  RESULT");
    expect(lines).toContain("duplicate-alerts             0  PASS");
    expect(lines).toContain("lost-rows                   12  FAIL");
    expect(lines).toContain("lost-rows (12):");
    expect(lines.filter((l) => l.endsWith("was acknowledged but is not in telemetry"))).toHaveLength(10);
    expect(lines).toContain("  … and 2 more");
    expect(text).toMatch(/^PROCESS +KIND +PEAK RSS +CPU$/m);
    expect(text).toMatch(/^evaluator shard-0 #2 +evaluator +100\.0 MiB +2\.0 s$/m);
    expect(text).toMatch(/^all evaluator \(2\) +evaluator +120\.0 MiB +12\.0 s$/m);
  });

  it("says PASS for a clean run", () => {
    expect(formatVerdict(computeVerdict(history())).split("\n")[0]).toBe("chaos verdict: PASS (unit, 300s)");
  });
});
