import type { MigrationStatusRow } from "./planMigrations.ts";

/**
 * Renders migration states as a fixed-width text table for a terminal, followed by a count per state
 * and the problems, one per line. Pure.
 */
export function formatStatusTable(rows: readonly MigrationStatusRow[]): string {
  const header = ["VERSION", "NAME", "STATE", "APPLIED AT"];
  const body = rows.map((r) => [
    String(r.version).padStart(6, "0"),
    r.name,
    r.problem !== undefined && r.state === "pending" ? "pending (out of order)" : r.state,
    r.appliedAt === null ? "-" : r.appliedAt.toISOString(),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();

  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  const summary =
    rows.length === 0 ? "No migrations." : `${[...counts].map(([state, n]) => `${n} ${state}`).join(", ")}.`;
  const problems = rows.flatMap((r) => (r.problem === undefined ? [] : [`  ${r.problem}`]));

  return [
    line(header),
    ...body.map(line),
    "",
    summary,
    ...(problems.length > 0 ? ["Problems:", ...problems] : []),
    "",
  ].join("\n");
}
