import { describe, expect, it } from "vitest";
import type { AlertEvaluation, PairCondition } from "../rules/evaluateTenant.ts";
import { T0, thresholdRule, windowRule } from "../rules/fixtures.ts";
import { pairKey } from "../rules/planTenant.ts";
import { alertFingerprint, alertMessage, buildAlertWrites, NO_MAINTENANCE } from "./alertWrites.ts";

const rule = thresholdRule({ id: "r1", tenant_id: "t1", device_id: null });
const rules = new Map([[rule.id, rule]]);

function ev(
  deviceId: string,
  action: AlertEvaluation["action"],
  extra: Partial<AlertEvaluation> = {},
): AlertEvaluation {
  return {
    tenantId: "t1",
    ruleId: "r1",
    deviceId,
    metric: "temp",
    action,
    severity: "warning",
    since: T0 - 60_000,
    escalated: false,
    value: 42,
    observedAt: T0,
    at: T0,
    ...extra,
  };
}

function cond(deviceId: string, status: boolean | null): PairCondition {
  return { ruleId: "r1", deviceId, metric: "temp", status, value: 1, observedAt: T0 };
}

describe("alertFingerprint", () => {
  it("is stable and unambiguous whatever the ids contain", () => {
    expect(alertFingerprint("t", "r", "d")).toMatch(/^[0-9a-f]{64}$/);
    expect(alertFingerprint("t", "r", "d")).toBe(alertFingerprint("t", "r", "d"));
    expect(alertFingerprint("a:b", "c", "d")).not.toBe(alertFingerprint("a", "b:c", "d"));
    expect(alertFingerprint("t1", "r", "d")).not.toBe(alertFingerprint("t2", "r", "d"));
  });
});

describe("buildAlertWrites", () => {
  it("upserts fire and still-firing, resolves resolve", () => {
    const w = buildAlertWrites(
      "t1",
      rules,
      {
        evaluations: [
          ev("d1", "fire"),
          ev("d2", "still-firing", { escalated: true, severity: "critical" }),
          ev("d3", "resolve"),
        ],
        conditions: [],
      },
      new Set(),
      NO_MAINTENANCE,
    );
    expect(w.upserts.map((u) => [u.deviceId, u.severity, u.escalated])).toEqual([
      ["d1", "warning", false],
      ["d2", "critical", true],
    ]);
    expect(w.upserts[0]).toMatchObject({
      fingerprint: alertFingerprint("t1", "r1", "d1"),
      firstSeenMs: T0 - 60_000,
      lastSeenMs: T0,
      message: "temp > 30 (value 42)",
    });
    expect(w.resolves).toEqual([alertFingerprint("t1", "r1", "d3")]);
    expect(w.counts).toEqual({ fire: 1, stillFiring: 1, resolve: 1 });
  });

  it("maintenance suppresses fire and still-firing of covered devices, never resolve", () => {
    const evaluations = [ev("d1", "fire"), ev("d2", "still-firing"), ev("d3", "resolve")];
    const device = buildAlertWrites("t1", rules, { evaluations, conditions: [] }, new Set(), {
      tenantWide: false,
      deviceIds: new Set(["d1"]),
    });
    expect(device.upserts.map((u) => u.deviceId)).toEqual(["d2"]);
    expect(device.suppressedByMaintenance).toBe(1);
    const tenant = buildAlertWrites("t1", rules, { evaluations, conditions: [] }, new Set(), {
      tenantWide: true,
      deviceIds: new Set(),
    });
    expect(tenant.upserts).toEqual([]);
    expect(tenant.resolves).toHaveLength(1);
    expect(tenant.suppressedByMaintenance).toBe(2);
    // Only the held-back fire is a suppression (a `suppressed` alert event); the still-firing
    // ticks of the same incident are not.
    expect(tenant.suppressions?.map((x) => [x.deviceId, x.fingerprint])).toEqual([
      ["d1", alertFingerprint("t1", "r1", "d1")],
    ]);
  });

  it("resolves an open alert whose condition is false even without a lifecycle resolve; unknown never resolves", () => {
    const open = new Set([pairKey("r1", "d1"), pairKey("r1", "d2"), pairKey("r1", "d3")]);
    const w = buildAlertWrites(
      "t1",
      rules,
      {
        evaluations: [ev("d3", "resolve")],
        conditions: [cond("d1", false), cond("d2", null), cond("d3", false), cond("d4", false)],
      },
      open,
      NO_MAINTENANCE,
    );
    expect([...w.resolves].sort()).toEqual(
      [alertFingerprint("t1", "r1", "d3"), alertFingerprint("t1", "r1", "d1")].sort(),
    );
  });
});

describe("alertMessage", () => {
  it("describes each rule type", () => {
    expect(alertMessage(windowRule({ threshold: "5" }), { value: 3 })).toBe(
      "temp > 5 at least 3× within 300s (3 matching)",
    );
  });
});
