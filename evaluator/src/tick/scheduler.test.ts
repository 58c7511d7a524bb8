import { describe, expect, it } from "vitest";
import { flushPromises, ManualClock } from "./clock.ts";
import { type TickRequest, TickScheduler } from "./scheduler.ts";

const I = 10_000;

function setup(tickMs: (tick: TickRequest) => number = () => 100) {
  const clock = new ManualClock(100 * I + 500);
  const ticks: TickRequest[] = [];
  const missed: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const scheduler = new TickScheduler({
    clock,
    config: { intervalMs: I, offsetMs: 1000, minIntervalMs: 2500 },
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

  it("coalesces a burst of wake-ups into at most one early tick", async () => {
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
    expect(during[0]).toMatchObject({ slot: 102, trigger: "notify" });
    // The early tick claimed slot 102, so its regular tick is not run again.
    await t.clock.advance(I);
    t.stop.abort();
    await t.done;
    const slots = t.ticks.map((x) => x.slot);
    expect(new Set(slots).size).toBe(slots.length);
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
