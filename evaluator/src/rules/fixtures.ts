/** Fixtures shared by the colocated rule tests (rows as pg returns them, a fixed clock). */
import { parseRule } from "./parseRule.ts";
import type { AnomalyRule, PatternRule, Rule, ThresholdRule, WindowRule } from "./types.ts";

/** 2026-01-01T00:00:00Z: the fixed tick timestamp the rule tests start from. */
export const T0 = Date.UTC(2026, 0, 1);

/** A valid `alert_rules` row as pg returns it; `overrides` replace columns. */
export function ruleRow(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "r1",
    tenant_id: "t1",
    device_id: "d1",
    metric: "temp",
    rule_type: "threshold",
    operator: ">",
    threshold: "30",
    window_seconds: null,
    min_count: null,
    cooldown_seconds: 0,
    severity: "warning",
    enabled: true,
    escalation: null,
    params: {},
    ...overrides,
  };
}

/** Parses a row that must be valid (for tests of the other rule modules). */
function mustParse(overrides: Record<string, unknown> = {}): Rule {
  const result = parseRule(ruleRow(overrides));
  if (!result.ok) throw new Error(`test rule is invalid: ${result.reason}`);
  return result.rule;
}

function ofType<T extends Rule>(rule: Rule, type: T["type"]): T {
  if (rule.type !== type) throw new Error(`expected a ${type} rule`);
  return rule as T;
}

export const thresholdRule = (o: Record<string, unknown> = {}) =>
  ofType<ThresholdRule>(mustParse({ rule_type: "threshold", ...o }), "threshold");
export const windowRule = (o: Record<string, unknown> = {}) =>
  ofType<WindowRule>(mustParse({ rule_type: "window", window_seconds: 300, min_count: 3, ...o }), "window");
export const anomalyRule = (o: Record<string, unknown> = {}) =>
  ofType<AnomalyRule>(mustParse({ rule_type: "anomaly", operator: null, threshold: null, ...o }), "anomaly");
export const patternRule = (o: Record<string, unknown> = {}) =>
  ofType<PatternRule>(
    mustParse({ rule_type: "pattern", operator: null, threshold: null, window_seconds: 600, ...o }),
    "pattern",
  );
