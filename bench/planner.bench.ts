/**
 * Benchmark of the tenant-assignment planner against two weight-blind baselines.
 *
 *   node bench/planner.bench.ts
 *
 * 100k tenants with Zipf-distributed weights (exponent 1.1, seeded, so every run sees the same
 * tenants), two ways:
 * - sampled: each weight drawn from Zipf(1.1) on 1 .. 1e6 (many small tenants, a heavy tail);
 * - ranked: the k-th heaviest tenant weighs 1e6 / k^1.1 (Zipf's law by rank: a few giants, the
 *   largest about 13% of all load).
 * For each N, every strategy starts from its own balanced N-shard state (the planner from
 * planAssignment of unplaced tenants, the baselines from their own hashing) and goes to N + 1 and
 * N − 1. All three are judged by assessAssignment, i.e. against the same minimumMovedLoad
 * definition for their own starting point.
 */

import { modHashShard, planByHashing, rendezvousShard } from "../operator/src/sharding/baselines.ts";
import {
  type AssignmentPlan,
  planAssignment,
  type TenantLoad,
} from "../operator/src/sharding/planAssignment.ts";
import { zipfQuantile } from "../operator/src/sharding/zipf.ts";

const TENANTS = 100_000;
const EXPONENT = 1.1;
const MAX_WEIGHT = 1_000_000;
const SEED = 0x5eed;
const SHARD_COUNTS = [4, 8, 16, 32, 64] as const;
const TIMED_RUNS = 5;

