import type { AssignmentPlan, TenantLoad } from "../sharding/planAssignment.ts";

/** Per-shard tenants and load of an assignment (pure). */
export function summarize(tenants: readonly TenantLoad[], shardOf: (t: TenantLoad) => number | null) {
  const rows = new Map<number | null, { tenants: number; load: number }>();
  for (const t of tenants) {
    const s = shardOf(t);
    const r = rows.get(s) ?? { tenants: 0, load: 0 };
    r.tenants++;
    r.load += t.weight;
    rows.set(s, r);
  }
  return rows;
}

const fmt = (x: number) => (Math.round(x * 10) / 10).toLocaleString("en-US");

/** The dry-run report of `shards plan`: per shard before → after, then moved vs the minimum. */
export function formatPlan(
  tenants: readonly TenantLoad[],
  plan: AssignmentPlan,
  currentCount: number | null,
): string {
  const before = summarize(tenants, (t) => t.shard);
  const after = summarize(tenants, (t) => plan.assignment.get(t.id) ?? null);
  const shards = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) =>
    a === null ? 1 : b === null ? -1 : a - b,
  );
  const lines = [
    `Plan: ${currentCount ?? 0} → ${plan.shardCount} shards, ${tenants.length} tenants`,
    "",
    "SHARD       TENANTS (before → after)    LOAD (before → after)",
  ];
  for (const s of shards) {
    const b = before.get(s) ?? { tenants: 0, load: 0 };
    const a = after.get(s) ?? { tenants: 0, load: 0 };
    const name = s === null ? "unassigned" : String(s);
    lines.push(
      `${name.padEnd(11)} ${`${b.tenants} → ${a.tenants}`.padEnd(27)} ${fmt(b.load)} → ${fmt(a.load)}`,
    );
  }
  const moved = plan.moves.filter((m) => m.from !== null).length;
  const placed = plan.moves.length - moved;
  const ratio =
    plan.minimumMovedLoad > 0
      ? plan.movedLoad / plan.minimumMovedLoad
      : plan.movedLoad === 0
        ? 1
        : Number.POSITIVE_INFINITY;
  lines.push(
    "",
    `Tenants moved: ${moved}${placed ? ` (+${placed} unassigned placed)` : ""}`,
    `Load moved: ${fmt(plan.movedLoad)} (minimum ${fmt(plan.minimumMovedLoad)}, ratio ${ratio.toFixed(3)})`,
    `Balance after: max/avg shard load ${plan.maxOverAvg.toFixed(3)}`,
  );
  return `${lines.join("\n")}\n`;
}

/** The table of `shards status`. */
export function formatStatus(
  shardSet: string,
  row: { shardCount: number | null; epoch: number },
  perShard: { shard: number | null; tenants: number; load: number }[],
): string {
  const lines = [
    `Shard set ${shardSet}: ${row.shardCount ?? 0} shards, epoch ${row.epoch}`,
    "",
    "SHARD       TENANTS   LOAD",
  ];
  for (const r of perShard) {
    lines.push(
      `${(r.shard === null ? "unassigned" : String(r.shard)).padEnd(11)} ${String(r.tenants).padEnd(9)} ${fmt(r.load)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
