import { SEVERITIES, type Severity } from "./types.ts";

/**
 * Lifecycle state of one (rule, device), kept between ticks.
 * Inactive: `{ active: false, since: null, severity: null }`.
 * Firing: `active`, `since` = tick at which it fired, `severity` = current (possibly escalated).
 */
export interface AlertState {
  readonly active: boolean;
  readonly since: number | null;
  readonly severity: Severity | null;
}

/** The state of a (rule, device) that is not firing. */
export const INACTIVE: AlertState = { active: false, since: null, severity: null };

/**
 * What the alert writer does with a step:
 * - `fire`: open an alert (upsert by fingerprint);
 * - `still-firing`: the condition holds; bump last-seen/occurrences, and the severity when `escalated`;
 * - `resolve`: the condition cleared; resolve the open alert;
 * - `none`: nothing to write.
 */
export type AlertAction = "fire" | "still-firing" | "resolve" | "none";

/** One lifecycle transition. */
export interface AlertStep {
  /** State to keep for the next tick. */
  readonly state: AlertState;
  readonly action: AlertAction;
  /** Severity of the alert this step is about (the resolved alert's for `resolve`), else null. */
  readonly severity: Severity | null;
  /** Start of the alert this step is about (the resolved alert's for `resolve`), else null. */
  readonly since: number | null;
  /** True on the single step where the severity was raised by the escalation. */
  readonly escalated: boolean;
  /** True when a `fire` was held back by the cooldown (the condition is true, nothing is opened). */
  readonly suppressed: boolean;
}

/** The part of a rule the lifecycle reads. */
export interface LifecycleRule {
  readonly severity: Severity;
  readonly escalation: { readonly afterSeconds: number; readonly severity: Severity } | null;
}

function rank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** The severity of an alert firing since `since`, at `now`: escalated once sustained long enough. */
function severityAt(rule: LifecycleRule, current: Severity, since: number, now: number): Severity {
  const esc = rule.escalation;
  if (esc === null || now - since < esc.afterSeconds * 1000) return current;
  // Never lower a severity that is already higher (e.g. the rule was edited while firing).
  return rank(esc.severity) > rank(current) ? esc.severity : current;
}

/**
 * Advances the alert state machine of one (rule, device) by one tick.
 *
 * ```
 *                      true, no cooldown → fire
 *   ┌──────────┐ ──────────────────────────────▶ ┌──────────┐
 *   │ inactive │                                 │  firing  │ ── true → still-firing (severity
 *   └──────────┘ ◀────────────────────────────── └──────────┘    escalated once, when
 *        │                false → resolve                         now − since ≥ afterSeconds)
 *        └── false, or true during cooldown → none (suppressed)
 *   unknown (null), in either state → none, state unchanged
 * ```
 *
 * "Resolved" is the transition firing → inactive (action `resolve`), not a stored state: the next
 * true condition fires a new alert. A `null` condition (no evidence this tick) changes nothing and
 * returns `none`, in either state — missing data never resolves, fires or escalates.
 * The cooldown (set by the caller after a `fire`) only holds back the next `fire`, which damps a
 * flapping condition; it never delays `resolve`.
 *
 * @param prev state loaded for this (rule, device), {@link INACTIVE} when none
 * @param condition this tick's verdict (`null` = unknown)
 * @param now tick timestamp (ms)
 * @param cooldownRemainingMs time left on the (rule, device) cooldown, ≤ 0 when none
 */
export function stepAlert(
  prev: AlertState,
  condition: boolean | null,
  now: number,
  rule: LifecycleRule,
  cooldownRemainingMs = 0,
): AlertStep {
  const hold = { state: prev, severity: null, since: null, escalated: false, suppressed: false };
  if (!prev.active || prev.since === null || prev.severity === null) {
    if (condition !== true) return { ...hold, state: INACTIVE, action: "none" };
    if (cooldownRemainingMs > 0) return { ...hold, state: INACTIVE, action: "none", suppressed: true };
    // An escalation due at once (never, since afterSeconds > 0, but kept total) applies from the start.
    const severity = severityAt(rule, rule.severity, now, now);
    const state: AlertState = { active: true, since: now, severity };
    return { state, action: "fire", severity, since: now, escalated: false, suppressed: false };
  }
  if (condition === null) return { ...hold, action: "none" };
  if (condition === false) {
    return { ...hold, state: INACTIVE, action: "resolve", severity: prev.severity, since: prev.since };
  }
  const severity = severityAt(rule, prev.severity, prev.since, now);
  const escalated = severity !== prev.severity;
  return {
    state: escalated ? { ...prev, severity } : prev,
    action: "still-firing",
    severity,
    since: prev.since,
    escalated,
    suppressed: false,
  };
}
