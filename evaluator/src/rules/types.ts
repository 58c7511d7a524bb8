/**
 * Domain types of the rule engine. Everything under `rules/` is pure: no clock, no I/O. The tick
 * timestamp (`now`, epoch milliseconds) is always passed in, so every rule is a function of
 * (state, readings, now) and is tested at fixed timestamps.
 */

/** The four rule families stored in `alert_rules.rule_type`. */
export const RULE_TYPES = ["threshold", "window", "anomaly", "pattern"] as const;
export type RuleType = (typeof RULE_TYPES)[number];

/** Comparison operators stored in `alert_rules.operator`. */
export const OPERATORS = [">", ">=", "<", "<=", "==", "!="] as const;
export type Operator = (typeof OPERATORS)[number];

/**
 * Severities, lowest first. The order is what escalation uses: an escalation must name a severity
 * ranked above the rule's own.
 */
export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Raise the severity of an alert whose condition has held for `afterSeconds`. */
export interface Escalation {
  readonly afterSeconds: number;
  readonly severity: Severity;
}

/** Which side of the rolling mean counts as anomalous. */
export const ANOMALY_DIRECTIONS = ["both", "above", "below"] as const;
export type AnomalyDirection = (typeof ANOMALY_DIRECTIONS)[number];

/** The kinds of `pattern` rule. */
export const PATTERN_KINDS = ["rising", "absent"] as const;
export type PatternKind = (typeof PATTERN_KINDS)[number];

/** Fields every rule has, whatever its type. */
interface RuleBase {
  readonly id: string;
  readonly tenantId: string;
  /** `null`: the rule applies to every device of the tenant that reports `metric`. */
  readonly deviceId: string | null;
  readonly metric: string;
  readonly operator: Operator | null;
  readonly threshold: number | null;
  readonly windowSeconds: number | null;
  /** Window: how many readings must compare true. Rising pattern: how many consecutive rises. */
  readonly minCount: number;
  /** After a `fire`, a new `fire` of the same (rule, device) is held back this long. 0 = none. */
  readonly cooldownSeconds: number;
  readonly severity: Severity;
  readonly escalation: Escalation | null;
}

/** Fires when the latest new reading compares true against `threshold`. */
export interface ThresholdRule extends RuleBase {
  readonly type: "threshold";
  readonly operator: Operator;
  readonly threshold: number;
  readonly params: Readonly<Record<string, never>>;
}

/** Parameters of a window rule (defaults applied by `parseRule`). */
export interface WindowParams {
  /** Count over the last N readings (still within the window) instead of all readings in it. */
  readonly lastN: number | null;
  /** Memory bound of the buffer: at most this many newest readings are kept. */
  readonly maxReadings: number;
}

/** Fires when `minCount` of the readings within `windowSeconds` (or of the last N) compare true. */
export interface WindowRule extends RuleBase {
  readonly type: "window";
  readonly operator: Operator;
  readonly threshold: number;
  readonly windowSeconds: number;
  readonly params: WindowParams;
}

/** Parameters of an anomaly rule (defaults applied by `parseRule`). */
export interface AnomalyParams {
  /** A reading is anomalous when it deviates more than `k` standard deviations. Default 3. */
  readonly k: number;
  /** No verdict before the statistics have seen this many samples. Default 10. */
  readonly minSamples: number;
  /**
   * Memory of the statistics: exact (Welford) mean/variance over the first `span` samples, then an
   * exponentially weighted one with α = 1/span, so the baseline follows slow drifts. Default 100.
   */
  readonly span: number;
  /** Floor of the standard deviation, so a perfectly constant sensor does not fire on noise. Default 0. */
  readonly minStddev: number;
  readonly direction: AnomalyDirection;
}

/** Fires when a new reading deviates from the rolling mean by more than k·stddev. */
export interface AnomalyRule extends RuleBase {
  readonly type: "anomaly";
  readonly params: AnomalyParams;
}

/** Parameters of a pattern rule. */
export interface PatternParams {
  readonly kind: PatternKind;
}

/**
 * `rising`: the last `minCount` readings within `windowSeconds` each rose above their predecessor.
 * `absent`: the device has sent nothing for `windowSeconds` (a silent sensor).
 */
export interface PatternRule extends RuleBase {
  readonly type: "pattern";
  readonly windowSeconds: number;
  readonly params: PatternParams;
}

/** A validated alert rule (see `parseRule`). */
export type Rule = ThresholdRule | WindowRule | AnomalyRule | PatternRule;

/** One telemetry sample. `ts` is epoch milliseconds. */
export interface Reading {
  readonly deviceId: string;
  readonly metric: string;
  readonly ts: number;
  readonly value: number;
}

/** One entry of a window buffer. */
export interface WindowEntry {
  readonly ts: number;
  readonly value: number;
}

/** New readings of one tenant: deviceId → metric → readings (any order). */
export type ReadingsByDeviceMetric = ReadonlyMap<string, ReadonlyMap<string, readonly Reading[]>>;
