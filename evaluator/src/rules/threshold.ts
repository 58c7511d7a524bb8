import { compare } from "./compare.ts";
import { type Condition, UNKNOWN } from "./condition.ts";
import type { Reading, ThresholdRule } from "./types.ts";

/**
 * Threshold rule: the latest of this tick's readings (oldest first, as `readingsFor` returns them)
 * compares true. No reading this tick → unknown, so a sensor reporting less often than the tick
 * neither resolves nor re-fires its alert (silence is what `pattern`/`absent` rules are for).
 */
export function thresholdCondition(rule: ThresholdRule, readings: readonly Reading[]): Condition {
  const latest = readings.at(-1);
  if (!latest) return UNKNOWN;
  return {
    status: compare(latest.value, rule.operator, rule.threshold),
    value: latest.value,
    observedAt: latest.ts,
  };
}
