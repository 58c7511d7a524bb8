import { describe, expect, it } from "vitest";
import { ruleRow } from "./fixtures.ts";
import { DEFAULT_MAX_READINGS, parseRule } from "./parseRule.ts";

describe("parseRule accepts valid rows", () => {
  it("maps pg column types (numeric as string, int ids) to a typed threshold rule", () => {
    const result = parseRule(ruleRow({ id: 42, threshold: "30.5", cooldown_seconds: "60" }));
    expect(result).toEqual({
      ok: true,
      rule: {
        id: "42",
        tenantId: "t1",
        deviceId: "d1",
        metric: "temp",
        type: "threshold",
        operator: ">",
        threshold: 30.5,
        windowSeconds: null,
        minCount: 1,
        cooldownSeconds: 60,
        severity: "warning",
        escalation: null,
        params: {},
      },
    });
  });

  it("accepts camelCase keys of an already-mapped row", () => {
    const result = parseRule({
      id: "r",
      tenantId: "t",
      deviceId: null,
      metric: "m",
      type: "window",
      operator: "<=",
      threshold: 1,
      windowSeconds: 60,
      minCount: 2,
      severity: "info",
    });
    expect(result.ok && result.rule).toMatchObject({
      type: "window",
      deviceId: null,
      windowSeconds: 60,
      minCount: 2,
    });
  });

  it.each([
    ["jsonb object", { after_seconds: 600, severity: "critical" }],
    ["json text", '{"afterSeconds": 600, "severity": "critical"}'],
  ])("parses an escalation given as %s", (_, escalation) => {
    const result = parseRule(ruleRow({ escalation }));
    expect(result.ok && result.rule.escalation).toEqual({ afterSeconds: 600, severity: "critical" });
  });

  it("applies window defaults, and lastN bounds the buffer", () => {
    const plain = parseRule(ruleRow({ rule_type: "window", window_seconds: 300, min_count: 3 }));
    expect(plain.ok && plain.rule.params).toEqual({ lastN: null, maxReadings: DEFAULT_MAX_READINGS });
    const lastN = parseRule(
      ruleRow({ rule_type: "window", window_seconds: 300, min_count: 3, params: '{"lastN": 5}' }),
    );
    expect(lastN.ok && lastN.rule.params).toEqual({ lastN: 5, maxReadings: 5 });
  });

  it("applies anomaly defaults and ignores an absent operator/threshold", () => {
    const result = parseRule(
      ruleRow({ rule_type: "anomaly", operator: null, threshold: null, params: null }),
    );
    expect(result.ok && result.rule.params).toEqual({
      k: 3,
      minSamples: 10,
      span: 100,
      minStddev: 0,
      direction: "both",
    });
  });

  it("parses both pattern kinds", () => {
    for (const kind of ["rising", "absent"]) {
      const result = parseRule(ruleRow({ rule_type: "pattern", window_seconds: 600, params: { kind } }));
      expect(result.ok && result.rule.params).toEqual({ kind });
    }
  });
});

describe("parseRule quarantines malformed rows with a reason", () => {
  it.each([
    ["bad params JSON", { params: "{not json" }, /^params: not valid JSON/],
    ["params not an object", { params: "[1,2]" }, /^params: expected a JSON object/],
    ["NaN threshold (numeric 'NaN')", { threshold: "NaN" }, /^threshold: must be a finite number/],
    ["infinite threshold", { threshold: Number.POSITIVE_INFINITY }, /^threshold: must be a finite number/],
    ["non-numeric threshold", { threshold: "abc" }, /^threshold: must be a finite number/],
    ["empty threshold", { threshold: "" }, /^threshold: expected a number/],
    ["missing threshold", { threshold: null }, /^threshold: required for threshold rules/],
    ["unknown type", { rule_type: "regex" }, /^rule_type: expected one of/],
    ["unknown operator", { operator: "=>" }, /^operator: expected one of/],
    ["missing operator", { operator: null }, /^operator: required/],
    ["unknown severity", { severity: "fatal" }, /^severity: expected one of/],
    ["missing tenant", { tenant_id: "" }, /^tenant_id: expected a non-empty string/],
    ["missing metric", { metric: null }, /^metric: expected a non-empty string/],
    ["window without window_seconds", { rule_type: "window" }, /^window_seconds: required for window rules/],
    ["zero window", { rule_type: "window", window_seconds: 0 }, /^window_seconds: must be an integer/],
    [
      "fractional min_count",
      { rule_type: "window", window_seconds: 60, min_count: 1.5 },
      /^min_count: must be an integer/,
    ],
    ["negative cooldown", { cooldown_seconds: -1 }, /^cooldown_seconds: must be an integer/],
    [
      "min_count above lastN",
      { rule_type: "window", window_seconds: 60, min_count: 4, params: { lastN: 3 } },
      /^min_count: 4 can never be reached/,
    ],
    ["anomaly k = 0", { rule_type: "anomaly", params: { k: 0 } }, /^params.k: must be positive/],
    ["anomaly direction", { rule_type: "anomaly", params: { direction: "up" } }, /^params.direction/],
    ["pattern without kind", { rule_type: "pattern", window_seconds: 60 }, /^params.kind: expected one of/],
    [
      "absent without window",
      { rule_type: "pattern", params: { kind: "absent" } },
      /^window_seconds: required/,
    ],
    ["escalation bad JSON", { escalation: "{" }, /^escalation: not valid JSON/],
    [
      "escalation not raising severity",
      { escalation: { after_seconds: 60, severity: "info" } },
      /^escalation.severity: must rank above/,
    ],
    [
      "escalation after 0 s",
      { escalation: { after_seconds: 0, severity: "critical" } },
      /^escalation.after_seconds/,
    ],
  ])("%s", (_, overrides, reason) => {
    const result = parseRule(ruleRow(overrides));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toMatch(reason);
      expect(result.id).toBe("r1");
    }
  });

  it("reports a row that is not an object without an id", () => {
    expect(parseRule(null)).toEqual({ ok: false, id: null, reason: "row: expected an object" });
    expect(parseRule("row")).toEqual({ ok: false, id: null, reason: "row: expected an object" });
  });

  it("quarantines one bad row without affecting the others", () => {
    const rows = [ruleRow({ id: "a" }), ruleRow({ id: "b", params: "{" }), ruleRow({ id: "c" })];
    const results = rows.map(parseRule);
    expect(results.map((r) => (r.ok ? r.rule.id : `!${r.id}`))).toEqual(["a", "!b", "c"]);
  });
});
