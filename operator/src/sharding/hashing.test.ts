import { describe, expect, it } from "vitest";
import { fmix32, hashTenantId } from "./hashing.ts";

describe("hashTenantId", () => {
  it("is pinned: plans break ties with it, so a change would reshuffle equal tenants", () => {
    // FNV-1a 32 + fmix32, computed independently of this code.
    expect(hashTenantId("")).toBe(2872998923);
    expect(hashTenantId("acme")).toBe(2019603394);
    expect(hashTenantId("tenant-1")).toBe(1151549711);
  });

  it("spreads ids that differ in one character over all bits", () => {
    const a = hashTenantId("tenant-1");
    const b = hashTenantId("tenant-2");
    const differingBits = (a ^ b).toString(2).replaceAll("0", "").length;
    expect(differingBits).toBeGreaterThan(8);
  });
});

describe("fmix32", () => {
  it("returns an unsigned 32-bit integer and maps 0 to 0", () => {
    expect(fmix32(0)).toBe(0);
    const h = fmix32(-1);
    expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
  });
});
