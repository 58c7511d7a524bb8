import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  fnv1a,
  initialScheduleState,
  type PlannedTick,
  planNextTick,
  regularTickAt,
  type ScheduleConfig,
  type ScheduleState,
  shardOffsetMs,
  slotOf,
  tickStarted,
} from "./slotSchedule.ts";

const I = 60_000;
const cfg: ScheduleConfig = { intervalMs: I, offsetMs: 5000, minIntervalMs: 15_000 };
const at = (slot: number, ms = 0) => slot * I + ms;
const state = (
  lastRegularSlot: number | null,
  lastStartMs: number | null,
  wakePending = false,
): ScheduleState => ({ lastRegularSlot, lastStartMs, wakePending });

/** One tick of a simulated run. */
interface SimTick {
  readonly slot: number;
  readonly trigger: PlannedTick["trigger"];
  readonly missed: number;
  readonly start: number;
  readonly end: number;
}

/**
 * Runs the loop of `TickScheduler` on plain numbers: plan at `now`; wait until the plan's time or
 * the next wake, whichever is first, and plan again; or start the tick and run it for
 * `durationMs(i)` (the i-th tick). Wakes at or before `now` (also during a tick) mark a wake
 * pending. Stops at `until`.
 */
function simulate(
  config: ScheduleConfig,
  run: {
    readonly from: number;
    readonly until: number;
    readonly wakes?: readonly number[];
    readonly durationMs?: (i: number) => number;
  },
): SimTick[] {
  const wakes = [...(run.wakes ?? [])].sort((a, b) => a - b);
  const durationMs = run.durationMs ?? (() => 1000);
  const ticks: SimTick[] = [];
  let s = initialScheduleState;
  let w = 0;
  let now = run.from;
  while (now < run.until) {
    for (; w < wakes.length && wakes[w]! <= now; w++) s = { ...s, wakePending: true };
    const plan = planNextTick(config, s, now);
    if (plan.at > now) {
      now = Math.min(plan.at, wakes[w] ?? Number.POSITIVE_INFINITY);
      continue;
    }
    const end = now + durationMs(ticks.length);
    ticks.push({ slot: plan.slot, trigger: plan.trigger, missed: plan.missed, start: now, end });
    s = tickStarted(s, plan, now);
    now = end;
  }
  return ticks;
}

const brief = (t: SimTick) => ({ slot: t.slot, start: t.start, trigger: t.trigger });
const gaps = (ticks: readonly SimTick[]) => ticks.slice(1).map((t, i) => t.start - ticks[i]!.start);
/** Every `stepMs` in `[from, until)`. */
const stream = (from: number, until: number, stepMs: number) =>
  Array.from({ length: Math.ceil((until - from) / stepMs) }, (_, i) => from + i * stepMs);

describe("slot arithmetic", () => {
  it("slot = floor(t / interval)", () => {
    expect(slotOf(at(100), I)).toBe(100);
    expect(slotOf(at(100, I - 1), I)).toBe(100);
    expect(slotOf(at(101), I)).toBe(101);
    expect(regularTickAt(cfg, 100)).toBe(at(100, 5000));
  });

  it("shard offsets are stable, inside the first quarter, and differ between shards", () => {
    const offsets = Array.from({ length: 16 }, (_, i) => shardOffsetMs("iot/alerts", i, I));
    for (const o of offsets) {
      expect(o).toBeGreaterThanOrEqual(0);
      expect(o).toBeLessThan(I / 4);
    }
    expect(new Set(offsets).size).toBeGreaterThan(12);
    expect(shardOffsetMs("iot/alerts", 3, I)).toBe(offsets[3]);
    expect(shardOffsetMs("iot/alerts", 0, 3)).toBe(0);
    expect(fnv1a("")).toBe(0x811c9dc5);
  });
});

