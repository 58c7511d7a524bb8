import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { modHashShard, planByHashing, rendezvousShard } from "./baselines.ts";
import type { TenantLoad } from "./planAssignment.ts";

const idsArb = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 200 });

describe("modHashShard", () => {
  it("is the first 8 bytes of sha256(id), big-endian, mod N", () => {
    // Values computed independently of this code (Python hashlib).
    expect(modHashShard("tenant-1", 7)).toBe(3);
    expect(modHashShard("tenant-1", 1000)).toBe(230);
    expect(modHashShard("acme", 16)).toBe(0);
  });

  it("moves most tenants when N grows by one", () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `t${i}`);
    const moved = ids.filter((id) => modHashShard(id, 8) !== modHashShard(id, 9)).length;
    expect(moved).toBeGreaterThan(800); // 8/9 of them in expectation
  });
});

describe("rendezvousShard", () => {
  it("stays in range, and adding a shard only moves tenants onto the new shard", () => {
    fc.assert(
      fc.property(idsArb, fc.integer({ min: 1, max: 40 }), (ids, shardCount) => {
        for (const id of ids) {
          const before = rendezvousShard(id, shardCount);
          const after = rendezvousShard(id, shardCount + 1);
          expect(before >= 0 && before < shardCount).toBe(true);
          if (after !== before) expect(after).toBe(shardCount);
        }
      }),
    );
  });

  it("spreads tenants roughly evenly", () => {
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[rendezvousShard(`tenant-${i}`, 10)]! += 1;
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(150);
  });
});

describe("planByHashing", () => {
  it("judges the hashed assignment like a plan, against the tenants' current shards", () => {
    const tenants: TenantLoad[] = Array.from({ length: 50 }, (_, i) => ({
      id: `t${i}`,
      weight: 10,
      shard: rendezvousShard(`t${i}`, 4),
    }));
    const plan = planByHashing(tenants, 3, rendezvousShard);
    // Scale-down with rendezvous: exactly the tenants of shard 3 move.
    const onRemoved = tenants.filter((t) => t.shard === 3);
    expect(plan.moves.map((m) => m.id).sort()).toEqual(onRemoved.map((t) => t.id).sort());
    expect(plan.movedLoad).toBe(10 * onRemoved.length);
    expect(plan.minimumMovedLoad).toBeGreaterThanOrEqual(10 * onRemoved.length);
    for (const t of tenants) expect(plan.assignment.get(t.id)).toBe(rendezvousShard(t.id, 3));
  });
});
