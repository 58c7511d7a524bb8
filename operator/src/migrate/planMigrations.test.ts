import { describe, expect, it } from "vitest";
import { type AppliedMigration, planMigrations } from "./planMigrations.ts";
import { type MigrationFile, migrationChecksum } from "./readMigrations.ts";

const at = new Date("2025-01-01T00:00:00Z");

function file(version: number, name: string, sql = `SELECT ${version};`): MigrationFile {
  return {
    version,
    name: `${String(version).padStart(6, "0")}_${name}.sql`,
    sql,
    checksum: migrationChecksum(sql),
  };
}

function applied(f: MigrationFile, overrides: Partial<AppliedMigration> = {}): AppliedMigration {
  return { version: f.version, name: f.name, checksum: f.checksum, appliedAt: at, ...overrides };
}

describe("planMigrations", () => {
  const one = file(1, "one");
  const two = file(2, "two");
  const three = file(3, "three");

  it("plans every file on a fresh database", () => {
    const plan = planMigrations([one, two], []);
    expect(plan.pending).toEqual([one, two]);
    expect(plan.rows.map((r) => r.state)).toEqual(["pending", "pending"]);
    expect(plan.problems).toEqual([]);
  });

  it("plans only the files after the applied ones", () => {
    const plan = planMigrations([one, two, three], [applied(one), applied(two)]);
    expect(plan.pending).toEqual([three]);
    expect(plan.rows).toEqual([
      { version: 1, name: one.name, state: "applied", appliedAt: at },
      { version: 2, name: two.name, state: "applied", appliedAt: at },
      { version: 3, name: three.name, state: "pending", appliedAt: null },
    ]);
    expect(plan.problems).toEqual([]);
  });

  it("plans nothing when everything is applied", () => {
    const plan = planMigrations([one, two], [applied(two), applied(one)]);
    expect(plan.pending).toEqual([]);
    expect(plan.problems).toEqual([]);
  });

  it("reports an applied file whose content changed", () => {
    const edited = file(1, "one", "SELECT 1; -- edited");
    const plan = planMigrations([edited, two], [applied(one)]);
    expect(plan.rows[0]).toMatchObject({ state: "changed", name: one.name, appliedAt: at });
    expect(plan.problems.map((p) => p.problem)).toEqual([expect.stringContaining(`${one.name} was edited`)]);
  });

  it("reports an applied file that was renamed", () => {
    const renamed = file(1, "first");
    const plan = planMigrations([renamed], [applied(one)]);
    expect(plan.rows[0]).toMatchObject({ state: "changed", name: renamed.name });
    expect(plan.problems[0]?.problem).toBe(
      `${renamed.name} was applied as ${one.name}; applied migrations must not be renamed`,
    );
  });

  it("reports an applied migration missing on disk under its recorded name", () => {
    const plan = planMigrations([one], [applied(one), applied(two)]);
    expect(plan.rows[1]).toMatchObject({ version: 2, name: two.name, state: "missing", appliedAt: at });
    expect(plan.problems.map((p) => p.name)).toEqual([two.name]);
  });

  it("reports a pending file numbered below an applied one", () => {
    const plan = planMigrations([one, two, three], [applied(one), applied(three)]);
    expect(plan.rows[1]).toMatchObject({ version: 2, state: "pending" });
    expect(plan.problems.map((p) => p.problem)).toEqual([expect.stringContaining("after 000003")]);
  });
});
