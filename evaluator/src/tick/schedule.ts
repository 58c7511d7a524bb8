/**
 * The pure half of the tick scheduler (Prometheus `rules/group.go`): slot arithmetic and the
 * decision "which slot runs next, and when". No clock, no timers: table-tested at fixed times.
 *
 * Slots: slot `s` covers `[s·I, (s+1)·I)` (I = tick interval); its regular tick runs at
 * `s·I + offset`, where the per-shard offset spreads the shards of a set over the first quarter of
 * the slot (so N shards do not hit PostgreSQL in the same millisecond, and a tick stays well inside
 * its slot). Each tick claims one slot, strictly increasing; the Valkey tick lease
 * `tick:{tenant}:slot` makes a tenant-slot evaluated once across processes.
 *
 * Early ticks: a NOTIFY (new telemetry) may run the NEXT slot's tick before its regular time, once
 * the minimum interval has passed since the last tick start and the clock is at most one slot
 * behind it (a tick never claims a slot more than one ahead of the clock). The slot's regular tick
 * is then not run again: an early tick brings a tick forward, it never adds evaluations to a slot.
 * So any burst of NOTIFYs yields at most one extra tick, and a steady stream of them at most one
 * tick per slot.
 */

/** Scheduler settings, in ms. */
export interface ScheduleConfig {
  readonly intervalMs: number;
  readonly offsetMs: number;
  readonly minIntervalMs: number;
}

/** What the scheduler remembers between ticks. */
export interface ScheduleState {
  /** Slot of the last tick started (`null` before the first). */
  readonly lastSlot: number | null;
  /** When the last tick started (ms). */
  readonly lastStartMs: number | null;
  /** A NOTIFY arrived since the last tick started. */
  readonly wakePending: boolean;
}

/** The next tick to run. */
export interface PlannedTick {
  readonly slot: number;
  /** When to start it (ms); at or before `now` means "start now". */
  readonly at: number;
  readonly trigger: "timer" | "notify";
  /** Slots skipped since the last tick (an overrun), counted in `evaluator_ticks_missed_total`. */
  readonly missed: number;
}

/** The tick slot of a timestamp: `floor(t / interval)`. */
export function slotOf(t: number, intervalMs: number): number {
  return Math.floor(t / intervalMs);
}

/** FNV-1a, 32 bit: a stable, dependency-free string hash (same offset on every restart). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The shard's offset inside each slot: `fnv1a("<shardSet>#<index>") mod floor(I/4)`. Stable across
 * restarts (pod restarts do not move the tick), different between the shards of a set.
 */
export function shardOffsetMs(shardSet: string, shardIndex: number, intervalMs: number): number {
  const span = Math.floor(intervalMs / 4);
  return span > 0 ? fnv1a(`${shardSet}#${shardIndex}`) % span : 0;
}

/**
 * Decides the next tick at time `now`:
 * - first tick: the current slot, at its regular time (at once if that has passed — a restarted
 *   shard resumes immediately; the tick lease stops a second evaluation of a slot its predecessor
 *   already did);
 * - the regular tick of a slot whose time has come; after an overrun, the LATEST such slot, the
 *   ones in between counted as missed (never a catch-up burst);
 * - else, with a NOTIFY pending, the next slot early at max(last start + min interval, start of the
 *   slot before it), when that is sooner than its regular time;
 * - else the next slot at its regular time.
 */
export function planNextTick(cfg: ScheduleConfig, state: ScheduleState, now: number): PlannedTick {
  const { intervalMs, offsetMs } = cfg;
  const regularAt = (slot: number) => slot * intervalMs + offsetMs;
  if (state.lastSlot === null) {
    const current = slotOf(now, intervalMs);
    return { slot: current, at: Math.max(now, regularAt(current)), trigger: "timer", missed: 0 };
  }
  const next = state.lastSlot + 1;
  // The latest slot whose regular time has come.
  const due = Math.floor((now - offsetMs) / intervalMs);
  if (due >= next) return { slot: due, at: now, trigger: "timer", missed: due - next };
  if (state.wakePending) {
    const earliest = Math.max((state.lastStartMs ?? now) + cfg.minIntervalMs, (next - 1) * intervalMs);
    if (earliest < regularAt(next)) return { slot: next, at: earliest, trigger: "notify", missed: 0 };
  }
  return { slot: next, at: regularAt(next), trigger: "timer", missed: 0 };
}
