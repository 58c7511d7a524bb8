import { describe, expect, it } from "vitest";
import {
  baselineWindowKey,
  cooldownKey,
  keyPart,
  tenantKeysPattern,
  tenantStateField,
  tenantStateKey,
  tenantTag,
  tickLeaseKey,
  windowBufferKey,
} from "./keys.ts";

const TENANT = "6f1c2d3e-0000-4000-8000-000000000001";

describe("keys", () => {
  it("puts the tenant in a hash tag and follows the documented layout", () => {
    expect(windowBufferKey(TENANT, "42", "dev-7")).toBe(`wbuf:{${TENANT}}:42:dev-7`);
    expect(cooldownKey(TENANT, "42", "dev-7")).toBe(`cooldown:{${TENANT}}:42:dev-7`);
    expect(tenantStateKey(TENANT)).toBe(`tstate:{${TENANT}}`);
    expect(tenantStateField("42", "dev-7", "cond")).toBe("42:dev-7:cond");
    expect(tenantStateField("a:b", "c", "anom")).toBe("a%3Ab:c:anom");
    expect(baselineWindowKey(TENANT, "42", "dev-7")).toBe(`wbufjson:{${TENANT}}:42:dev-7`);
    expect(tickLeaseKey(TENANT, 29_000_000)).toBe(`tick:{${TENANT}}:29000000`);
  });

  it("escapes separators so distinct pairs never share a key, and braces so the tag holds", () => {
    expect(windowBufferKey("t", "a:b", "c")).not.toBe(windowBufferKey("t", "a", "b:c"));
    expect(keyPart("a:b{c}%")).toBe("a%3Ab%7Bc%7D%25");
    expect(tenantTag("x}y")).toBe("{x%7Dy}");
    // The first "{...}" of every key is exactly the tenant's tag: one Cluster slot per tenant.
    for (const key of [windowBufferKey("x}y", "r", "d"), tickLeaseKey("x}y", 1), tenantStateKey("x}y")]) {
      expect(key.slice(key.indexOf("{"), key.indexOf("}") + 1)).toBe(tenantTag("x}y"));
    }
  });

  it("refuses a tick slot that is not a non-negative integer", () => {
    expect(() => tickLeaseKey(TENANT, 1.5)).toThrow(RangeError);
    expect(() => tickLeaseKey(TENANT, -1)).toThrow(RangeError);
  });

  it("builds a SCAN pattern for all of a tenant's keys, escaping glob characters", () => {
    expect(tenantKeysPattern(TENANT)).toBe(`*{${TENANT}}*`);
    expect(tenantKeysPattern("a*b[c]")).toBe("*{a\\*b\\[c\\]}*");
  });
});
