import { compare } from "./compare.ts";
import type { Condition } from "./condition.ts";
import type { PatternRule, Reading, WindowEntry, WindowRule } from "./types.ts";

/**
 * What a (rule, device) window buffer keeps: entries with `ts > now - windowMs` (the window is
 * left-open, `(now - W, ∞)`; readings slightly in the future from device clock skew count), and at
 * most the newest `maxLen` of those.
 */
export interface WindowSpec {
  readonly windowMs: number;
  readonly maxLen: number;
}

/** The buffer a rule needs, or `null` when it needs none (threshold, anomaly, absent). */
export function windowSpecOf(rule: WindowRule | PatternRule): WindowSpec | null {
  if (rule.type === "window") return { windowMs: rule.windowSeconds * 1000, maxLen: rule.params.maxReadings };
  // K consecutive rises need the last K + 1 readings.
  if (rule.params.kind === "rising")
    return { windowMs: rule.windowSeconds * 1000, maxLen: rule.minCount + 1 };
  return null;
}

function byTs(a: WindowEntry, b: WindowEntry): number {
  return a.ts - b.ts;
}

/**
 * The reference semantics of "append, then trim" on a buffer: entries sorted by timestamp, those
 * at or before `now - windowMs` dropped, then only the newest `maxLen` kept. The Valkey script
 * implements the same on a sorted set (where an identical (ts, value) is stored once).
 */
export function appendToWindow(
  buffer: readonly WindowEntry[],
  readings: readonly Pick<Reading, "ts" | "value">[],
  now: number,
  spec: WindowSpec,
): WindowEntry[] {
  const cutoff = now - spec.windowMs;
  const all = [...buffer, ...readings.map((r) => ({ ts: r.ts, value: r.value }))]
    .filter((e) => e.ts > cutoff)
    .sort(byTs);
  return all.slice(Math.max(0, all.length - spec.maxLen));
}

/** Entries of `buffer` inside the window at `now`, oldest first. */
export function inWindow(buffer: readonly WindowEntry[], now: number, windowMs: number): WindowEntry[] {
  const cutoff = now - windowMs;
  return buffer.filter((e) => e.ts > cutoff).sort(byTs);
}

/**
 * Window rule, a pure function of (buffer after this tick's append, now): true when at least
 * `minCount` of the readings within `windowSeconds` — or, with `params.lastN`, of the last N
 * readings still within `windowSeconds` — compare true. `value` is the matching count. Unlike
 * threshold rules the verdict is always known: as readings age out of the window it turns false,
 * which resolves the alert even when the device goes quiet.
 */
export function windowCondition(rule: WindowRule, buffer: readonly WindowEntry[], now: number): Condition {
  let entries = inWindow(buffer, now, rule.windowSeconds * 1000);
  if (rule.params.lastN !== null) entries = entries.slice(Math.max(0, entries.length - rule.params.lastN));
  let matching = 0;
  for (const e of entries) if (compare(e.value, rule.operator, rule.threshold)) matching++;
  return {
    status: matching >= rule.minCount,
    value: matching,
    observedAt: entries.at(-1)?.ts ?? null,
  };
}
