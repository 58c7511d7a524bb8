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

/** Whether the sorted `entries` hold an entry identical to (ts, value). */
function holds(entries: readonly WindowEntry[], ts: number, value: number): boolean {
  const last = entries.at(-1);
  if (last === undefined || ts > last.ts) return false;
  for (let i = entries.length - 1; i >= 0 && entries[i]!.ts >= ts; i--) {
    if (entries[i]!.ts === ts && entries[i]!.value === value) return true;
  }
  return false;
}

/**
 * The semantics of "append, then trim" on a window buffer (kept sorted by timestamp): the readings
 * are added — a reading identical in timestamp and value to a stored one is stored once, so a
 * retried tick does not count it twice; among equal timestamps stored entries come first — then
 * entries at or before `now - windowMs` are dropped and only the newest `maxLen` kept.
 * Returns `buffer` itself when nothing was added or dropped, so callers can tell a change by
 * identity.
 */
export function appendToWindow(
  buffer: readonly WindowEntry[],
  readings: readonly Pick<Reading, "ts" | "value">[],
  now: number,
  spec: WindowSpec,
): readonly WindowEntry[] {
  const cutoff = now - spec.windowMs;
  let fresh: WindowEntry[] | null = null;
  let sorted = true;
  for (const r of readings) {
    if (!(r.ts > cutoff) || holds(buffer, r.ts, r.value)) continue;
    if (fresh === null) fresh = [];
    else if (fresh.some((e) => e.ts === r.ts && e.value === r.value)) continue;
    else if (r.ts < fresh[fresh.length - 1]!.ts) sorted = false;
    fresh.push({ ts: r.ts, value: r.value });
  }
  let start = 0;
  while (start < buffer.length && !(buffer[start]!.ts > cutoff)) start++;
  let out: WindowEntry[];
  if (fresh === null) {
    if (start === 0 && buffer.length <= spec.maxLen) return buffer;
    out = buffer.slice(start);
  } else {
    if (!sorted) fresh.sort(byTs);
    // Merged straight into an array of the kept size (the newest maxLen): a buffer outlives the
    // tick, and an array grown by push would keep spare capacity of up to as many slots again.
    const total = buffer.length - start + fresh.length;
    let skip = Math.max(0, total - spec.maxLen);
    out = new Array(total - skip);
    let n = 0;
    let i = start;
    let j = 0;
    while (i < buffer.length || j < fresh.length) {
      const e =
        j >= fresh.length || (i < buffer.length && buffer[i]!.ts <= fresh[j]!.ts)
          ? buffer[i++]!
          : fresh[j++]!;
      if (skip > 0) skip--;
      else out[n++] = e;
    }
    return out;
  }
  return out.length > spec.maxLen ? out.slice(out.length - spec.maxLen) : out;
}

/**
 * Entries of `buffer` inside the window at `now`, oldest first. A buffer that is already sorted and
 * inside the window (what every tick's append leaves) is returned as it is, without a copy.
 */
export function inWindow(
  buffer: readonly WindowEntry[],
  now: number,
  windowMs: number,
): readonly WindowEntry[] {
  const cutoff = now - windowMs;
  let prev = Number.NEGATIVE_INFINITY;
  for (const e of buffer) {
    if (!(e.ts > cutoff) || e.ts < prev) return buffer.filter((x) => x.ts > cutoff).sort(byTs);
    prev = e.ts;
  }
  return buffer;
}

/**
 * Window rule, a pure function of (buffer after this tick's append, now): true when at least
 * `minCount` of the readings within `windowSeconds` — or, with `params.lastN`, of the last N
 * readings still within `windowSeconds` — compare true. `value` is the matching count. Unlike
 * threshold rules the verdict is always known: as readings age out of the window it turns false,
 * which resolves the alert even when the device goes quiet.
 */
export function windowCondition(rule: WindowRule, buffer: readonly WindowEntry[], now: number): Condition {
  const entries = inWindow(buffer, now, rule.windowSeconds * 1000);
  const from = rule.params.lastN === null ? 0 : Math.max(0, entries.length - rule.params.lastN);
  let matching = 0;
  for (let i = from; i < entries.length; i++) {
    if (compare(entries[i]!.value, rule.operator, rule.threshold)) matching++;
  }
  return {
    status: matching >= rule.minCount,
    value: matching,
    observedAt: entries.at(-1)?.ts ?? null,
  };
}
