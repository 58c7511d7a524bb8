import { describe, expect, it } from "vitest";
import { patternRule, T0 } from "./fixtures.ts";
import { absentCondition, risingCondition } from "./pattern.ts";
import type { WindowEntry } from "./types.ts";

const ago = (s: number, value: number): WindowEntry => ({ ts: T0 - s * 1000, value });

describe("risingCondition (3 consecutive rises within 600 s)", () => {
  const rule = patternRule({ params: { kind: "rising" }, min_count: 3 });

  it.each<[string, WindowEntry[], boolean]>([
    ["4 strictly increasing readings = 3 rises", [ago(40, 1), ago(30, 2), ago(20, 3), ago(10, 4)], true],
    ["only 2 rises", [ago(30, 2), ago(20, 3), ago(10, 4)], false],
    ["a flat step breaks the run", [ago(40, 1), ago(30, 2), ago(20, 2), ago(10, 4)], false],
    ["a dip earlier does not matter", [ago(50, 9), ago(40, 1), ago(30, 2), ago(20, 3), ago(10, 4)], true],
    ["a dip at the end breaks it", [ago(40, 1), ago(30, 2), ago(20, 3), ago(10, 4), ago(0, 3.5)], false],
    ["readings outside the window do not count", [ago(700, 1), ago(30, 2), ago(20, 3), ago(10, 4)], false],
    ["empty buffer", [], false],
  ])("%s", (_, buffer, status) => {
    const c = risingCondition(rule, buffer, T0);
    expect(c.status).toBe(status);
    expect(c.value).toBe(buffer.at(-1)?.value ?? null);
  });
});

describe("absentCondition (silent for 600 s)", () => {
  const rule = patternRule({ params: { kind: "absent" } });

  it.each<[string, number | null, boolean | null, number | null]>([
    ["seen 10 s ago", T0 - 10_000, false, 10],
    ["seen 599.999 s ago", T0 - 599_999, false, 599],
    ["seen exactly 600 s ago: silent for the whole window", T0 - 600_000, true, 600],
    ["seen an hour ago", T0 - 3_600_000, true, 3600],
    ["seen in the future (clock skew)", T0 + 5_000, false, 0],
    ["never seen and not tracked (state unavailable)", null, null, null],
  ])("%s", (_, lastSeen, status, silence) => {
    expect(absentCondition(rule, lastSeen, T0)).toEqual({ status, value: silence, observedAt: lastSeen });
  });
});
