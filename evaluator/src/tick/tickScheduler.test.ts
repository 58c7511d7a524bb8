import { describe, expect, it } from "vitest";
import { flushPromises, ManualClock } from "./clock.ts";
import type { ScheduleConfig } from "./slotSchedule.ts";
import { type TickRequest, TickScheduler } from "./tickScheduler.ts";

const I = 10_000;

function setup(
  tickMs: (tick: TickRequest) => number = () => 100,
  config: ScheduleConfig = { intervalMs: I, offsetMs: 1000, minIntervalMs: 2500 },
  start = 100 * I + 500,
) {
  const clock = new ManualClock(start);
  const ticks: TickRequest[] = [];
  const missed: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const scheduler = new TickScheduler({
    clock,
    config,
    runTick: async (tick) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      ticks.push(tick);
      await new Promise<void>((r) => clock.setTimeout(r, tickMs(tick)));
      running--;
    },
    onMissed: (n) => missed.push(n),
  });
  const stop = new AbortController();
  const done = scheduler.run(stop.signal);
  return { clock, ticks, missed, scheduler, stop, done, maxRunning: () => maxRunning };
}

describe("TickScheduler", () => {
  it("ticks once per slot at the shard offset, passing the tick timestamp", async () => {
    const t = setup();
    await t.clock.advance(5 * I);
    t.stop.abort();
    await t.done;
    expect(t.ticks.map((x) => x.slot)).toEqual([100, 101, 102, 103, 104]);
    expect(t.ticks.map((x) => x.now % I)).toEqual([1000, 1000, 1000, 1000, 1000]);
    expect(t.ticks.every((x) => x.trigger === "timer")).toBe(true);
  });

  it("coalesces a burst of wake-ups into one early tick, leaving the regular ticks in place", async () => {
    const t = setup();
    await t.clock.advance(I - 500); // slot 100 ticked at its offset; now at the start of slot 101
    await t.clock.advance(1500); // slot 101's regular tick at +1000
    const before = t.ticks.length;
    for (let i = 0; i < 500; i++) {
      t.scheduler.wake();
      if (i % 50 === 0) await t.clock.advance(100); // 500 wakes within one second
    }
    await t.clock.advance(I / 2);
    const during = t.ticks.slice(before);
    expect(during.filter((x) => x.trigger === "notify")).toHaveLength(1);
    // Once the minimum interval has passed since slot 101's tick, in the slot it runs in.
    expect(during[0]).toEqual({ slot: 101, now: 101 * I + 3500, trigger: "notify" });
    expect(t.scheduler.lastSlot).toBe(101);
    // Slot 102's regular tick still runs, at its offset.
    await t.clock.advance(I);
    t.stop.abort();
    await t.done;
    expect(t.ticks.slice(before + 1)).toEqual([{ slot: 102, now: 102 * I + 1000, trigger: "timer" }]);
  });

  it("one NOTIFY during the 9.1 s tick (I = 60 s): ticks at 9.1, 24.1 (early), 69.1, 129.1 s", async () => {
    const minute = 60_000;
    const B = 1000;
    const t = setup(() => 1000, { intervalMs: minute, offsetMs: 9100, minIntervalMs: 15_000 }, B * minute);
    await t.clock.advance(9500); // the regular tick at 9.1 s is running; the NOTIFY arrives
    t.scheduler.wake();
    await t.clock.advance(2 * minute + 20_000);
    t.stop.abort();
    await t.done;
    expect(t.ticks).toEqual([
      { slot: B, now: B * minute + 9100, trigger: "timer" },
      { slot: B, now: B * minute + 24_100, trigger: "notify" },
      { slot: B + 1, now: (B + 1) * minute + 9100, trigger: "timer" },
      { slot: B + 2, now: (B + 2) * minute + 9100, trigger: "timer" },
    ]);
    expect(t.missed).toEqual([]);
  });

  it("never runs two ticks at once, counts missed slots after an overrun and skips ahead", async () => {
    const t = setup((tick) => (tick.slot === 101 ? 3.5 * I : 100));
    await t.clock.advance(8 * I);
    t.stop.abort();
    await t.done;
    expect(t.maxRunning()).toBe(1);
    const slots = t.ticks.map((x) => x.slot);
    expect(slots.slice(0, 3)).toEqual([100, 101, 104]);
    expect(t.missed).toEqual([2]);
  });

  it("stops waiting at once when aborted, after the running tick", async () => {
    const t = setup(() => 3000);
    await t.clock.advance(600); // the first tick starts at the offset (+1000) and runs 3 s
    t.stop.abort();
    let finished = false;
    void t.done.then(() => {
      finished = true;
    });
    await flushPromises();
    expect(finished).toBe(false); // the start-up tick is still running
    await t.clock.advance(3000);
    expect(finished).toBe(true);
    expect(t.clock.pendingTimers).toBe(0);
  });
});
