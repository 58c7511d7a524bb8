import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventSubject, SUBJECT_PREFIX_PATTERN, tenantOfToken, tenantToken } from "./subject.ts";

describe("tenant subject tokens", () => {
  it.each([
    ["acme", "acme"],
    ["acme-eu_1", "acme-eu_1"],
    ["acme.eu", "acme~2Eeu"],
    ["a*b>c", "a~2Ab~3Ec"],
    ["a~2E", "a~7E2E"],
    ["café", "caf~C3~A9"],
    ["t/1:x", "t~2F1~3Ax"],
  ])("escapes %s as %s", (tenant, token) => {
    expect(tenantToken(tenant)).toBe(token);
    expect(tenantOfToken(token)).toBe(tenant);
  });

  it("makes one valid token of any tenant id, and a different one for each", () => {
    fc.assert(
      // Valid text: PostgreSQL text holds no lone surrogates.
      fc.property(
        fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" }),
        fc.string({ minLength: 1, maxLength: 40, unit: "grapheme-ascii" }),
        (a, b) => {
          const token = tenantToken(a);
          expect(token).toMatch(/^[A-Za-z0-9_~-]+$/);
          expect(tenantOfToken(token)).toBe(a);
          if (a !== b) expect(tenantToken(b)).not.toBe(token);
        },
      ),
    );
  });

  it("puts the token under the prefix", () => {
    expect(eventSubject("alerts.events", "acme.eu")).toBe("alerts.events.acme~2Eeu");
    expect(SUBJECT_PREFIX_PATTERN.test("alerts.events")).toBe(true);
    for (const bad of ["", "alerts.", ".alerts", "alerts.*", "alerts.>", "a b"]) {
      expect(SUBJECT_PREFIX_PATTERN.test(bad)).toBe(false);
    }
  });
});
