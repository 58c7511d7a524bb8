import { describe, expect, it } from "vitest";
import { CircuitBreaker, CircuitOpenError } from "./circuitBreaker.ts";
import { ManualClock } from "./clock.ts";

class Outage extends Error {}
class BadRequest extends Error {}

function breaker(clock = new ManualClock(0)) {
  const states: string[] = [];
  const b = new CircuitBreaker({
    name: "postgres",
    clock,
    failureThreshold: 3,
    cooldownMs: 1000,
    isOutage: (err) => err instanceof Outage,
    onStateChange: (s) => states.push(s),
  });
  return { b, clock, states };
}

const fail = (err: Error) => () => Promise.reject(err);
const ok = () => Promise.resolve("ok");

describe("CircuitBreaker", () => {
  it("opens after K consecutive outages and then fails fast without calling", async () => {
    const { b, states } = breaker();
    for (let i = 0; i < 3; i++) await expect(b.run(fail(new Outage()))).rejects.toBeInstanceOf(Outage);
    expect(b.state).toBe("open");
    let called = false;
    await expect(
      b.run(async () => {
        called = true;
      }),
    ).rejects.toBeInstanceOf(CircuitOpenError);
    expect(called).toBe(false);
    expect(b.allows()).toBe(false);
    expect(states).toEqual(["open"]);
  });

  it("a success resets the count; request errors never count", async () => {
    const { b } = breaker();
    await expect(b.run(fail(new Outage()))).rejects.toThrow();
    await expect(b.run(fail(new Outage()))).rejects.toThrow();
    await b.run(ok);
    await expect(b.run(fail(new Outage()))).rejects.toThrow();
    for (let i = 0; i < 5; i++) await expect(b.run(fail(new BadRequest()))).rejects.toThrow();
    expect(b.state).toBe("closed");
  });

  it("half-opens after the cooldown: one trial closes it on success, reopens it on failure", async () => {
    const { b, clock, states } = breaker();
    for (let i = 0; i < 3; i++) await expect(b.run(fail(new Outage()))).rejects.toThrow();
    await clock.advance(1000);
    expect(b.state).toBe("half-open");
    await expect(b.run(fail(new Outage()))).rejects.toBeInstanceOf(Outage);
    expect(b.state).toBe("open");
    await clock.advance(1000);
    let release!: () => void;
    const trial = b.run(() => new Promise<string>((r) => (release = () => r("ok"))));
    // While the trial is in flight, everyone else fails fast.
    await expect(b.run(ok)).rejects.toBeInstanceOf(CircuitOpenError);
    release();
    await expect(trial).resolves.toBe("ok");
    expect(b.state).toBe("closed");
    expect(states).toEqual(["open", "half-open", "open", "half-open", "closed"]);
  });
});
