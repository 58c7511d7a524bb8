/**
 * Time from `kubectl scale ess/NAME` to all shard Deployments applied, on the local control plane
 * (hack/cluster.sh up runs first, from hack/bench.sh). Alternates 3 → 6 → 3 several times and prints
 * the median and spread of the scale-up and scale-down apply times, side by side.
 */
import * as k8s from "@kubernetes/client-node";
import { createTestNamespace, installCrd, kubectl, loadKubeConfig } from "../test/support/cluster.ts";
import { startOperator } from "../test/support/operator.ts";

const RUNS = Number(process.env["BENCH_SCALE_RUNS"] ?? 7);
const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
await installCrd();
const ns = await createTestNamespace(kc, "bench-scale");
const op = startOperator([
  "--namespaces",
  ns.name,
  "--no-leader-elect",
  "--no-assignments",
  "--drain-slack",
  "0s",
]);

async function waitForDeployments(n: number): Promise<void> {
  for (;;) {
    const list = await apps.listNamespacedDeployment({
      namespace: ns.name,
      labelSelector: "evaluator.iot.dev/shardset=bench",
    });
    if (list.items.length === n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  await op.waitForLog((l) => l["msg"] === "Caches synced; reconciling");
  await kubectl(
    ["apply", "-n", ns.name, "-f", "-"],
    `apiVersion: evaluator.iot.dev/v1alpha1
kind: EvaluatorShardSet
metadata: { name: bench }
spec:
  shards: 3
  evaluator:
    image: registry.invalid/evaluator:1
    tickIntervalSeconds: 5
    tenantBudgetMs: 1000
    databaseSecretRef: { name: db }
    valkeySecretRef: { name: vk }
  database: { secretRef: { name: db } }
`,
  );
  await waitForDeployments(3);
  const up: number[] = [];
  const down: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let t = performance.now();
    await kubectl(["scale", "ess/bench", "-n", ns.name, "--replicas=6"]);
    await waitForDeployments(6);
    up.push(performance.now() - t);
    // Wait for the new shards to settle so the next scale-down starts from a stable state.
    await new Promise((r) => setTimeout(r, 1500));
    t = performance.now();
    await kubectl(["scale", "ess/bench", "-n", ns.name, "--replicas=3"]);
    // Scale-down keeps removed shards one tick interval (5 s) by design; this measures the whole wait.
    await waitForDeployments(3);
    down.push(performance.now() - t);
  }
  const row = (name: string, xs: number[]) =>
    `${name.padEnd(36)} ${median(xs).toFixed(0).padStart(8)} ${Math.min(...xs)
      .toFixed(0)
      .padStart(8)} ${Math.max(...xs)
      .toFixed(0)
      .padStart(8)}`;
  console.log(`\nkubectl scale → all Deployments applied (${RUNS} runs, local plane)`);
  console.log(`${"".padEnd(36)} ${"median".padStart(8)} ${"min".padStart(8)} ${"max".padStart(8)}  (ms)`);
  console.log(row("scale-up 3 → 6 (apply 3 Deployments)", up));
  console.log(row("scale-down 6 → 3 (incl. 5 s drain)", down));
  console.log(`ratio scale-down/scale-up (median): ${(median(down) / median(up)).toFixed(1)}×`);
} finally {
  await op.kill("SIGTERM");
  await ns.remove();
}
