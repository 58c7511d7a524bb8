import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPgTenantAssignments } from "../../operator/src/assignments/pgTenantAssignments.ts";
import { createProgram } from "../../operator/src/cli/program.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { seedTenants } from "../support/tenants.ts";

const SET = "iot/alerts";
let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase("cli");
  await migrateUp({ db: db.pool });
  await seedTenants(db.pool, SET, 1200);
});
afterEach(async () => {
  await db.drop();
});

async function run(...args: string[]): Promise<string> {
  let out = "";
  const program = createProgram({
    env: { DATABASE_URL: db.url },
    stdout: { write: (t: string) => (out += t) },
    shutdownSignal: new AbortController().signal,
  });
  await program.parseAsync(args, { from: "user" });
  return out;
}

describe("evaluator-operator shards", () => {
  it("plan is a dry run that reports moves against the minimum, and writes nothing", async () => {
    await createPgTenantAssignments(db.pool, SET).commit(3);
    const before = await db.pool.query("SELECT id, shard_index FROM tenants ORDER BY id");
    const out = await run("shards", "plan", "--shard-set", SET, "--shards", "4");
    expect(out).toContain("Plan: 3 → 4 shards, 1200 tenants");
    expect(out).toMatch(/^3\s+0 → \d+/m);
    const moved = Number(/Tenants moved: (\d+)/.exec(out)?.[1]);
    expect(moved).toBeGreaterThan(0);
    const [, movedLoad, minimum] = /Load moved: ([\d,.]+) \(minimum ([\d,.]+)/.exec(out) ?? [];
    expect(Number(movedLoad?.replace(/,/g, ""))).toBeLessThanOrEqual(
      1.1 * Number(minimum?.replace(/,/g, "")) + 0.1,
    );
    const after = await db.pool.query("SELECT id, shard_index FROM tenants ORDER BY id");
    expect(after.rows).toEqual(before.rows);
  });

  it("status lists tenants and load per shard and the epoch", async () => {
    await createPgTenantAssignments(db.pool, SET).commit(2);
    const out = await run("shards", "status", "--shard-set", SET);
    expect(out).toContain("Shard set iot/alerts: 2 shards, epoch 1");
    const counts = [...out.matchAll(/^(\d+)\s+(\d+)\s/gm)].map((m) => Number(m[2]));
    expect(counts).toHaveLength(2);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1200);
  });

  it("refuses a bad shard count with the setting's name", async () => {
    await expect(run("shards", "plan", "--shard-set", SET, "--shards", "0")).rejects.toThrow("--shards");
  });
});