/** mulberry32: a small, fast, seeded PRNG; uniform in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function tenantId(i: number): string {
  return `tenant-${String(i).padStart(6, "0")}`;
}

function sampledZipfTenants(): TenantLoad[] {
  const random = seededRandom(SEED);
  return Array.from({ length: TENANTS }, (_, i) => ({
    id: tenantId(i),
    weight: zipfQuantile(random(), EXPONENT, MAX_WEIGHT),
    shard: null,
  }));
}

function rankedZipfTenants(): TenantLoad[] {
  const random = seededRandom(SEED + 1);
  const ranks = Array.from({ length: TENANTS }, (_, i) => i + 1);
  for (let i = ranks.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ranks[i], ranks[j]] = [ranks[j]!, ranks[i]!];
  }
  return ranks.map((rank, i) => ({
    id: tenantId(i),
    weight: Math.max(1, Math.round(MAX_WEIGHT / rank ** EXPONENT)),
    shard: null,
  }));
}

function placedBy(tenants: readonly TenantLoad[], assignment: ReadonlyMap<string, number>): TenantLoad[] {
  return tenants.map((t) => ({ ...t, shard: assignment.get(t.id)! }));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function timed(run: () => AssignmentPlan): { plan: AssignmentPlan; ms: number } {
  run(); // warm-up
  const times: number[] = [];
  let plan: AssignmentPlan | undefined;
  for (let i = 0; i < TIMED_RUNS; i++) {
    const start = performance.now();
    plan = run();
    times.push(performance.now() - start);
  }
  return { plan: plan!, ms: median(times) };
}

interface Row {
  readonly weights: string;
  readonly change: string;
  readonly minPct: number;
  readonly plannerMs: number;
  readonly planner: AssignmentPlan;
  readonly mod: AssignmentPlan;
  readonly rendezvous: AssignmentPlan;
  readonly bestMaxOverAvg: number;
  readonly total: number;
}

function measure(weights: string, unplaced: readonly TenantLoad[]): Row[] {
  const total = unplaced.reduce((sum, t) => sum + t.weight, 0);
  const heaviest = unplaced.reduce((max, t) => Math.max(max, t.weight), 0);
  const rows: Row[] = [];
  for (const from of SHARD_COUNTS) {
    const plannerStart = placedBy(unplaced, planAssignment(unplaced, from).assignment);
    const modStart = placedBy(unplaced, planByHashing(unplaced, from, modHashShard).assignment);
    const rendezvousStart = placedBy(unplaced, planByHashing(unplaced, from, rendezvousShard).assignment);
    for (const to of [from + 1, from - 1]) {
      const { plan: planner, ms } = timed(() => planAssignment(plannerStart, to));
      rows.push({
        weights,
        change: `${from}→${to}`,
        minPct: (100 * planner.minimumMovedLoad) / total,
        plannerMs: ms,
        planner,
        mod: planByHashing(modStart, to, modHashShard),
        rendezvous: planByHashing(rendezvousStart, to, rendezvousShard),
        bestMaxOverAvg: Math.max(1, heaviest / (total / to)),
        total,
      });
    }
  }
  return rows;
}

const ratio = (plan: AssignmentPlan): string =>
  plan.minimumMovedLoad > 0 ? (plan.movedLoad / plan.minimumMovedLoad).toFixed(2) : "–";
const pct = (plan: AssignmentPlan, total: number): string => ((100 * plan.movedLoad) / total).toFixed(1);

function printTable(rows: readonly Row[]): void {
  const header = [
    ["", "", "must", "planner", "", "", "", "sha256 mod N", "", "", "rendezvous", "", "", "best"],
    [
      "weights",
      "N→N′",
      "move %",
      "ms",
      "moved %",
      "/min",
      "max/avg",
      "moved %",
      "/min",
      "max/avg",
      "moved %",
      "/min",
      "max/avg",
      "max/avg",
    ],
  ];
  const body = rows.map((r) => [
    r.weights,
    r.change,
    r.minPct.toFixed(1),
    r.plannerMs.toFixed(0),
    pct(r.planner, r.total),
    ratio(r.planner),
    r.planner.maxOverAvg.toFixed(3),
    pct(r.mod, r.total),
    ratio(r.mod),
    r.mod.maxOverAvg.toFixed(3),
    pct(r.rendezvous, r.total),
    ratio(r.rendezvous),
    r.rendezvous.maxOverAvg.toFixed(3),
    r.bestMaxOverAvg.toFixed(3),
  ]);
  const all = [...header, ...body];
  const widths = all[1]!.map((_, c) => Math.max(...all.map((row) => row[c]!.length)));
  const line = (row: readonly string[]) =>
    row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ");
  for (const row of header) console.log(line(row));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  let previous = "";
  for (const row of body) {
    if (previous !== "" && row[0] !== previous) console.log("");
    previous = row[0]!;
    console.log(line(row));
  }
}

function main(): void {
  console.log(
    `Planner benchmark: ${TENANTS.toLocaleString("en")} tenants, Zipf exponent ${EXPONENT}, seed ${SEED}, ` +
      `planner time = median of ${TIMED_RUNS} runs, ε = 0.1, Node ${process.version}`,
  );
  console.log(
    "must move % = planner's minimumMovedLoad as % of total load; /min = movedLoad / minimumMovedLoad " +
      "for the strategy's own start (below 1: it did not reach the band); best max/avg = max(1, heaviest/avg).\n",
  );
  const rows = [...measure("sampled", sampledZipfTenants()), ...measure("ranked", rankedZipfTenants())];
  printTable(rows);

  const worst = (pick: (r: Row) => number) => Math.max(...rows.map(pick));
  const mean = (pick: (r: Row) => number) => rows.reduce((sum, r) => sum + pick(r), 0) / rows.length;
  const moved = (plan: AssignmentPlan) => plan.movedLoad / plan.minimumMovedLoad;
  const sampled = rows.filter((r) => r.weights === "sampled");
  console.log(
    `\nSummary: planner worst ${worst((r) => r.plannerMs).toFixed(0)} ms, moved/min ≤ ${worst((r) => moved(r.planner)).toFixed(3)}, ` +
      `max/avg ≤ ${Math.max(...sampled.map((r) => r.planner.maxOverAvg)).toFixed(3)} (sampled) and ≤ ${worst((r) => r.planner.maxOverAvg / r.bestMaxOverAvg).toFixed(3)} × best (all); ` +
      `moved load as % of total, mean: planner ${mean((r) => (100 * r.planner.movedLoad) / r.total).toFixed(1)}, ` +
      `sha256 mod N ${mean((r) => (100 * r.mod.movedLoad) / r.total).toFixed(1)}, ` +
      `rendezvous ${mean((r) => (100 * r.rendezvous.movedLoad) / r.total).toFixed(1)}; ` +
      `max/avg ÷ best, worst: sha256 mod N ${worst((r) => r.mod.maxOverAvg / r.bestMaxOverAvg).toFixed(2)}, ` +
      `rendezvous ${worst((r) => r.rendezvous.maxOverAvg / r.bestMaxOverAvg).toFixed(2)}.`,
  );
}

main();
