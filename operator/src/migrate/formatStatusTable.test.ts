import { describe, expect, it } from "vitest";
import { formatStatusTable } from "./formatStatusTable.ts";

describe("formatStatusTable", () => {
  it("aligns the columns and sums up the states and problems", () => {
    const at = new Date("2025-01-02T03:04:05.000Z");
    const text = formatStatusTable([
      { version: 1, name: "000001_shard_sets.sql", state: "applied", appliedAt: at },
      {
        version: 2,
        name: "000002_rules.sql",
        state: "changed",
        appliedAt: at,
        problem: "000002_rules.sql was edited",
      },
      { version: 3, name: "000003_telemetry.sql", state: "pending", appliedAt: null },
    ]);
    expect(text).toBe(
      [
        "VERSION  NAME                   STATE    APPLIED AT",
        "000001   000001_shard_sets.sql  applied  2025-01-02T03:04:05.000Z",
        "000002   000002_rules.sql       changed  2025-01-02T03:04:05.000Z",
        "000003   000003_telemetry.sql   pending  -",
        "",
        "1 applied, 1 changed, 1 pending.",
        "Problems:",
        "  000002_rules.sql was edited",
        "",
      ].join("\n"),
    );
  });

  it("says so when there are no migrations", () => {
    expect(formatStatusTable([])).toBe("VERSION  NAME  STATE  APPLIED AT\n\nNo migrations.\n");
  });
});
