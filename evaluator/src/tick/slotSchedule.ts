/**
 * The pure half of the tick scheduler (Prometheus `rules/group.go`): slot arithmetic and the
 * decision "which tick runs next, and when". No clock, no timers (those are `tickScheduler.ts`):
 * table-tested at fixed times.
 *
 * Slots: slot `s` covers `[s·I, (s+1)·I)` (I = tick interval). Regular ticks: EVERY slot `s` has
 * one, at `s·I + offset`, where the per-shard offset spreads the shards of a set over the first
 * quarter of the slot (so N shards do not hit PostgreSQL in the same millisecond, and a tick stays
 * well inside its slot). After an overrun (a tick still running when the regular times of later
 * slots passed) the LATEST due slot runs at once and the ones in between are counted as missed:
 * never a catch-up burst.
 *
 * Early ticks: a NOTIFY (new telemetry) may run an EXTRA tick between two regular ones. It never
 * replaces, delays or consumes a regular tick, so two ticks are never more than I apart (plus an
 * overrun) and the shard's offset is never lost. With a wake pending, the early tick runs at
 * `max(last start + minInterval, now)`, and only if that is at least minInterval before the next
 * regular tick; otherwise the regular tick is close and serves the wake. Hence:
 * - two tick starts are at least minInterval apart, except right after an overrun (a late regular
 *   tick may be followed closely by the next regular one, which keeps its time);
 * - a burst of NOTIFYs coalesces into one tick, and a steady stream gives at most one tick per
 *   minInterval.
 *
 * A tick's slot: the regular tick of slot `s` has `slot: s`; an early tick has the slot it runs in,
 * so it may share a slot with the regular tick before or after it. Slots number ticks (logs,
 * missed counting); they are not a once-per-slot fence: evaluation is fenced per tenant by the
 * database.
 */

/** Scheduler settings, in ms. */
export interface ScheduleConfig {
  readonly intervalMs: number;
  readonly offsetMs: number;
  /** Minimum time between two tick starts when a NOTIFY brings one early. */
  readonly minIntervalMs: number;
}

/** What the scheduler remembers between ticks. */
export interface ScheduleState {
  /**
   * Slot of the last REGULAR tick started (`null` before the first tick): the next regular tick is
   * the slot after it, and the slots between it and a late one are the missed ones.
   */
  readonly lastRegularSlot: number | null;
  /** When the last tick of either trigger started (ms; `null` before the first): minInterval counts from it. */
  readonly lastStartMs: number | null;
  /** A NOTIFY arrived since the last tick started. */
  readonly wakePending: boolean;
}

/** The state before the first tick. */
export const initialScheduleState: ScheduleState = {
  lastRegularSlot: null,
  lastStartMs: null,
  wakePending: false,
};

/** The next tick to run. */
export interface PlannedTick {
  /** `timer`: the slot whose regular tick this is; `notify`: the slot the tick runs in. */
  readonly slot: number;
  /** When to start it (ms); at or before `now` means "start now". */
  readonly at: number;
  /** `timer`: a slot's regular tick; `notify`: an early tick between two regular ones. */
  readonly trigger: "timer" | "notify";
  /**
   * Regular slots skipped since the last regular tick (an overrun), counted in
   * `evaluator_ticks_missed_total`; always 0 for an early tick.
   */
  readonly missed: number;
}

/** The tick slot of a timestamp: `floor(t / interval)`. */
export function slotOf(t: number, intervalMs: number): number {
  return Math.floor(t / intervalMs);
}

/** When the regular tick of `slot` runs: `slot·I + offset`. */
export function regularTickAt(cfg: ScheduleConfig, slot: number): number {
  return slot * cfg.intervalMs + cfg.offsetMs;
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
 *   ones in between counted as missed (never a catch-up burst), wake pending or not;
 * - else, with a wake pending, an early tick at `max(lastStart + minInterval, now)` in the slot of
 *   that moment, if that moment is at most `nextRegular − minInterval`;
 * - else the next slot's regular tick at `slot·I + offset`.
 */
export function planNextTick(cfg: ScheduleConfig, state: ScheduleState, now: number): PlannedTick {
  const { intervalMs, offsetMs, minIntervalMs } = cfg;
  if (state.lastRegularSlot === null) {
    const current = slotOf(now, intervalMs);
    return { slot: current, at: Math.max(now, regularTickAt(cfg, current)), trigger: "timer", missed: 0 };
  }
  const next = state.lastRegularSlot + 1;
  // The latest slot whose regular time has come: past `next` only after an overrun.
  const due = slotOf(now - offsetMs, intervalMs);
  if (due >= next) return { slot: due, at: now, trigger: "timer", missed: due - next };
  const nextRegularAt = regularTickAt(cfg, next);
  if (state.wakePending) {
    const earliest = Math.max((state.lastStartMs ?? now) + minIntervalMs, now);
    // Closer than minInterval to the regular tick: leave the wake to it (no two ticks in a row).
    if (earliest <= nextRegularAt - minIntervalMs) {
      return { slot: slotOf(earliest, intervalMs), at: earliest, trigger: "notify", missed: 0 };
    }
  }
  return { slot: next, at: nextRegularAt, trigger: "timer", missed: 0 };
}

/**
 * The state once `tick` has started at `now`: an early tick moves only the last start (for
 * minInterval), a regular one the last regular slot too; either serves the pending wake.
 */
export function tickStarted(state: ScheduleState, tick: PlannedTick, now: number): ScheduleState {
  return {
    lastRegularSlot: tick.trigger === "timer" ? tick.slot : state.lastRegularSlot,
    lastStartMs: now,
    wakePending: false,
  };
}
