import { describe, expect, it } from "vitest";
import { T0, windowRule } from "./fixtures.ts";
import type { WindowEntry } from "./types.ts";
import { appendToWindow, inWindow, windowCondition } from "./window.ts";

/** An entry `s` seconds before T0. */
const ago = (s: number, value: number): WindowEntry => ({ ts: T0 - s * 1000, value });

describe("windowCondition (3 of the readings within 300 s are > 50)", () => {
  const rule = windowRule({ operator: ">", threshold: 50, window_seconds: 300, min_count: 3 });

  it.each<[string, WindowEntry[], boolean | null, number]>([
    ["empty buffer", [], false, 0],
    ["two matching", [ago(200, 60), ago(100, 70)], false, 2],
    ["three matching among others", [ago(250, 60), ago(200, 10), ago(100, 70), ago(0, 80)], true, 3],
    [
      "a reading exactly window_seconds old is outside (left-open window)",
      [ago(300, 60), ago(100, 70), ago(0, 80)],
      false,
      2,
    ],
    ["a reading 1 ms inside counts", [{ ts: T0 - 299_999, value: 60 }, ago(100, 70), ago(0, 80)], true, 3],
    ["future readings (device clock skew) count", [ago(10, 60), ago(0, 70), ago(-5, 80)], true, 3],
    ["unsorted buffer", [ago(0, 80), ago(250, 60), ago(100, 70)], true, 3],
  ])("%s", (_, buffer, status, count) => {
    expect(windowCondition(rule, buffer, T0)).toMatchObject({ status, value: count });
  });

  it("turns false as readings age out, with no new reading", () => {
    const buffer = [ago(250, 60), ago(100, 70), ago(0, 80)];
    expect(windowCondition(rule, buffer, T0).status).toBe(true);
    expect(windowCondition(rule, buffer, T0 + 50_000).status).toBe(false);
  });
});

describe("windowCondition with params.lastN (2 of the last 3 readings are >= 10)", () => {
  const rule = windowRule({
    operator: ">=",
    threshold: 10,
    window_seconds: 600,
    min_count: 2,
    params: { lastN: 3 },
  });

  it.each<[string, WindowEntry[], boolean]>([
    [
      "older matches beyond the last 3 do not count",
      [ago(50, 10), ago(40, 10), ago(30, 1), ago(20, 1), ago(10, 12)],
      false,
    ],
    ["2 of the last 3 match", [ago(30, 1), ago(20, 15), ago(10, 12)], true],
    ["last 3 are taken among readings still in the window", [ago(700, 10), ago(20, 1), ago(10, 12)], false],
  ])("%s", (_, buffer, status) => {
    expect(windowCondition(rule, buffer, T0).status).toBe(status);
  });
});

describe("appendToWindow (the semantics of every window buffer)", () => {
  const spec = { windowMs: 300_000, maxLen: 3 };

  it("appends, sorts, drops entries at or before now - window, keeps the newest maxLen", () => {
    const buffer = [ago(400, 1), ago(300, 2), ago(200, 3)];
    const next = appendToWindow(buffer, [ago(0, 6), ago(150, 4), ago(100, 5)], T0, spec);
    expect(next).toEqual([ago(150, 4), ago(100, 5), ago(0, 6)]);
  });

  it("stores a re-delivered reading once, and keeps stored entries first among equal timestamps", () => {
    const buffer = [ago(100, 1), ago(50, 2)];
    const next = appendToWindow(buffer, [ago(50, 2), ago(50, 3), ago(50, 3), ago(100, 1)], T0, {
      windowMs: 300_000,
      maxLen: 10,
    });
    expect(next).toEqual([ago(100, 1), ago(50, 2), ago(50, 3)]);
  });

  it("returns the buffer itself when nothing is added or dropped, a new array otherwise", () => {
    const buffer = [ago(100, 1), ago(50, 2)];
    expect(appendToWindow(buffer, [], T0, spec)).toBe(buffer);
    expect(appendToWindow(buffer, [ago(50, 2)], T0, spec)).toBe(buffer);
    expect(appendToWindow(buffer, [], T0 + 220_000, spec)).toEqual([ago(50, 2)]);
    const grown = appendToWindow(buffer, [ago(0, 3)], T0, spec);
    expect(grown).not.toBe(buffer);
    expect(buffer).toHaveLength(2);
  });

  it("inWindow filters and sorts without mutating", () => {
    const buffer = [ago(0, 2), ago(500, 0), ago(10, 1)];
    expect(inWindow(buffer, T0, 300_000)).toEqual([ago(10, 1), ago(0, 2)]);
    expect(buffer).toHaveLength(3);
  });
});