describe("planNextTick", () => {
  it.each([
    [
      "first tick before the slot's offset: wait for it",
      state(null, null),
      at(10, 1000),
      { slot: 10, at: at(10, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "first tick after the offset: at once",
      state(null, null),
      at(10, 30_000),
      { slot: 10, at: at(10, 30_000), trigger: "timer", missed: 0 },
    ],
    [
      "first tick with a wake pending: still the regular one",
      state(null, null, true),
      at(10, 1000),
      { slot: 10, at: at(10, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "next regular tick",
      state(10, at(10, 5000)),
      at(10, 20_000),
      { slot: 11, at: at(11, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "regular time reached",
      state(10, at(10, 5000)),
      at(11, 5000),
      { slot: 11, at: at(11, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "overrun past two slots: skip ahead, count missed",
      state(10, at(10, 5000)),
      at(13, 7000),
      { slot: 13, at: at(13, 7000), trigger: "timer", missed: 2 },
    ],
    [
      "overrun past two slots with a wake pending: the same, the wake changes nothing",
      state(10, at(10, 5000), true),
      at(13, 7000),
      { slot: 13, at: at(13, 7000), trigger: "timer", missed: 2 },
    ],
    [
      "overrun into the next slot only: late, none missed",
      state(10, at(10, 5000)),
      at(11, 9000),
      { slot: 11, at: at(11, 9000), trigger: "timer", missed: 0 },
    ],
    [
      "wake after the minimum interval: an early tick now, in the current slot",
      state(10, at(10, 5000), true),
      at(10, 30_000),
      { slot: 10, at: at(10, 30_000), trigger: "notify", missed: 0 },
    ],
    [
      "wake too soon: deferred to last start + minimum interval",
      state(10, at(10, 5000), true),
      at(10, 6000),
      { slot: 10, at: at(10, 20_000), trigger: "notify", missed: 0 },
    ],
    [
      "after an early tick, a wake defers to its start + minimum interval",
      state(10, at(10, 20_000), true),
      at(10, 21_000),
      { slot: 10, at: at(10, 35_000), trigger: "notify", missed: 0 },
    ],
    [
      "after an early tick without a wake: the next slot at its regular time",
      state(10, at(10, 20_000)),
      at(10, 21_000),
      { slot: 11, at: at(11, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "exactly minimum interval before the regular tick: still early",
      state(10, at(10, 35_000), true),
      at(10, 36_000),
      { slot: 10, at: at(10, 50_000), trigger: "notify", missed: 0 },
    ],
    [
      "less than minimum interval before the regular tick: wait for it",
      state(10, at(10, 35_001), true),
      at(10, 36_000),
      { slot: 11, at: at(11, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "a wake just before the regular tick: the regular tick serves it",
      state(10, at(10, 5000), true),
      at(10, 59_000),
      { slot: 11, at: at(11, 5000), trigger: "timer", missed: 0 },
    ],
  ] as const)("%s", (_name, s, now, expected) => {
    expect(planNextTick(cfg, s, now)).toEqual(expected);
  });

  it("an early tick is in the slot it runs in, which may be the slot of the regular tick after it", () => {
    // An offset larger than the minimum interval leaves room for an early tick before it.
    const late: ScheduleConfig = { intervalMs: I, offsetMs: 14_000, minIntervalMs: 5000 };
    expect(planNextTick(late, state(10, at(10, 57_000), true), at(10, 58_000))).toEqual({
      slot: 11,
      at: at(11, 2000),
      trigger: "notify",
      missed: 0,
    });
    expect(planNextTick(late, state(10, at(11, 2000)), at(11, 2000))).toEqual({
      slot: 11,
      at: at(11, 14_000),
      trigger: "timer",
      missed: 0,
    });
  });

  it("an early tick moves only the last start; a regular one the last regular slot too", () => {
    const early = planNextTick(cfg, state(10, at(10, 5000), true), at(10, 30_000));
    expect(tickStarted(state(10, at(10, 5000), true), early, at(10, 30_000))).toEqual(
      state(10, at(10, 30_000)),
    );
    const regular = planNextTick(cfg, state(10, at(10, 30_000)), at(11, 5000));
    expect(tickStarted(state(10, at(10, 30_000), true), regular, at(11, 5000))).toEqual(
      state(11, at(11, 5000)),
    );
  });
});

describe("planNextTick, run by the scheduler loop", () => {
  // The reported bug: I = 60 s, offset 9.1 s, minimum interval 15 s, and a NOTIFY during the
  // regular tick at 9.1 s (a NOTIFY before 9.1 s is served by that tick itself) gave
  // 9.1 → 24.1 → 129.1 s: the early tick took slot 1's place, and the next timed tick waited for
  // slot 2 — a 105 s gap for every tenant of the shard.
  const shard: ScheduleConfig = { intervalMs: I, offsetMs: 9100, minIntervalMs: 15_000 };
  const B = 1000;

  it("one NOTIFY during the 9.1 s tick adds an early tick at 24.1 s; regular ticks stay at 69.1 s, 129.1 s", () => {
    const ticks = simulate(shard, { from: at(B), until: at(B + 3), wakes: [at(B, 9500)] });
    expect(ticks.map(brief)).toEqual([
      { slot: B, start: at(B, 9100), trigger: "timer" },
      { slot: B, start: at(B, 24_100), trigger: "notify" },
      { slot: B + 1, start: at(B + 1, 9100), trigger: "timer" },
      { slot: B + 2, start: at(B + 2, 9100), trigger: "timer" },
    ]);
    expect(ticks.every((t) => t.missed === 0)).toBe(true);
  });

  it("a NOTIFY stream that stops leaves no gap above the interval", () => {
    const wakes = stream(at(B, 2000), at(B + 2, 31_000), 2000);
    const ticks = simulate(shard, { from: at(B), until: at(B + 6), wakes });
    expect(Math.max(...gaps(ticks))).toBeLessThanOrEqual(I);
    const regular = ticks.filter((t) => t.trigger === "timer");
    expect(regular.map((t) => t.slot)).toEqual([B, B + 1, B + 2, B + 3, B + 4, B + 5]);
    expect(regular.every((t) => t.start === regularTickAt(shard, t.slot))).toBe(true);
    // The last NOTIFY (at 2:30) is served at 2:39.1; after it, only regular ticks.
    expect(ticks.filter((t) => t.start > at(B + 2, 39_100)).map((t) => t.trigger)).toEqual([
      "timer",
      "timer",
      "timer",
    ]);
  });

  it("a steady NOTIFY stream keeps every regular tick at s·I + offset, early ticks minInterval apart", () => {
    const wakes = stream(at(B), at(B + 10), 700);
    const ticks = simulate(shard, { from: at(B), until: at(B + 10), wakes });
    expect(ticks.slice(0, 6).map(brief)).toEqual([
      { slot: B, start: at(B, 9100), trigger: "timer" },
      { slot: B, start: at(B, 24_100), trigger: "notify" },
      { slot: B, start: at(B, 39_100), trigger: "notify" },
      { slot: B, start: at(B, 54_100), trigger: "notify" },
      { slot: B + 1, start: at(B + 1, 9100), trigger: "timer" },
      { slot: B + 1, start: at(B + 1, 24_100), trigger: "notify" },
    ]);
    const regular = ticks.filter((t) => t.trigger === "timer");
    expect(regular.map((t) => t.start)).toEqual(
      Array.from({ length: 10 }, (_, i) => regularTickAt(shard, B + i)),
    );
    expect(Math.min(...gaps(ticks))).toBeGreaterThanOrEqual(shard.minIntervalMs);
    for (const t of ticks.filter((x) => x.trigger === "notify")) {
      const nextRegularAt = regularTickAt(shard, slotOf(t.start - shard.offsetMs, I) + 1);
      expect(nextRegularAt - t.start).toBeGreaterThanOrEqual(shard.minIntervalMs);
    }
  });

  it("an overrun runs the latest due slot and counts the ones in between as missed, wakes or not", () => {
    const wakes = stream(at(B), at(B + 6), 5000);
    // The early tick at 24.1 s runs 3.5 intervals: slots B+1 and B+2 pass, B+3 runs late.
    const ticks = simulate(shard, {
      from: at(B),
      until: at(B + 6),
      wakes,
      durationMs: (i) => (i === 1 ? 3.5 * I : 1000),
    });
    expect(ticks.slice(0, 3).map((t) => ({ ...brief(t), missed: t.missed }))).toEqual([
      { slot: B, start: at(B, 9100), trigger: "timer", missed: 0 },
      { slot: B, start: at(B, 24_100), trigger: "notify", missed: 0 },
      { slot: B + 3, start: at(B, 24_100 + 3.5 * I), trigger: "timer", missed: 2 },
    ]);
    const regular = ticks.filter((t) => t.trigger === "timer");
    expect(regular.slice(2).every((t) => t.start === regularTickAt(shard, t.slot))).toBe(true);
  });

  it("a burst of NOTIFYs coalesces into one early tick", () => {
    // 500 NOTIFYs within one second, 11 s after the regular tick: one early tick, once the
    // minimum interval has passed.
    const wakes = stream(at(B, 20_000), at(B, 21_000), 2);
    const ticks = simulate(shard, { from: at(B), until: at(B + 2), wakes });
    expect(ticks.map(brief)).toEqual([
      { slot: B, start: at(B, 9100), trigger: "timer" },
      { slot: B, start: at(B, 24_100), trigger: "notify" },
      { slot: B + 1, start: at(B + 1, 9100), trigger: "timer" },
    ]);
  });

  it("property: a regular tick every slot, starts minInterval apart, no gap above the interval", () => {
    const run = fc.integer({ min: 1000, max: 120_000 }).chain((intervalMs) =>
      fc.record({
        intervalMs: fc.constant(intervalMs),
        offsetMs: fc.integer({ min: 0, max: Math.max(0, Math.floor(intervalMs / 4) - 1) }),
        minIntervalMs: fc.integer({ min: 1, max: intervalMs }),
        fromMs: fc.integer({ min: 0, max: intervalMs - 1 }),
        wakes: fc.array(fc.integer({ min: 0, max: 12 * intervalMs }), { maxLength: 200 }),
        wakeStream: fc.option(
          fc.record({
            from: fc.integer({ min: 0, max: 12 * intervalMs }),
            length: fc.integer({ min: 0, max: 6 * intervalMs }),
            step: fc.integer({ min: Math.ceil(intervalMs / 50), max: 2 * intervalMs }),
          }),
        ),
        // Mostly short ticks; now and then an overrun of up to four intervals.
        durations: fc.array(
          fc.oneof(
            { arbitrary: fc.integer({ min: 0, max: Math.floor(intervalMs / 20) }), weight: 8 },
            { arbitrary: fc.integer({ min: 0, max: 4 * intervalMs }), weight: 1 },
          ),
          { minLength: 1, maxLength: 40 },
        ),
      }),
    );
    fc.assert(
      fc.property(run, (r) => {
        const config: ScheduleConfig = {
          intervalMs: r.intervalMs,
          offsetMs: r.offsetMs,
          minIntervalMs: r.minIntervalMs,
        };
        const base = 1000 * r.intervalMs;
        const streamWakes = r.wakeStream
          ? stream(r.wakeStream.from, r.wakeStream.from + r.wakeStream.length, r.wakeStream.step)
          : [];
        const ticks = simulate(config, {
          from: base + r.fromMs,
          until: base + 14 * r.intervalMs,
          wakes: [...r.wakes, ...streamWakes].map((t) => base + t),
          durationMs: (i) => r.durations[i % r.durations.length]!,
        });
        const regularAt = (slot: number) => regularTickAt(config, slot);
        /** A regular tick that started after its time: the start-up tick, or held up by an overrun. */
        const late = (t: SimTick) => t.trigger === "timer" && t.start > regularAt(t.slot);
        let lastRegular: SimTick | undefined;
        for (const [i, t] of ticks.entries()) {
          const prev = ticks[i - 1];
          if (t.trigger === "timer") {
            // (i) Every slot has one regular tick, at s·I + offset unless an overrun held it up;
            // a slot is counted missed only if its regular time fell inside a running tick.
            if (lastRegular) expect(t.slot).toBe(lastRegular.slot + 1 + t.missed);
            expect(t.start).toBeGreaterThanOrEqual(regularAt(t.slot));
            if (prev && t.start !== regularAt(t.slot)) expect(t.start).toBe(prev.end);
            for (let m = t.slot - t.missed; m < t.slot; m++) {
              expect(ticks.some((x) => x.start < regularAt(m) && regularAt(m) < x.end)).toBe(true);
            }
            lastRegular = t;
          } else {
            // An early tick runs in its own slot, after a regular tick and at least minInterval
            // before the next one.
            expect(lastRegular).toBeDefined();
            expect(t.missed).toBe(0);
            expect(t.slot).toBe(slotOf(t.start, config.intervalMs));
            expect(t.start).toBeLessThanOrEqual(regularAt(lastRegular!.slot + 1) - config.minIntervalMs);
          }
          if (prev) {
            // (ii) Starts at least minInterval apart, except a regular tick right after a late one.
            if (t.start - prev.start < config.minIntervalMs) {
              expect(late(prev) && t.trigger === "timer").toBe(true);
            }
            // (iii) No gap above the interval, unless the previous tick itself ran longer.
            expect(t.start).toBeLessThanOrEqual(Math.max(prev.start + config.intervalMs, prev.end));
          }
        }
        // Every slot from the first to the last regular tick.
        const regular = ticks.filter((t) => t.trigger === "timer");
        const missed = regular.slice(1).reduce((n, t) => n + t.missed, 0);
        expect(regular.length + missed).toBe(regular[regular.length - 1]!.slot - regular[0]!.slot + 1);
      }),
      { numRuns: 300 },
    );
  });
});
