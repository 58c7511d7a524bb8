import { describe, expect, it } from "vitest";
import { forEachConcurrently } from "./concurrency.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("forEachConcurrently", () => {
  it("keeps at most `limit` calls in flight and runs every item", async () => {
    let inFlight = 0;
    let max = 0;
    const seen: number[] = [];
    const started = await forEachConcurrently(
      Array.from({ length: 20 }, (_, i) => i),
      3,
      async (i) => {
        inFlight++;
        max = Math.max(max, inFlight);
        try {
          await tick();
          if (i === 5) throw new Error("isolated");
          seen.push(i);
        } finally {
          inFlight--;
        }
      },
    );
    expect(started).toBe(20);
    expect(max).toBe(3);
    expect(seen).toHaveLength(19);
  });

  it("starts nothing new after the signal aborts", async () => {
    const stop = new AbortController();
    const seen: number[] = [];
    const started = await forEachConcurrently(
      [1, 2, 3, 4, 5, 6],
      2,
      async (i) => {
        seen.push(i);
        if (i === 2) stop.abort();
        await tick();
      },
      stop.signal,
    );
    expect(started).toBe(2);
    expect(seen).toEqual([1, 2]);
  });
});
