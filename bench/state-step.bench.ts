/**
 * The evaluator's state step alone, in memory (no PostgreSQL, no Valkey): what a shard keeps per
 * (rule, device) pair between ticks, and the CPU of the pure part of a tick (plan → advanceTick →
 * evaluateTenant → applyCommit → commitOps) per 100,000 pairs. Tenants as in
 * bench/evaluator.bench.ts: 200 devices × 2 rules (threshold or anomaly; window or rising pattern),
 * one reading per device and tick.
 *
 *   node --expose-gc bench/state-step.bench.ts
 *
 * Settings (environment): BENCH_TENANTS (300), BENCH_TICKS (10: a 10-minute window fills up at one
 * reading a minute), BENCH_ROUNDS (3: runs of each tree, alternating, each in a process of its own,
 * the median shown), BENCH_STATE_BASELINE_DIR (another checkout of the repository, e.g. a
 * `git worktree` of an older commit: its evaluator modules run the same step, alternating with this
 * tree's, and both are printed side by side), BENCH_MAX_OLD_SPACE_MIB (caps each process's old
 * space, as a container's memory limit does; none by default).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";

const env = process.env;
const TENANTS = Number(env["BENCH_TENANTS"] ?? 300);
const TICKS = Number(env["BENCH_TICKS"] ?? 10);
const ROUNDS = Number(env["BENCH_ROUNDS"] ?? 3);
const DEVICES = 200;
const INTERVAL_MS = 60_000;
const THIS_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** One child's figures. */
interface Run {
  readonly keptBytesPerPair: number;
  readonly cpuMsPer100kPairs: number;
}

/** Runs the state step of the evaluator modules under `root` (a checkout), in this process. */
async function runStep(root: string): Promise<Run> {
  const mod = (path: string) => import(new URL(path, `file://${root.replace(/\/?$/, "/")}`).href);
  const { parseRule } = await mod("evaluator/src/rules/parseRule.ts");
  const { planTenant } = await mod("evaluator/src/rules/planTenant.ts");
  const { groupReadings } = await mod("evaluator/src/rules/readings.ts");
  const { evaluateTenant } = await mod("evaluator/src/rules/evaluateTenant.ts");
  const { advanceTick, applyCommit, commitOps, emptySnapshot } = await mod(
    "evaluator/src/state/tenantSnapshot.ts",
  );
  const T0 = Math.floor(Date.now() / INTERVAL_MS) * INTERVAL_MS;
  const rule = (row: Record<string, unknown>) => {
    const parsed = parseRule(row);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.rule;
  };
  const base = {
    device_id: null,
    metric: "temp",
    cooldown_seconds: 600,
    severity: "warning",
    escalation: null,
  };
  const rulesOf = (i: number) => [
    i % 2 === 0
      ? rule({
          ...base,
          tenant_id: `t${i}`,
          id: "r1",
          rule_type: "threshold",
          operator: ">",
          threshold: 85,
          window_seconds: null,
          min_count: null,
          params: {},
        })
      : rule({
          ...base,
          tenant_id: `t${i}`,
          id: "r1",
          rule_type: "anomaly",
          operator: null,
          threshold: null,
          window_seconds: null,
          min_count: null,
          params: { k: 4, minSamples: 2, minStddev: 5 },
        }),
    i % 4 === 3
      ? rule({
          ...base,
          tenant_id: `t${i}`,
          id: "r2",
          rule_type: "pattern",
          operator: null,
          threshold: null,
          window_seconds: 600,
          min_count: 3,
          params: { kind: "rising" },
        })
      : rule({
          ...base,
          tenant_id: `t${i}`,
          id: "r2",
          rule_type: "window",
          operator: ">",
          threshold: 75,
          window_seconds: 600,
          min_count: 2,
          params: {},
        }),
  ];
  const devices = Array.from({ length: DEVICES }, (_, j) => `dev-${j}`);
  // Readings as bench/evaluator.bench.ts makes them: around 50-69, every 50th device hot.
  const readingsOf = (i: number, k: number, now: number) =>
    devices.map((deviceId, j) => ({
      deviceId,
      metric: "temp",
      ts: now - INTERVAL_MS + ((i * 7919 + j * 104_729) % (INTERVAL_MS - 1000)),
      value: j % 40 === 7 ? 50 + k * 5 : 50 + ((i * 31 + j * 17 + k * 7) % 20) + (j % 50 === 0 ? 40 : 0),
    }));
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run the benchmark with node --expose-gc");
  const snapshots = new Map<string, ReturnType<typeof emptySnapshot>>();
  gc();
  const heapBefore = v8.getHeapStatistics().used_heap_size;
  let cpuMicros = 0;
  let pairs = 0;
  for (let k = 0; k < TICKS; k++) {
    const now = T0 + k * INTERVAL_MS;
    for (let i = 0; i < TENANTS; i++) {
      // Each input is built outside the measured CPU (in a tick it comes from PostgreSQL), one
      // tenant at a time: a tick holds the inputs of a batch, never of the whole shard.
      const input = {
        tenantId: `t${i}`,
        rules: rulesOf(i),
        deviceIds: devices,
        readingsByDeviceMetric: groupReadings(readingsOf(i, k, now)),
        now,
      };
      const cpu = process.cpuUsage();
      const plan = planTenant(input);
      let snapshot = snapshots.get(input.tenantId);
      if (snapshot === undefined) {
        // A tenant never evaluated: Valkey holds nothing, so its read covers every pair.
        snapshot = emptySnapshot();
        for (const pair of plan.pairs) snapshot.covered.add(pair.key);
      }
      const step = advanceTick(snapshot, plan, now);
      const evaluation = evaluateTenant({ ...input, state: step.state, plan });
      applyCommit(snapshot, evaluation.stateUpdates, now);
      commitOps(evaluation.stateUpdates, now, step);
      snapshot.seq = k + 1;
      snapshot.at = now;
      snapshots.set(input.tenantId, snapshot);
      const used = process.cpuUsage(cpu);
      // The first tick fills the states from nothing: not a steady tick.
      if (k > 0) {
        cpuMicros += used.user + used.system;
        pairs += plan.pairs.length;
      }
    }
  }
  gc();
  const kept = v8.getHeapStatistics().used_heap_size - heapBefore;
  const keptPairs = TENANTS * DEVICES * 2;
  if (snapshots.size !== TENANTS) throw new Error("a tenant's state went missing");
  return { keptBytesPerPair: kept / keptPairs, cpuMsPer100kPairs: cpuMicros / 1000 / (pairs / 100_000) };
}

