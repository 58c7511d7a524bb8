import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPgTenantAssignments } from "../../operator/src/assignments/pgTenantAssignments.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { seedTenants, shardHistogram } from "../support/tenants.ts";

const SET = "iot/alerts";
let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase("assign");
  await migrateUp({ db: db.pool });
});
afterEach(async () => {
  await db.drop();
});

async function assignment(): Promise<Map<string, number | null>> {
  const { rows } = await db.pool.query<{ id: string; shard_index: number | null }>(
    "SELECT id, shard_index FROM tenants WHERE shard_set = $1",
    [SET],
  );
  return new Map(rows.map((r) => [r.id, r.shard_index]));
}

describe("PostgreSQL tenant assignments", () => {
  it("places every tenant on a first commit and bumps the epoch", async () => {
    await seedTenants(db.pool, SET, 2000);
    const a = createPgTenantAssignments(db.pool, SET);
    const { rows } = await db.pool.query<{ weight: number | null }>(
      "SELECT weight FROM tenants WHERE shard_set = $1",
      [SET],
    );
    // The planner counts every tenant as at least one unit of load; the snapshot's total agrees.
    const totalLoad = rows.reduce((sum, r) => sum + Math.max(r.weight ?? 1, 1), 0);
    expect(totalLoad).toBeGreaterThan(2000); // the seed's weights are heavy-tailed, not all 1
    expect(await a.read()).toEqual({ shardCount: null, epoch: 0, tenants: 2000, totalLoad });

    const r = await a.commit(3);
    expect(r).toMatchObject({ shardCount: 3, epoch: 1, tenants: 2000, moved: 0, alreadyCommitted: false });
    const h = await shardHistogram(db.pool, SET);
    expect(h.unassigned).toBe(0);
    expect([...h.perShard.keys()].sort()).toEqual([0, 1, 2]);
    // A first placement is not a hand-off: nobody evaluated these tenants before.
    const handoffs = await db.pool.query("SELECT count(*)::int AS n FROM tenants WHERE moved_at IS NOT NULL");
    expect(handoffs.rows[0].n).toBe(0);
  });

  it("reshards moving only what the plan moves, recording the hand-off, and is idempotent when resumed", async () => {
    await seedTenants(db.pool, SET, 3000);
    const a = createPgTenantAssignments(db.pool, SET);
    await a.commit(3);
    const before = await assignment();

    const up = await a.commit(5);
    expect(up.epoch).toBe(2);
    const after = await assignment();
    const moved = [...after].filter(([id, s]) => before.get(id) !== s);
    expect(moved.length).toBe(up.moved);
    expect(up.moved).toBeGreaterThan(0);
    // Scale-up only fills the new shards.
    for (const [, s] of moved) expect(s === 3 || s === 4).toBe(true);
    const { rows } = await db.pool.query<{ id: string; prev_shard_index: number; moved_at: Date | null }>(
      "SELECT id, prev_shard_index, moved_at FROM tenants WHERE moved_at IS NOT NULL",
    );
    expect(rows).toHaveLength(up.moved);
    for (const r of rows) expect(r.prev_shard_index).toBe(before.get(r.id));

    // Resumed after a crash between the commit and the status write: nothing moves, same figures.
    const again = await a.commit(5);
    expect(again).toMatchObject({
      epoch: 2,
      alreadyCommitted: true,
      moved: up.moved,
      movedLoad: up.movedLoad,
    });
    expect(await assignment()).toEqual(after);

    const down = await a.commit(2);
    expect(down.epoch).toBe(3);
    const h = await shardHistogram(db.pool, SET);
    expect([...h.perShard.keys()].sort()).toEqual([0, 1]);
    expect(h.unassigned).toBe(0);
  });

  it("assigns tenants created after the last reshard without moving anyone else", async () => {
    await seedTenants(db.pool, SET, 500);
    const a = createPgTenantAssignments(db.pool, SET);
    await a.commit(4);
    const before = await assignment();
    expect(await a.assignNew()).toBe(0);

    await seedTenants(db.pool, SET, 20, "late");
    expect(await a.assignNew()).toBe(20);
    const after = await assignment();
    for (const [id, s] of before) expect(after.get(id)).toBe(s);
    for (const [id, s] of after) if (id.startsWith("late")) expect(s).not.toBeNull();
    expect((await a.read()).epoch).toBe(1);
  });

  it("serializes two concurrent commits of one set under the advisory lock", async () => {
    await seedTenants(db.pool, SET, 1000);
    const a = createPgTenantAssignments(db.pool, SET);
    const b = createPgTenantAssignments(db.pool, SET);
    const [x, y] = await Promise.all([a.commit(3), b.commit(3)]);
    // Exactly one of them rewrote the assignment; the other found it done.
    expect([x.alreadyCommitted, y.alreadyCommitted].sort()).toEqual([false, true]);
    expect((await a.read()).epoch).toBe(1);
  });
});
