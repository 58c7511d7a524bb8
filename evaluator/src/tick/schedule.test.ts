import { describe, expect, it } from "vitest";
import {
  fnv1a,
  planNextTick,
  type ScheduleConfig,
  type ScheduleState,
  shardOffsetMs,
  slotOf,
} from "./schedule.ts";

const I = 60_000;
const cfg: ScheduleConfig = { intervalMs: I, offsetMs: 5000, minIntervalMs: 15_000 };
const at = (slot: number, ms = 0) => slot * I + ms;
const state = (lastSlot: number | null, lastStartMs: number | null, wakePending = false): ScheduleState => ({
  lastSlot,
  lastStartMs,
  wakePending,
});

describe("slot arithmetic", () => {
  it("slot = floor(t / interval)", () => {
    expect(slotOf(at(100), I)).toBe(100);
    expect(slotOf(at(100, I - 1), I)).toBe(100);
    expect(slotOf(at(101), I)).toBe(101);
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
      "overrun into the next slot only: late, none missed",
      state(10, at(10, 5000)),
      at(11, 9000),
      { slot: 11, at: at(11, 9000), trigger: "timer", missed: 0 },
    ],
    [
      "NOTIFY after the minimum interval: the next slot now",
      state(10, at(10, 5000), true),
      at(10, 30_000),
      { slot: 11, at: at(10, 20_000), trigger: "notify", missed: 0 },
    ],
    [
      "NOTIFY too soon: deferred to last start + minimum interval",
      state(10, at(10, 5000), true),
      at(10, 6000),
      { slot: 11, at: at(10, 20_000), trigger: "notify", missed: 0 },
    ],
    [
      "after an early tick, a NOTIFY waits for the claimed slot to begin",
      state(11, at(10, 20_000), true),
      at(10, 50_000),
      { slot: 12, at: at(11), trigger: "notify", missed: 0 },
    ],
    [
      "after an early tick without NOTIFY: the following slot's regular time",
      state(11, at(10, 20_000)),
      at(10, 50_000),
      { slot: 12, at: at(12, 5000), trigger: "timer", missed: 0 },
    ],
    [
      "an early tick never runs later than the regular one",
      state(10, at(10, 59_000), true),
      at(10, 59_500),
      { slot: 11, at: at(11, 5000), trigger: "timer", missed: 0 },
    ],
  ] as const)("%s", (_name, s, now, expected) => {
    expect(planNextTick(cfg, s, now)).toEqual(expected);
  });

  it("claims strictly increasing slots, never more than one ahead of the clock", () => {
    let s = state(null, null);
    let now = at(1000, 123);
    for (let i = 0; i < 500; i++) {
      const p = planNextTick(cfg, { ...s, wakePending: i % 3 !== 0 }, now);
      if (s.lastSlot !== null) expect(p.slot).toBeGreaterThan(s.lastSlot);
      const start = Math.max(now, p.at);
      expect(p.slot).toBeLessThanOrEqual(slotOf(start, I) + 1);
      s = state(p.slot, start);
      now = start + (i % 7) * 4000;
    }
  });
});
