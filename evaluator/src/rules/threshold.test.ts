import { describe, expect, it } from "vitest";
import { compare } from "./compare.ts";
import { T0, thresholdRule } from "./fixtures.ts";
import { thresholdCondition } from "./threshold.ts";
import type { Operator, Reading } from "./types.ts";

const at = (s: number, value: number): Reading => ({
  deviceId: "d1",
  metric: "temp",
  ts: T0 + s * 1000,
  value,
});

describe("compare", () => {
  it.each<[number, Operator, number, boolean]>([
    [31, ">", 30, true],
    [30, ">", 30, false],
    [30, ">=", 30, true],
    [29.9, ">=", 30, false],
    [29, "<", 30, true],
    [30, "<", 30, false],
    [30, "<=", 30, true],
    [30, "==", 30, true],
    [0.1 + 0.2, "==", 0.3, false],
    [30, "!=", 30, false],
    [-0, "==", 0, true],
  ])("%d %s %d → %s", (value, op, threshold, expected) => {
    expect(compare(value, op, threshold)).toBe(expected);
  });
});

describe("thresholdCondition", () => {
  const rule = thresholdRule({ operator: ">", threshold: 30 });

  it.each([
    ["latest above fires", [at(0, 20), at(10, 35)], true, 35],
    ["latest below does not, even after an earlier breach", [at(0, 40), at(10, 25)], false, 25],
    ["exactly at the threshold is not above", [at(0, 30)], false, 30],
  ])("%s", (_, readings, status, value) => {
    const c = thresholdCondition(rule, readings);
    expect(c).toEqual({ status, value, observedAt: readings.at(-1)?.ts });
  });

  it("is unknown without a new reading (the alert neither resolves nor re-fires)", () => {
    expect(thresholdCondition(rule, [])).toEqual({ status: null, value: null, observedAt: null });
  });
});
