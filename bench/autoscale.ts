/**
 * Autoscaling-policy simulator: replays synthetic load traces through three autoscalers on the
 * same shard-set model and prints what each costs, side by side. Needs no cluster and no database.
 *
 *   node bench/autoscale.ts        (or: npm run bench -- autoscale)
 *
 * Policies (bench/autoscalePolicies.ts): ours (decideShards, CRD defaults), the HPA defaults, KEDA
 * defaults. Model and traces (bench/autoscaleModel.ts): load in shards' worth of work, tick p95 ≈
 * 60 s × 1.05 × L / n against a 30 s target, backlog when L / n > 1, 5-minute Prometheus lag,
 * 90-second reshards moving |Δn| / max(n) of the tenants, a decision every 15 s. Deterministic:
 * seeded noise, simulated clock.
 */
import {
  buildTraces,
  MAX_SHARDS,
  type Outcome,
  type Policy,
  RESHARD_SECONDS,
  STEP_SECONDS,
  simulate,
  TARGET_TICK_SECONDS,
  TOLERANCE,
} from "./autoscaleModel.ts";
import { hpaPolicy, kedaPolicy, oursPolicy } from "./autoscalePolicies.ts";

const SEED = 0x5eed;

const POLICIES: readonly { readonly name: string; readonly make: () => Policy }[] = [
  { name: "ours", make: () => oursPolicy(MAX_SHARDS) },
  { name: "HPA defaults", make: () => hpaPolicy(MAX_SHARDS) },
  { name: "KEDA defaults", make: () => kedaPolicy(MAX_SHARDS) },
];

const MEASURES: readonly { readonly label: string; readonly of: (o: Outcome) => string }[] = [
  { label: "reshards", of: (o) => String(o.reshards) },
  { label: "tenants moved (× all tenants)", of: (o) => o.tenantsMoved.toFixed(2) },
  {
    label: `shard-minutes above ${TARGET_TICK_SECONDS} s p95`,
    of: (o) => o.shardMinutesAboveTarget.toFixed(0),
  },
  {
    label: `shard-minutes above ${(TARGET_TICK_SECONDS * (1 + TOLERANCE)).toFixed(0)} s p95 (target + tolerance)`,
    of: (o) => o.shardMinutesAboveBand.toFixed(0),
  },
  { label: "shard-minutes used", of: (o) => o.shardMinutes.toFixed(0) },
  { label: "decisions on missing data", of: (o) => String(o.decisionsOnMissingData) },
];

function printTable(title: string, outcomes: readonly Outcome[]): void {
  const header = ["", ...POLICIES.map((p) => p.name)];
  const rows = MEASURES.map((m) => [m.label, ...outcomes.map(m.of)]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (row: readonly string[]) =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ");
  console.log(title);
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) console.log(line(row));
  console.log("");
}

function total(outcomes: readonly Outcome[]): Outcome {
  return outcomes.reduce((a, o) => ({
    reshards: a.reshards + o.reshards,
    tenantsMoved: a.tenantsMoved + o.tenantsMoved,
    shardMinutesAboveTarget: a.shardMinutesAboveTarget + o.shardMinutesAboveTarget,
    shardMinutesAboveBand: a.shardMinutesAboveBand + o.shardMinutesAboveBand,
    shardMinutes: a.shardMinutes + o.shardMinutes,
    decisionsOnMissingData: a.decisionsOnMissingData + o.decisionsOnMissingData,
  }));
}

console.log(
  `Autoscaling policies on synthetic traces: a decision every ${STEP_SECONDS} s, reshards of ${RESHARD_SECONDS} s, ` +
    `1..${MAX_SHARDS} shards, target tick p95 ${TARGET_TICK_SECONDS} s (seed ${SEED}).\n`,
);
const perPolicy: Outcome[][] = POLICIES.map(() => []);
for (const trace of buildTraces(SEED)) {
  const outcomes = POLICIES.map((p) => simulate(trace, p.make()));
  for (const [i, o] of outcomes.entries()) perPolicy[i]!.push(o);
  printTable(`${trace.name}: ${trace.description}`, outcomes);
}
printTable("totals over all traces", perPolicy.map(total));
