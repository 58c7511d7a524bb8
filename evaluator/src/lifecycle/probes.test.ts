import { describe, expect, it } from "vitest";
import { ManualClock } from "../tick/clock.ts";
import { createReadiness } from "./probes.ts";

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
