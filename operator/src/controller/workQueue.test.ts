import { describe, expect, it } from "vitest";
import { WorkQueue } from "./workQueue.ts";

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("WorkQueue", () => {
  it("deduplicates a key added many times before processing", async () => {
    const q = new WorkQueue();
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) q.add("ns/a");
    q.add("ns/b");
    const done = q.run(
      2,
      async (key) => {
        seen.push(key);
        if (seen.length === 2) q.shutDown();
        return undefined;
      },
      () => {},
    );
    await done;
    expect(seen.sort()).toEqual(["ns/a", "ns/b"]);
  });

  it("never runs one key twice at once, and re-runs it when added during processing", async () => {
    const q = new WorkQueue();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const gate = deferred();
    q.add("ns/a");
    const done = q.run(
      4,
      async () => {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        if (calls === 1) {
          // While the first reconcile is in flight, the key is added again (an informer event).
          q.add("ns/a");
          q.add("ns/a");
          await gate.promise;
        }
        running--;
        if (calls === 2) q.shutDown();
        return undefined;
      },
      () => {},
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toBe(1);
    gate.resolve();
    await done;
    expect(calls).toBe(2);
    expect(maxRunning).toBe(1);
  });

  it("retries failures with exponential per-key backoff and forgets on success", async () => {
    const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 40 });
    const times: number[] = [];
    const errors: unknown[] = [];
    q.add("ns/a");
    await q.run(
      1,
      async () => {
        times.push(Date.now());
        if (times.length < 4) throw new Error(`boom ${times.length}`);
        q.shutDown();
        return undefined;
      },
      (_k, e) => errors.push(e),
    );
    expect(errors).toHaveLength(3);
    expect(q.failures("ns/a")).toBe(0);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // 5, 10, 20 ms of backoff (timers never fire early).
    expect(gaps[0]).toBeGreaterThanOrEqual(4);
    expect(gaps[1]).toBeGreaterThanOrEqual(9);
    expect(gaps[2]).toBeGreaterThanOrEqual(19);
  });

  it("reports the handler running longest and when it started, until it returns", async () => {
    let now = 1_000;
    const q = new WorkQueue({
      clock: { now: () => now, setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: () => {} },
    });
    const gates = { "ns/a": deferred(), "ns/b": deferred() };
    const started: string[] = [];
    const startedB = deferred();
    expect(q.oldestInFlight()).toBeUndefined();
    q.add("ns/a");
    const done = q.run(
      2,
      async (key) => {
        started.push(key);
        if (key === "ns/b") startedB.resolve();
        await gates[key as keyof typeof gates].promise;
        return undefined;
      },
      () => {},
    );
    await new Promise((r) => setImmediate(r));
    expect(q.oldestInFlight()).toEqual({ key: "ns/a", since: 1_000 });
    now = 5_000;
    q.add("ns/b");
    await startedB.promise;
    expect(q.oldestInFlight()).toEqual({ key: "ns/a", since: 1_000 });
    gates["ns/a"].resolve();
    await new Promise((r) => setImmediate(r));
    expect(q.oldestInFlight()).toEqual({ key: "ns/b", since: 5_000 });
    gates["ns/b"].resolve();
    await new Promise((r) => setImmediate(r));
    expect(q.oldestInFlight()).toBeUndefined();
    q.shutDown();
    await done;
    expect(started).toEqual(["ns/a", "ns/b"]);
  });

  it("caps the backoff", () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000 });
    const delays = Array.from({ length: 8 }, () => q.addRateLimited("k"));
    q.shutDown();
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  });

  it("requeues after the delay a handler asks for", async () => {
    const q = new WorkQueue();
    let calls = 0;
    const start = Date.now();
    q.add("ns/a");
    await q.run(
      1,
      async () => {
        calls++;
        if (calls === 2) {
          q.shutDown();
          return undefined;
        }
        return { requeueAfterMs: 30 };
      },
      () => {},
    );
    expect(calls).toBe(2);
    expect(Date.now() - start).toBeGreaterThanOrEqual(29);
  });

  it("keeps the sooner of two timed requeues", async () => {
    const q = new WorkQueue();
    const start = Date.now();
    q.addAfter("ns/a", 5_000);
    q.addAfter("ns/a", 20);
    let at = 0;
    await q.run(
      1,
      async () => {
        at = Date.now() - start;
        q.shutDown();
        return undefined;
      },
      () => {},
    );
    expect(at).toBeGreaterThanOrEqual(19);
    expect(at).toBeLessThan(4_000);
  });
});
