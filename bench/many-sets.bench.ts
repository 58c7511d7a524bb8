/**
 * One operator, many sets, on the local control plane (hack/bench.sh runs hack/cluster.sh up first).
 * For 1, 10 and 50 sets (spread over up to 5 namespaces), with the rate limit at its default
 * (--kube-api-qps 20 --kube-api-burst 30) and at a higher setting (200/300), each run with a fresh
 * operator (--no-leader-elect --no-assignments: the Kubernetes side alone):
 * - creates the sets at 1 shard and waits until each reports 1 ready shard;
 * - `kubectl scale ess --all --replicas=16` in every namespace at once, and times until all
 *   sets × 16 Deployments exist (applied by the operator);
 * - reads the operator process's peak resident memory (VmHWM of /proc/<pid>/status) and its
 *   requests to the apiserver and time waited on the limiter (from its /metrics).
 * Prints a table with the ratios of the higher limit to the default. A fake node of its own
 * (kwok, 1000 pods) holds the shard pods, so the plane's node is not filled; removed at the end.
 * Environment: BENCH_MANY_SETS="1,10,50", BENCH_MANY_SHARDS=16, BENCH_MANY_HIGH="200/300" (the
 * second limit, higher or not), BENCH_MANY_WORKERS (the operator's --workers, default its own 4).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as k8s from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../operator/src/api/types.ts";
import { createTestNamespace, installCrd, kubectl, loadKubeConfig } from "../test/support/cluster.ts";
import { msg, startOperator } from "../test/support/operator.ts";
import { shardSetManifest } from "../test/support/shardSets.ts";

const SET_COUNTS = (process.env["BENCH_MANY_SETS"] ?? "1,10,50").split(",").map(Number);
const SHARDS = Number(process.env["BENCH_MANY_SHARDS"] ?? 16);
const [HIGH_QPS, HIGH_BURST] = (process.env["BENCH_MANY_HIGH"] ?? "200/300").split("/");
const WORKERS = process.env["BENCH_MANY_WORKERS"] ? ["--workers", process.env["BENCH_MANY_WORKERS"]] : [];
const LIMITS = [
  { label: "default 20/30", args: [] as string[] },
  {
    label: `${HIGH_QPS}/${HIGH_BURST}`,
    args: ["--kube-api-qps", HIGH_QPS!, "--kube-api-burst", HIGH_BURST!],
  },
];
const MAX_NAMESPACES = 5;

const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const core = kc.makeApiClient(k8s.CoreV1Api);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilTrue(what: string, probe: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function deploymentCount(namespaces: string[]): Promise<number> {
  const lists = await Promise.all(
    namespaces.map((namespace) =>
      apps.listNamespacedDeployment({ namespace, labelSelector: "evaluator.iot.dev/shardset" }),
    ),
  );
  return lists.reduce((n, l) => n + l.items.length, 0);
}

async function readyAtOneShard(namespaces: string[], sets: number): Promise<boolean> {
  let ready = 0;
  for (const namespace of namespaces) {
    const list = (await custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace,
    })) as {
      items: { status?: { shards?: number; readyShards?: number; reshard?: unknown } }[];
    };
    ready += list.items.filter(
      (s) => s.status?.shards === 1 && s.status.readyShards === 1 && !s.status.reshard,
    ).length;
  }
  return ready === sets;
}

async function procStatusKb(pid: number, field: "VmHWM" | "VmRSS"): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

function sampleSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

interface Run {
  sets: number;
  limit: string;
  applyMs: number;
  hwmMb: number;
  startRssMb: number;
  requests: number;
  waitedS: number;
  /** V8 heap in use right after the applies (nodejs_heap_size_used_bytes): what the objects take. */
  heapUsedMb: number;
}

