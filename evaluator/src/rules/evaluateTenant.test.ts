import { describe, expect, it } from "vitest";
import type { AnomalyStats } from "./anomaly.ts";
import { evaluateTenant, type TenantEvaluationInput } from "./evaluateTenant.ts";
import { anomalyRule, patternRule, T0, thresholdRule, windowRule } from "./fixtures.ts";
import { INACTIVE } from "./lifecycle.ts";
import {
  emptyTenantState,
  type PairState,
  PlannedTenantState,
  pairKey,
  planTenant,
  splitPairKey,
  type TenantInput,
  type TenantState,
} from "./planTenant.ts";
import { groupReadings } from "./readings.ts";
import type { Reading, Rule } from "./types.ts";

const reading = (deviceId: string, metric: string, s: number, value: number): Reading => ({
  deviceId,
  metric,
  ts: T0 + s * 1000,
  value,
});

function input(rules: Rule[], readings: Reading[], deviceIds: string[] = ["d1"]): TenantInput {
  return { tenantId: "t1", rules, deviceIds, readingsByDeviceMetric: groupReadings(readings), now: T0 };
}

/** The state a fresh Valkey would return for the plan, with per-pair overrides. */
function loadedState(tenant: TenantInput, overrides: Record<string, Partial<PairState>> = {}): TenantState {
  const pairs = new Map<string, PairState>();
  for (const pair of planTenant(tenant).pairs) {
    const lastTs = pair.readings.at(-1)?.ts;
    pairs.set(pair.key, {
      buffer: pair.window ? pair.readings.map((r) => ({ ts: r.ts, value: r.value })) : null,
      cooldownRemainingMs: 0,
      anomaly: null,
      lastSeen: pair.lastSeen ? (lastTs ?? tenant.now) : null,
      alert: INACTIVE,
      ...overrides[pair.key],
    });
  }
  return { pairs };
}

function evaluate(tenant: TenantInput, state: TenantState = loadedState(tenant)) {
  const full: TenantEvaluationInput = { ...tenant, state };
  return evaluateTenant(full);
}

describe("planTenant", () => {
  it("expands a bound rule to its device and an unbound one to every device (+ unknown senders)", () => {
    const bound = thresholdRule({ id: "bound", device_id: "d2" });
    const all = thresholdRule({ id: "all", device_id: null });
    const plan = planTenant(
      input(
        [bound, all],
        [reading("zz", "temp", 0, 1), reading("d9", "temp", 0, 1), reading("d8", "humidity", 0, 1)],
        ["d1", "d2"],
      ),
    );
    expect(plan.pairs.map((p) => `${p.rule.id}/${p.deviceId}`)).toEqual([
      "bound/d2",
      "all/d1",
      "all/d2",
      "all/d9",
      "all/zz",
    ]);
  });

  it("says which state each rule type needs", () => {
    const rules = [
      thresholdRule({ id: "t" }),
      windowRule({ id: "w", window_seconds: 60, min_count: 2 }),
      anomalyRule({ id: "a" }),
      patternRule({ id: "r", params: { kind: "rising" }, min_count: 3 }),
      patternRule({ id: "s", params: { kind: "absent" } }),
    ];
    const needs = planTenant(input(rules, [])).pairs.map((p) => [p.rule.id, p.window, p.anomaly, p.lastSeen]);
    expect(needs).toEqual([
      ["t", null, false, false],
      ["w", { windowMs: 60_000, maxLen: 1000 }, false, false],
      ["a", null, true, false],
      ["r", { windowMs: 600_000, maxLen: 4 }, false, false],
      ["s", null, false, true],
    ]);
  });

  it("drops NaN readings, sorts by time and evaluates a duplicated rule id once", () => {
    const r = thresholdRule();
    const plan = planTenant(
      input(
        [r, r],
        [reading("d1", "temp", 20, 3), reading("d1", "temp", 10, Number.NaN), reading("d1", "temp", 5, 1)],
      ),
    );
    expect(plan.pairs).toHaveLength(1);
    expect(plan.pairs[0]?.readings.map((x) => x.value)).toEqual([1, 3]);
  });

  it("plans the pairs of a repeated rule id once, whichever row names them", () => {
    const bound = thresholdRule({ id: "r", device_id: "d2" });
    const unbound = windowRule({ id: "r", device_id: null });
    const plan = planTenant(
      input([bound, unbound, bound], [reading("d9", "temp", 0, 1)], ["d1", "d2", "d1"]),
    );
    expect(plan.pairs.map((p) => [p.key, p.rule.type])).toEqual([
      [pairKey("r", "d2"), "threshold"],
      [pairKey("r", "d1"), "window"],
      [pairKey("r", "d9"), "window"],
    ]);
  });

  it("refuses a rule of another tenant", () => {
    expect(() => planTenant(input([thresholdRule({ tenant_id: "other" })], []))).toThrow(RangeError);
  });
});