function child(root: string): Run {
  const flags = ["--expose-gc"];
  if (env["BENCH_MAX_OLD_SPACE_MIB"]) flags.push(`--max-old-space-size=${env["BENCH_MAX_OLD_SPACE_MIB"]}`);
  const out = spawnSync(process.execPath, [...flags, fileURLToPath(import.meta.url), "--child", root], {
    encoding: "utf8",
    env,
  });
  // A tree whose states do not fit the capped heap is a figure too, not a failure of the benchmark.
  if (out.status !== 0 && out.stderr.includes("heap out of memory")) {
    return { keptBytesPerPair: Number.NaN, cpuMsPer100kPairs: Number.NaN };
  }
  if (out.status !== 0) throw new Error(`the run of ${root} failed:\n${out.stderr}`);
  const line = out.stdout.split("\n").find((l) => l.startsWith("RUN "));
  if (line === undefined) throw new Error(`the run of ${root} printed no figures:\n${out.stdout}`);
  return JSON.parse(line.slice(4)) as Run;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => Number(Number.isNaN(a)) - Number(Number.isNaN(b)) || a - b);
  return s[Math.floor(s.length / 2)]!;
}

function fmt(n: number, digits = 0): string {
  if (Number.isNaN(n)) return "out of heap";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function main(): Promise<void> {
  const at = process.argv.indexOf("--child");
  if (at >= 0) {
    console.log(`RUN ${JSON.stringify(await runStep(process.argv[at + 1]!))}`);
    return;
  }
  const before = env["BENCH_STATE_BASELINE_DIR"];
  const trees: [string, string][] = before
    ? [
        ["before", before],
        ["after", THIS_ROOT],
      ]
    : [["this tree", THIS_ROOT]];
  console.log(
    `evaluator state step in memory: ${fmt(TENANTS)} tenants × ${DEVICES} devices × 2 rules, ${TICKS} ticks, ${ROUNDS} rounds` +
      (env["BENCH_MAX_OLD_SPACE_MIB"] ? `, old space ${env["BENCH_MAX_OLD_SPACE_MIB"]} MiB` : ""),
  );
  const runs = new Map<string, Run[]>(trees.map(([name]) => [name, []]));
  for (let r = 0; r < ROUNDS; r++) for (const [name, root] of trees) runs.get(name)!.push(child(root));
  const row = (label: string, values: string[]) =>
    console.log(`  ${label.padEnd(46)} ${values.map((v) => v.padStart(14)).join(" ")}`);
  row(
    "figure (median of the rounds)",
    trees.map(([name]) => name),
  );
  // A round out of heap counts as NaN, which sorts last: the median is of the rounds that fitted
  // unless most did not.
  const figure = (f: (r: Run) => number) => trees.map(([name]) => median(runs.get(name)!.map(f)));
  const kept = figure((r) => r.keptBytesPerPair);
  const cpu = figure((r) => r.cpuMsPer100kPairs);
  row(
    "kept state between ticks, bytes per pair",
    kept.map((x) => fmt(x)),
  );
  row(
    "CPU of the state step, ms per 100,000 pairs",
    cpu.map((x) => fmt(x)),
  );
  row(
    "  rounds (min – max)",
    trees.map(([name]) => {
      const xs = runs.get(name)!.map((r) => r.cpuMsPer100kPairs);
      const fitted = xs.filter((x) => !Number.isNaN(x));
      const out = xs.length - fitted.length;
      if (fitted.length === 0) return "out of heap";
      return `${fmt(Math.min(...fitted))}–${fmt(Math.max(...fitted))}${out > 0 ? ` (${out} out of heap)` : ""}`;
    }),
  );
  if (trees.length === 2) {
    const ratio = (a: number, b: number) => (Number.isNaN(a / b) ? "—" : `${fmt(a / b, 2)}×`);
    row("after / before: kept bytes, CPU", [ratio(kept[1]!, kept[0]!), ratio(cpu[1]!, cpu[0]!)]);
  }
}

await main();
