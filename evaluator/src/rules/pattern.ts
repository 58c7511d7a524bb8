import type { Condition } from "./condition.ts";
import { UNKNOWN } from "./condition.ts";
import type { PatternRule, WindowEntry } from "./types.ts";
import { inWindow } from "./window.ts";

/**
 * Rising pattern: the last K + 1 readings within `windowSeconds` (K = `minCount`) each rose strictly
 * above the one before, i.e. K consecutive rising readings. Fewer readings in the window → false.
 * `value` is the latest value.
 */
export function risingCondition(rule: PatternRule, buffer: readonly WindowEntry[], now: number): Condition {
  const entries = inWindow(buffer, now, rule.windowSeconds * 1000);
  const latest = entries.at(-1);
  const k = rule.minCount;
  if (!latest || entries.length < k + 1) {
    return { status: false, value: latest?.value ?? null, observedAt: latest?.ts ?? null };
  }
  let rising = true;
  for (let i = entries.length - k; i < entries.length; i++) {
    if (!(entries[i]!.value > entries[i - 1]!.value)) {
      rising = false;
      break;
    }
  }
  return { status: rising, value: latest.value, observedAt: latest.ts };
}

/**
 * Absent pattern (a silent sensor): true when nothing arrived for at least `windowSeconds`, i.e. no
 * reading inside the left-open window `(now - W, now]`. `lastSeen` is the newest reading timestamp
 * the state knows of — or the moment the rule started watching a device that never reported, so a
 * device that is dead from the start is reported too. Unknown `lastSeen` (state unavailable) →
 * unknown. `value` is the silence in whole seconds.
 */
export function absentCondition(rule: PatternRule, lastSeen: number | null, now: number): Condition {
  if (lastSeen === null) return UNKNOWN;
  const silentMs = now - lastSeen;
  return {
    status: silentMs >= rule.windowSeconds * 1000,
    value: Math.max(0, Math.floor(silentMs / 1000)),
    observedAt: lastSeen,
  };
}
