/**
 * The evaluator's PostgreSQL store against the real database: device lists are kept between ticks
 * and read again exactly when `tenants.devices_version` (bumped by the devices triggers) moved.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPgStore, type Queryable } from "../../evaluator/src/store/pgStore.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";

let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase("store");
  await migrateUp({ db: db.pool });
  await db.pool.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ('a', 's', 0), ('b', 's', 0)");
});

afterEach(async () => {
  await db.drop();
});

/** The store on a connection that records how many device rows each read sent back. */
function observedStore() {
  const deviceRows: number[] = [];
  const queryable: Queryable = {
    async query(statement) {
      const result = await db.pool.query(statement);
      if (statement.text.includes("devices_version")) deviceRows.push(result.rows.length);
      return result;
    },
  };
  return { store: createPgStore(queryable), deviceRows };
}

async function devicesOf(store: ReturnType<typeof createPgStore>) {
  const data = await store.readTenantData(["a", "b"], [0, 0], Date.now());
  return { a: data.get("a")?.deviceIds, b: data.get("b")?.deviceIds };
}

describe("device lists", () => {
  it("are sent only for tenants whose devices were added, removed or re-keyed since the last read", async () => {
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'd2'), ('a', 'd1'), ('b', 'x')");
    const { store, deviceRows } = observedStore();

    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x"] });
    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x"] });
    expect(deviceRows).toEqual([2, 0]);

    // A rename keeps the list; a new device, a deleted one and a re-keyed one change it.
    await db.pool.query("UPDATE devices SET name = 'boiler' WHERE tenant_id = 'a' AND id = 'd1'");
    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x"] });
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('b', 'y')");
    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x", "y"] });
    await db.pool.query("DELETE FROM devices WHERE tenant_id = 'a' AND id = 'd2'");
    expect(await devicesOf(store)).toEqual({ a: ["d1"], b: ["x", "y"] });
    await db.pool.query("UPDATE devices SET id = 'z' WHERE tenant_id = 'b' AND id = 'x'");
    expect(await devicesOf(store)).toEqual({ a: ["d1"], b: ["y", "z"] });
    expect(deviceRows).toEqual([2, 0, 0, 1, 1, 1]);

    // Another process (no lists kept) reads every list; a tenant without devices has an empty one.
    await db.pool.query("DELETE FROM devices WHERE tenant_id = 'a'");
    expect(await devicesOf(createPgStore(db.pool))).toEqual({ a: [], b: ["y", "z"] });

    // A tenant that left this shard is forgotten, and read in full if it comes back.
    store.retainTenants?.(new Set(["a"]));
    expect(await devicesOf(store)).toEqual({ a: [], b: ["y", "z"] });
    expect(deviceRows.slice(6)).toEqual([2]);
  });

  it("are read again after a tenant is deleted and created anew, and after TRUNCATE", async () => {
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'old'), ('b', 'x')");
    const { store } = observedStore();
    expect(await devicesOf(store)).toEqual({ a: ["old"], b: ["x"] });
    // Between two ticks: the tenant is deleted (its devices go by cascade) and created again with
    // one other device. Its version is a new one, never one the store already holds.
    await db.pool.query("DELETE FROM tenants WHERE id = 'a'");
    await db.pool.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ('a', 's', 0)");
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'new')");
    expect(await devicesOf(store)).toEqual({ a: ["new"], b: ["x"] });
    await db.pool.query("TRUNCATE devices CASCADE");
    expect(await devicesOf(store)).toEqual({ a: [], b: [] });
  });
});
