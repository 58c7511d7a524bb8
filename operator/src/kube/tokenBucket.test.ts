import { describe, expect, it } from "vitest";
import type { Clock } from "../../../runtime/clock.ts";
import { type Lane, TokenBucket } from "./tokenBucket.ts";

/** A clock that moves only in `advance`, firing due timers in time order (ties in creation order). */
class FakeClock implements Clock {
  #now = 1_000_000;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  now() {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number) {
    this.#timers.set(++this.#seq, { at: this.#now + ms, fn });
    return this.#seq;
  }
  clearTimeout(handle: unknown) {
    this.#timers.delete(handle as number);
  }
  async advance(ms: number) {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      const next = [...this.#timers]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
    }
    this.#now = end;
    await settle();
  }
  /** Moves time without firing timers: a busy event loop runs them late. */
  jump(ms: number) {
    this.#now += ms;
  }
}

const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
};

/** Issues a request and records when (on the fake clock) it got its token. */
function request(
  bucket: TokenBucket,
  clock: FakeClock,
  log: { id: string; at: number; waited: number }[],
  id: string,
  lane: Lane = "normal",
) {
  void bucket.take(lane).then((waited) => log.push({ id, at: clock.now(), waited }));
}

/** The most requests admitted within any window of `windowMs` (closed on both ends). */
function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! > windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe("TokenBucket", () => {
  it("starts full: a burst goes at once, the next request waits one token interval", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 5, burst: 3, clock });
    const log: { id: string; at: number; waited: number }[] = [];
    const t0 = clock.now();
    for (const id of ["a", "b", "c", "d", "e"]) request(bucket, clock, log, id);
    await clock.advance(0);
    expect(log.map((l) => l.id)).toEqual(["a", "b", "c"]);
    expect(log.every((l) => l.waited === 0)).toBe(true);
    await clock.advance(199);
    expect(log).toHaveLength(3);
    await clock.advance(1);
    expect(log.at(-1)).toEqual({ id: "d", at: t0 + 200, waited: 200 });
    await clock.advance(200);
    expect(log.at(-1)).toEqual({ id: "e", at: t0 + 400, waited: 400 });
    expect(bucket.waiting).toBe(0);
  });

  it("refills at qps up to burst and no further, however long it stays idle", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 4, clock });
    const log: { id: string; at: number; waited: number }[] = [];
    for (let i = 0; i < 4; i++) request(bucket, clock, log, `drain${i}`);
    await clock.advance(250); // 2.5 tokens back
    for (let i = 0; i < 3; i++) request(bucket, clock, log, `half${i}`);
    await clock.advance(0);
    expect(log.filter((l) => l.id.startsWith("half") && l.waited === 0)).toHaveLength(2);
    await clock.advance(50); // the third gets the token completed at +0.5
    expect(log.find((l) => l.id === "half2")?.waited).toBe(50);

    await clock.advance(60_000); // an hour's worth of refill is still only `burst` tokens
    for (let i = 0; i < 6; i++) request(bucket, clock, log, `idle${i}`);
    await clock.advance(0);
    expect(log.filter((l) => l.id.startsWith("idle"))).toHaveLength(4);
  });

  it("never lets more than burst + qps × t through in any window of t", async () => {
    const clock = new FakeClock();
    const qps = 7;
    const burst = 5;
    const bucket = new TokenBucket({ qps, burst, clock });
    const log: { id: string; at: number; waited: number }[] = [];
    // Bursts at uneven moments, with idle spells in between.
    let n = 0;
    for (const [gap, count] of [
      [0, 40],
      [3000, 3],
      [100, 30],
      [8000, 12],
      [0, 1],
    ] as const) {
      await clock.advance(gap);
      for (let i = 0; i < count; i++) request(bucket, clock, log, String(n++));
    }
    await clock.advance(60_000);
    expect(log).toHaveLength(n);
    const times = log.map((l) => l.at);
    for (const windowMs of [0, 1, 142, 143, 500, 1000, 2500, 10_000]) {
      expect(maxInWindow(times, windowMs)).toBeLessThanOrEqual(burst + Math.floor((qps * windowMs) / 1000));
    }
    // ... and it is nearly reached (timers round up to whole ms, so a 1/7 s token may come 1 ms
    // late): the limiter is no slower than it must be.
    expect(maxInWindow(times, 1000)).toBeGreaterThanOrEqual(burst + qps - 1);
  });

  it("serves waiters first come, first served; a newcomer never overtakes a waiter", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 2, burst: 1, clock });
    const log: { id: string; at: number; waited: number }[] = [];
    const t0 = clock.now();
    for (const id of ["1", "2", "3"]) request(bucket, clock, log, id);
    await clock.advance(0);
    // The event loop is busy past the moment "2" should have had its token: its timer has not run
    // when "4" arrives and finds a free token. "4" still queues behind "2" and "3".
    clock.jump(600);
    request(bucket, clock, log, "4");
    await clock.advance(100);
    request(bucket, clock, log, "5");
    await clock.advance(5000);
    expect(log.map((l) => l.id)).toEqual(["1", "2", "3", "4", "5"]);
    expect(log.map((l) => l.at - t0)).toEqual([0, 600, 1000, 1500, 2000]);
  });

  it("puts a lease request before waiting requests, without ever starving them", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 1, clock });
    const log: { id: string; at: number; waited: number }[] = [];
    // A backlog of 50 normal requests (5 s of tokens), then a lease renewal.
    for (let i = 0; i < 50; i++) request(bucket, clock, log, `n${i}`);
    await clock.advance(30);
    request(bucket, clock, log, "lease", "lease");
    await clock.advance(1000);
    const lease = log.find((l) => l.id === "lease")!;
    expect(lease.waited).toBeLessThanOrEqual(100);

    // Lease requests arriving faster than tokens: normal requests still get every other token.
    const stream = setIntervalOn(clock, 50, () => request(bucket, clock, log, "lease", "lease"));
    const before = log.filter((l) => l.id.startsWith("n")).length;
    await clock.advance(2000);
    stream.stop();
    const during = log.filter((l) => l.id.startsWith("n")).length - before;
    expect(during).toBeGreaterThanOrEqual(9); // 20 tokens in 2 s, every other one
    await clock.advance(60_000);
    // Every normal request got its token, in the order it asked.
    expect(log.filter((l) => l.id.startsWith("n")).map((l) => l.id)).toEqual(
      Array.from({ length: 50 }, (_, i) => `n${i}`),
    );
  });

  it("refuses a rate or a burst that could never admit a request", () => {
    expect(() => new TokenBucket({ qps: 0, burst: 1 })).toThrow(/qps/);
    expect(() => new TokenBucket({ qps: Number.NaN, burst: 1 })).toThrow(/qps/);
    expect(() => new TokenBucket({ qps: 1, burst: 0 })).toThrow(/burst/);
    expect(() => new TokenBucket({ qps: 1, burst: 1.5 })).toThrow(/burst/);
  });
});

function setIntervalOn(clock: FakeClock, ms: number, fn: () => void): { stop(): void } {
  let handle: unknown;
  const tick = () => {
    fn();
    handle = clock.setTimeout(tick, ms);
  };
  handle = clock.setTimeout(tick, ms);
  return { stop: () => clock.clearTimeout(handle) };
}