describe("evaluateTenant", () => {
  const key = (ruleId: string, deviceId = "d1") => pairKey(ruleId, deviceId);

  it("fires a threshold rule: an alert action, its lifecycle state and its cooldown", () => {
    const tenant = input([thresholdRule({ cooldown_seconds: 300 })], [reading("d1", "temp", -5, 35)]);
    const result = evaluate(tenant);
    expect(result.conditions).toEqual([
      { ruleId: "r1", deviceId: "d1", metric: "temp", status: true, value: 35, observedAt: T0 - 5000 },
    ]);
    expect(result.evaluations).toEqual([
      {
        tenantId: "t1",
        ruleId: "r1",
        deviceId: "d1",
        metric: "temp",
        action: "fire",
        severity: "warning",
        since: T0,
        escalated: false,
        value: 35,
        observedAt: T0 - 5000,
        at: T0,
      },
    ]);
    expect(result.stateUpdates).toEqual([
      {
        pairKey: key("r1"),
        ruleId: "r1",
        deviceId: "d1",
        kind: "alert",
        state: { active: true, since: T0, severity: "warning" },
      },
      { pairKey: key("r1"), ruleId: "r1", deviceId: "d1", kind: "cooldown", ttlMs: 300_000 },
    ]);
    expect(result.failures).toEqual([]);
  });

  it("writes nothing on a steady tick (still firing, nothing escalated, no statistics)", () => {
    const tenant = input([thresholdRule()], [reading("d1", "temp", 0, 35)]);
    const state = loadedState(tenant, {
      [key("r1")]: { alert: { active: true, since: T0 - 60_000, severity: "warning" } },
    });
    const result = evaluate(tenant, state);
    expect(result.evaluations.map((e) => e.action)).toEqual(["still-firing"]);
    expect(result.stateUpdates).toEqual([]);
  });

  it("resolves a window rule whose readings aged out, with no new reading", () => {
    const tenant = input([windowRule({ threshold: 50, min_count: 2 })], []);
    const state = loadedState(tenant, {
      [key("r1")]: {
        buffer: [
          { ts: T0 - 400_000, value: 60 },
          { ts: T0 - 100_000, value: 70 },
        ],
        alert: { active: true, since: T0 - 600_000, severity: "warning" },
      },
    });
    const result = evaluate(tenant, state);
    expect(result.conditions[0]).toMatchObject({ status: false, value: 1 });
    expect(result.evaluations).toMatchObject([{ action: "resolve", since: T0 - 600_000 }]);
    expect(result.stateUpdates).toEqual([
      { pairKey: key("r1"), ruleId: "r1", deviceId: "d1", kind: "alert", state: INACTIVE },
    ]);
  });

  it("holds back a fire during the cooldown, but reports the true condition", () => {
    const tenant = input([thresholdRule()], [reading("d1", "temp", 0, 99)]);
    const result = evaluate(tenant, loadedState(tenant, { [key("r1")]: { cooldownRemainingMs: 1 } }));
    expect(result.conditions[0]?.status).toBe(true);
    expect(result.evaluations).toEqual([]);
    expect(result.stateUpdates).toEqual([]);
    expect(result.suppressedByCooldown).toBe(1);
    // A firing pair in its cooldown is still firing: nothing held back.
    const firing = evaluate(
      tenant,
      loadedState(tenant, {
        [key("r1")]: { cooldownRemainingMs: 1, alert: { active: true, since: T0 - 1, severity: "warning" } },
      }),
    );
    expect(firing.suppressedByCooldown).toBe(0);
    expect(evaluate(tenant).suppressedByCooldown).toBe(0);
  });

  it("reads a state built for its plan by position, as it reads the same states by key", () => {
    const rules = [
      thresholdRule({ id: "t", cooldown_seconds: 60 }),
      windowRule({ id: "w" }),
      anomalyRule({ id: "a" }),
      patternRule({ id: "s", params: { kind: "absent" } }),
    ];
    const tenant = input(rules, [reading("d1", "temp", 0, 99), reading("d2", "temp", -30, 5)], ["d1", "d2"]);
    const plan = planTenant(tenant);
    const byKey = loadedState(tenant, {
      [key("t", "d1")]: { cooldownRemainingMs: 5 },
      [key("a", "d2")]: { anomaly: { n: 20, mean: 50, variance: 1, lastTs: T0 - 60_000 } },
    });
    const planned = new PlannedTenantState(
      plan,
      plan.pairs.map((p) => byKey.pairs.get(p.key)!),
    );
    const positional = evaluateTenant({ ...tenant, state: planned, plan });
    // No map was needed, and the verdicts, actions and updates are those of the keyed read.
    expect(positional).toEqual(evaluateTenant({ ...tenant, state: byKey, plan }));
    expect(positional.suppressedByCooldown).toBe(1);
    expect([...planned.pairs]).toEqual([...byKey.pairs]);
    // Deep equality compares the states by key, as for any tenant state, not the plans.
    expect(planned).toEqual(byKey);
    const other = planned.planned.states.map((st, i) => (i === 1 ? { ...st, cooldownRemainingMs: 7 } : st));
    expect(new PlannedTenantState(plan, other)).not.toEqual(planned);
    // Built for another plan (an equal one): read by key.
    expect(evaluateTenant({ ...tenant, state: planned, plan: planTenant(tenant) })).toEqual(positional);
    expect(() => new PlannedTenantState(plan, [])).toThrow(RangeError);
  });

  it("stores learned anomaly statistics only when new readings were learned", () => {
    const rule = anomalyRule();
    const learned: AnomalyStats = { n: 20, mean: 11, variance: 1, lastTs: T0 - 60_000 };
    const withReading = input([rule], [reading("d1", "temp", 0, 30)]);
    const fired = evaluate(withReading, loadedState(withReading, { [key("r1")]: { anomaly: learned } }));
    expect(fired.evaluations.map((e) => [e.action, e.value])).toEqual([["fire", 30]]);
    const stats = fired.stateUpdates.find((u) => u.kind === "anomaly");
    expect(stats).toMatchObject({ kind: "anomaly", stats: { n: 21, lastTs: T0 } });

    const quiet = input([rule], []);
    const none = evaluate(quiet, loadedState(quiet, { [key("r1")]: { anomaly: learned } }));
    expect(none.conditions[0]?.status).toBeNull();
    expect(none.stateUpdates).toEqual([]);
  });

  it("reports a silent device of an unbound absent rule, and not one that reported", () => {
    const tenant = input(
      [patternRule({ device_id: null, params: { kind: "absent" }, window_seconds: 600 })],
      [reading("d2", "temp", -10, 1)],
      ["d1", "d2"],
    );
    const state = loadedState(tenant, { [key("r1", "d1")]: { lastSeen: T0 - 700_000 } });
    const result = evaluate(tenant, state);
    expect(result.conditions.map((c) => [c.deviceId, c.status, c.value])).toEqual([
      ["d1", true, 700],
      ["d2", false, 10],
    ]);
    expect(result.evaluations.map((e) => [e.deviceId, e.action])).toEqual([["d1", "fire"]]);
  });

  it("without loaded state: threshold rules still fire, stateful rules are unknown, nothing is written", () => {
    const rules = [
      thresholdRule({ id: "t", cooldown_seconds: 60 }),
      windowRule({ id: "w", threshold: 50, min_count: 1 }),
      anomalyRule({ id: "a" }),
      patternRule({ id: "p", params: { kind: "absent" } }),
      patternRule({ id: "r", params: { kind: "rising" }, min_count: 1 }),
    ];
    const result = evaluate(input(rules, [reading("d1", "temp", 0, 99)]), emptyTenantState());
    expect(result.conditions.map((c) => [c.ruleId, c.status])).toEqual([
      ["t", true],
      ["w", null],
      ["a", null],
      ["p", null],
      ["r", null],
    ]);
    expect(result.evaluations.map((e) => [e.ruleId, e.action])).toEqual([["t", "fire"]]);
    expect(result.stateUpdates).toEqual([]);
  });

  it("isolates a pair that throws and evaluates the others", () => {
    const tenant = input(
      [thresholdRule({ id: "bad" }), thresholdRule({ id: "good" })],
      [reading("d1", "temp", 0, 99)],
    );
    const state = loadedState(tenant);
    const broken = new Map(state.pairs);
    const corrupt = {
      ...state.pairs.get(key("bad"))!,
      get alert(): PairState["alert"] {
        throw new Error("corrupt state");
      },
    };
    broken.set(key("bad"), corrupt);
    const result = evaluate(tenant, { pairs: broken });
    expect(result.failures.map((f) => [f.ruleId, String(f.error)])).toEqual([
      ["bad", "Error: corrupt state"],
    ]);
    expect(result.evaluations.map((e) => [e.ruleId, e.action])).toEqual([["good", "fire"]]);
  });

  it("escalates a sustained condition and persists the raised severity", () => {
    const rule = thresholdRule({ escalation: { after_seconds: 600, severity: "critical" } });
    const tenant = input([rule], [reading("d1", "temp", 0, 35)]);
    const state = loadedState(tenant, {
      [key("r1")]: { alert: { active: true, since: T0 - 600_000, severity: "warning" } },
    });
    const result = evaluate(tenant, state);
    expect(result.evaluations).toMatchObject([
      { action: "still-firing", severity: "critical", escalated: true },
    ]);
    expect(result.stateUpdates).toMatchObject([
      { kind: "alert", state: { active: true, severity: "critical" } },
    ]);
  });
});

describe("pairKey", () => {
  it("is unambiguous whatever the ids contain, and splits back", () => {
    const ids: [string, string][] = [
      ["a", "b:c"],
      ["a:b", "c"],
      ["", ":"],
      ["12:x", ""],
    ];
    const keys = ids.map(([r, d]) => pairKey(r, d));
    expect(new Set(keys).size).toBe(ids.length);
    expect(keys.map(splitPairKey)).toEqual(ids.map(([ruleId, deviceId]) => ({ ruleId, deviceId })));
    expect(splitPairKey("x")).toBeNull();
    expect(splitPairKey("5:ab:c")).toBeNull();
  });
});