async function runOnce(sets: number, limit: (typeof LIMITS)[number]): Promise<Run> {
  const nsCount = Math.min(MAX_NAMESPACES, sets);
  const namespaces: { name: string; remove(): Promise<void> }[] = [];
  for (let i = 0; i < nsCount; i++) namespaces.push(await createTestNamespace(kc, `bench-many-${i}`));
  const names = namespaces.map((n) => n.name);
  const op = startOperator([
    "--namespaces",
    names.join(","),
    "--no-leader-elect",
    "--no-assignments",
    "--drain-slack",
    "0s",
    ...WORKERS,
    ...limit.args,
  ]);
  try {
    const { metricsPort } = await op.waitForLog(msg("Serving metrics and probes"));
    await op.waitForLog(msg("Caches synced; reconciling"));
    const pid = op.child.pid!;
    const startRssKb = await procStatusKb(pid, "VmRSS");
    for (let s = 0; s < sets; s++) {
      await kubectl(["apply", "-n", names[s % nsCount]!, "-f", "-"], shardSetManifest(`set-${s}`, 1));
    }
    await untilTrue(`${sets} sets at 1 ready shard`, () => readyAtOneShard(names, sets));
    const before = sampleSum(
      await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
      "rest_client_rate_limiter_duration_seconds_count",
    );
    const beforeWait = sampleSum(
      await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
      "rest_client_rate_limiter_duration_seconds_sum",
    );

    const t0 = performance.now();
    await Promise.all(
      names.map((ns) => kubectl(["scale", "ess", "--all", "-n", ns, `--replicas=${SHARDS}`])),
    );
    await untilTrue(
      `${sets * SHARDS} Deployments`,
      async () => (await deploymentCount(names)) === sets * SHARDS,
    );
    const applyMs = performance.now() - t0;

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return {
      sets,
      limit: limit.label,
      applyMs,
      hwmMb: (await procStatusKb(pid, "VmHWM")) / 1024,
      startRssMb: startRssKb / 1024,
      requests: sampleSum(metrics, "rest_client_rate_limiter_duration_seconds_count") - before,
      waitedS: sampleSum(metrics, "rest_client_rate_limiter_duration_seconds_sum") - beforeWait,
      heapUsedMb: sampleSum(metrics, "nodejs_heap_size_used_bytes") / 2 ** 20,
    };
  } finally {
    await op.kill("SIGTERM");
    await Promise.all(namespaces.map((n) => n.remove()));
    // Let the plane delete the last run's objects before the next run is timed.
    await untilTrue(
      "the run's namespaces gone",
      async () => {
        for (const name of names) {
          const gone = await core.readNamespace({ name }).then(
            () => false,
            () => true,
          );
          if (!gone) return false;
        }
        return true;
      },
      300_000,
    ).catch(() => console.warn("namespaces still terminating; going on"));
  }
}

await installCrd();
const node = `eo-bench-many-${randomBytes(3).toString("hex")}`;
await kubectl(
  ["apply", "-f", "-"],
  `apiVersion: v1
kind: Node
metadata:
  name: ${node}
  annotations: { kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0" }
  labels: { type: kwok, kubernetes.io/hostname: ${node}, kubernetes.io/os: linux, kubernetes.io/arch: amd64 }
spec: {}
status:
  allocatable: { cpu: "256", memory: 1Ti, pods: "1000" }
  capacity: { cpu: "256", memory: 1Ti, pods: "1000" }
`,
);
const runs: Run[] = [];
try {
  for (const sets of SET_COUNTS) {
    for (const limit of LIMITS) {
      const r = await runOnce(sets, limit);
      console.log(
        `  ${sets} sets, ${limit.label}: ${r.applyMs.toFixed(0)} ms, ${r.requests} requests, ` +
          `waited ${r.waitedS.toFixed(1)} s, peak RSS ${r.hwmMb.toFixed(0)} MB, heap used ${r.heapUsedMb.toFixed(0)} MB`,
      );
      runs.push(r);
    }
  }
} finally {
  await kubectl(["delete", "node", node, "--wait=false"]).catch(() => undefined);
}

console.log(
  `\nkubectl scale of every set 1 → ${SHARDS} shards → all Deployments applied (local plane, one operator, --workers ${WORKERS[1] ?? 4})`,
);
console.log(
  `${"sets × shards".padEnd(14)} ${"limit".padEnd(16)} ${"apply ms".padStart(9)} ${"requests".padStart(9)} ${"req/s".padStart(7)} ${"waited s".padStart(9)} ${"RSS start MB".padStart(13)} ${"RSS peak MB".padStart(12)} ${"heap used MB".padStart(13)}`,
);
for (const r of runs) {
  console.log(
    `${`${r.sets} × ${SHARDS}`.padEnd(14)} ${r.limit.padEnd(16)} ${r.applyMs.toFixed(0).padStart(9)} ${String(r.requests).padStart(9)} ${((r.requests * 1000) / r.applyMs).toFixed(1).padStart(7)} ${r.waitedS.toFixed(1).padStart(9)} ${r.startRssMb.toFixed(0).padStart(13)} ${r.hwmMb.toFixed(0).padStart(12)} ${r.heapUsedMb.toFixed(0).padStart(13)}`,
  );
}
console.log(`\nratios, ${LIMITS[1]!.label} / default (time to apply; peak RSS):`);
for (const sets of SET_COUNTS) {
  const [d, h] = LIMITS.map((l) => runs.find((r) => r.sets === sets && r.limit === l.label)!);
  console.log(
    `  ${String(sets).padStart(3)} sets: apply ${(h!.applyMs / d!.applyMs).toFixed(2)}×, peak RSS ${(h!.hwmMb / d!.hwmMb).toFixed(2)}×`,
  );
}
const base = runs.filter((r) => r.limit === LIMITS[0]!.label);
if (base.length > 1) {
  console.log(`ratios at the default limit, vs ${base[0]!.sets} set(s):`);
  for (const r of base.slice(1)) {
    console.log(
      `  ${String(r.sets).padStart(3)} sets: apply ${(r.applyMs / base[0]!.applyMs).toFixed(1)}×, peak RSS ${(r.hwmMb / base[0]!.hwmMb).toFixed(2)}×`,
    );
  }
}
