import { describe, expect, it } from "vitest";
import { advisoryLockKey, MIGRATION_LOCK_KEY, MIGRATION_LOCK_NAME } from "./advisoryLockKey.ts";

describe("advisoryLockKey", () => {
  it("is a stable signed 64-bit integer derived from the name", () => {
    expect(advisoryLockKey("a")).toBe(advisoryLockKey("a"));
    expect(advisoryLockKey("a")).not.toBe(advisoryLockKey("b"));
    for (const name of ["a", "b", MIGRATION_LOCK_NAME]) {
      const key = advisoryLockKey(name);
      expect(key).toBeGreaterThanOrEqual(-(2n ** 63n));
      expect(key).toBeLessThan(2n ** 63n);
    }
  });

  it("pins the migration lock key, which other deployments of the product rely on", () => {
    // Changing it would let an old and a new runner migrate the same database at once.
    expect(MIGRATION_LOCK_KEY).toBe(advisoryLockKey("evaluator-operator:schema-migrations"));
    expect(MIGRATION_LOCK_KEY.toString()).toMatchInlineSnapshot(`"5209619219194047509"`);
  });
});
