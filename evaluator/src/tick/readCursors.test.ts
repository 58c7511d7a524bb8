import { describe, expect, it } from "vitest";
import type { Reading } from "../rules/types.ts";
import { ReadCursors } from "./readCursors.ts";

const r = (ts: number, value = 1, deviceId = "d1"): Reading => ({ deviceId, metric: "temp", ts, value });

describe("ReadCursors", () => {
  it("reads two intervals plus the lateness back for a tenant it has not evaluated", () => {
    const c = new ReadCursors({ intervalMs: 10_000, allowedLatenessMs: 2000 });
    expect(c.since("t", 100_000)).toBe(100_000 - 20_000 - 2000);
  });

  it("re-reads the lateness zone, and drops what was already evaluated there", () => {
    const c = new ReadCursors({ intervalMs: 10_000, allowedLatenessMs: 2000 });
    const first = [r(95_000), r(99_500)];
    c.advance("t", 100_000, first);
    expect(c.since("t", 110_000)).toBe(98_000);
    // 99_500 is read again (overlap) and dropped; 99_800 committed late and is new; 105_000 is new.
    const second = [r(99_500), r(99_800), r(105_000)];
    expect(c.fresh("t", second)).toEqual([r(99_800), r(105_000)]);
  });

  it("a reading with the same ts but another device is not confused", () => {
    const c = new ReadCursors({ intervalMs: 10_000, allowedLatenessMs: 2000 });
    c.advance("t", 100_000, [r(99_500, 1, "d1")]);
    expect(c.fresh("t", [r(99_500, 1, "d1"), r(99_500, 1, "d2")])).toEqual([r(99_500, 1, "d2")]);
  });

  it("forgets tenants that left the membership", () => {
    const c = new ReadCursors({ intervalMs: 10_000, allowedLatenessMs: 0 });
    c.advance("a", 1, []);
    c.advance("b", 1, []);
    c.retain(new Set(["b"]));
    expect(c.size).toBe(1);
    expect(c.since("a", 100_000)).toBe(80_000);
  });
});
