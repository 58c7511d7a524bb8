import { describe, expect, it } from "vitest";
import { ManualClock } from "../tick/clock.ts";
import { TickScheduler } from "../tick/tickScheduler.ts";
import { createReadiness, createTickWatchdog, tickStuckAfterMs } from "./probes.ts";

describe("createReadiness", () => {
  it("is ready when every check answers, caches the answer, and asks again after the cache expires", async () => {
    const clock = new ManualClock(0);
    let calls = 0;
    let healthy = true;
    const ready = createReadiness({
      clock,
      checks: [async () => calls++, async () => (healthy ? "PONG" : Promise.reject(new Error("down")))],
      timeoutMs: 1000,
      cacheMs: 2000,
      draining: () => false,
    });
    expect(await ready()).toBe(true);
    healthy = false;
    expect(await ready()).toBe(true); // cached
    expect(calls).toBe(1);
    await clock.advance(2000);
    expect(await ready()).toBe(false);
    expect(calls).toBe(2);
  });

  it("a check that does not answer in time fails fast", async () => {
    const clock = new ManualClock(0);
    const ready = createReadiness({
      clock,
      checks: [() => new Promise(() => {})],
      timeoutMs: 1000,
      cacheMs: 0,
      draining: () => false,
    });
    const answer = ready();
    await clock.advance(1000);
    expect(await answer).toBe(false);
  });

  it("is never ready while draining", async () => {
    const ready = createReadiness({
      clock: new ManualClock(0),
      checks: [async () => "ok"],
      timeoutMs: 1000,
      cacheMs: 0,
      draining: () => true,
    });
    expect(await ready()).toBe(false);
  });
});

describe("tickStuckAfterMs", () => {
  it.each([
    [1_000, 120_000],
    [60_000, 300_000],
    [300_000, 1_500_000],
  ])("interval %d ms → %d ms", (intervalMs, expected) => {
    expect(tickStuckAfterMs(intervalMs)).toBe(expected);
  });
});

describe("createTickWatchdog", () => {
  const I = 60_000;

  /** The scheduler of runEvaluator, beating the watchdog at every tick start. */
  function run(runTick: () => Promise<void>, draining = () => false) {
    const clock = new ManualClock(100 * I);
    const watchdog = createTickWatchdog({ clock, stuckAfterMs: tickStuckAfterMs(I), draining });
    const scheduler = new TickScheduler({
      clock,
      config: { intervalMs: I, offsetMs: 59_000, minIntervalMs: 15_000 },
      runTick: async () => {
        watchdog.beat();
        await runTick();
      },
    });
    const stop = new AbortController();
    const done = scheduler.run(stop.signal);
    return { clock, watchdog, stop, done };
  }

  it("stays healthy through an outage: failed ticks still start every interval", async () => {
    const t = run(async () => {
      throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
    });
    for (let i = 0; i < 30; i++) {
      await t.clock.advance(I / 2);
      expect(t.watchdog.reasons()).toEqual([]);
    }
    t.stop.abort();
    await t.done;
  });

  it("stays healthy while waiting for the first tick (at the shard's offset in the slot)", async () => {
    let started = 0;
    const t = run(async () => {
      started++;
    });
    await t.clock.advance(58_999); // started at the slot's beginning; the offset is 59 s
    expect(started).toBe(0);
    expect(t.watchdog.reasons()).toEqual([]);
    t.stop.abort();
    await t.done;
  });

  it("fails once no tick has started for the limit, and says for how long", async () => {
    // The first tick starts and never returns: the loop is stuck.
    const t = run(() => new Promise(() => {}));
    await t.clock.advance(59_000); // the first tick starts
    await t.clock.advance(300_000);
    expect(t.watchdog.reasons()).toEqual([]);
    await t.clock.advance(1_000);
    expect(t.watchdog.reasons()).toEqual(["no tick started and no tenant evaluated for 301s (limit 300s)"]);
    // A tenant evaluation finishing is progress too.
    t.watchdog.beat();
    expect(t.watchdog.reasons()).toEqual([]);
  });

  it("never fails while draining", async () => {
    let draining = false;
    const t = run(
      () => new Promise(() => {}),
      () => draining,
    );
    await t.clock.advance(59_000 + 400_000);
    expect(t.watchdog.reasons()).toHaveLength(1);
    draining = true;
    expect(t.watchdog.reasons()).toEqual([]);
  });
});
