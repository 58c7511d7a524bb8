import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { zipfQuantile } from "./zipf.ts";

describe("zipfQuantile", () => {
  it("maps [0, 1) onto integer weights 1 .. max, non-decreasing", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.constantFrom(0.8, 1, 1.1, 2),
        fc.integer({ min: 1, max: 1_000_000 }),
        (u, v, exponent, max) => {
          const a = zipfQuantile(Math.min(u, v), exponent, max);
          const b = zipfQuantile(Math.max(u, v), exponent, max);
          expect(Number.isInteger(a) && a >= 1 && b <= max).toBe(true);
          expect(a).toBeLessThanOrEqual(b);
        },
      ),
    );
  });

  it("is heavy-tailed for exponent 1.1: a small median, a tail up to the maximum", () => {
    expect(zipfQuantile(0, 1.1, 1_000_000)).toBe(1);
    expect(zipfQuantile(0.5, 1.1, 1_000_000)).toBeLessThan(200);
    expect(zipfQuantile(0.999999, 1.1, 1_000_000)).toBeGreaterThan(900_000);
  });
});
