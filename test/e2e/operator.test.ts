import * as k8s from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestNamespace, eventually, installCrd, kubectl, loadKubeConfig } from "../support/cluster.ts";
import { msg, type OperatorProcess, startOperator } from "../support/operator.ts";
import { promtoolCheck } from "../support/promtool.ts";
import { getShardSet, settledShardSet, shardSetManifest } from "../support/shardSets.ts";

/**
 * The operator's reconcile core against the real local plane (apiserver, controller-manager, kwok):
 * Deployments only (`--no-assignments`); tenant moves are covered by the reshard suite.
 */
const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const core = kc.makeApiClient(k8s.CoreV1Api);
const coordination = kc.makeApiClient(k8s.CoordinationV1Api);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

beforeAll(async () => {
  await installCrd();
});

async function setup(label: string, extraArgs: string[] = []): Promise<{ ns: string; op: OperatorProcess }> {
  const ns = await createTestNamespace(kc, label);
  cleanups.push(() => ns.remove());
  const op = startOperator([
    "--namespaces",
    ns.name,
    "--no-leader-elect",
    "--no-assignments",
    "--drain-slack",
    "0s",
    ...extraArgs,
  ]);
  cleanups.push(() => op.kill("SIGKILL"));
  await op.waitForLog(msg("Caches synced; reconciling"));
  return { ns: ns.name, op };
}

async function shardDeployments(ns: string, set: string): Promise<k8s.V1Deployment[]> {
  const list = await apps.listNamespacedDeployment({
    namespace: ns,
    labelSelector: `evaluator.iot.dev/shardset=${set}`,
  });
  return list.items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
}

/** Waits until the set reports `shards` shards, all ready, with no reshard in flight. */
const settled = (ns: string, name: string, shards: number, timeoutMs = 90_000) =>
  settledShardSet(kc, ns, name, shards, timeoutMs);

const env = (d: k8s.V1Deployment, n: string) =>
  d.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === n);

describe("EvaluatorShardSet reconcile", () => {
  it("runs one Ready Deployment per shard, with names, env, labels, owner and security context", async () => {
    const { ns, op } = await setup("three");
    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 3));
    const set = await settled(ns, "alerts", 3);

    const ds = await shardDeployments(ns, "alerts");
    expect(ds.map((d) => d.metadata?.name)).toEqual(["alerts-shard-0", "alerts-shard-1", "alerts-shard-2"]);
    ds.forEach((d, i) => {
      expect(env(d, "SHARD_INDEX")?.value).toBe(String(i));
      expect(env(d, "DATABASE_URL")?.valueFrom?.secretKeyRef?.name).toBe("evaluator-db");
      expect(d.metadata?.labels).toMatchObject({
        "evaluator.iot.dev/shardset": "alerts",
        "evaluator.iot.dev/shard": String(i),
      });
      expect(d.metadata?.ownerReferences).toEqual([
        expect.objectContaining({
          kind: "EvaluatorShardSet",
          name: "alerts",
          uid: set.metadata.uid,
          controller: true,
        }),
      ]);
      const c = d.spec?.template.spec?.containers[0];
      expect(c?.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        runAsNonRoot: true,
      });
    });
    const pods = await core.listNamespacedPod({
      namespace: ns,
      labelSelector: "evaluator.iot.dev/shardset=alerts",
    });
    expect(
      pods.items.filter((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")),
    ).toHaveLength(3);
    expect(set.status?.selector).toBe("evaluator.iot.dev/shardset=alerts");
    expect(set.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");

    // The operator's own metrics and probes.
    const ports = op.logs.find((l) => l["msg"] === "Serving metrics and probes")!;
    const metrics = await (await fetch(`http://127.0.0.1:${ports["metricsPort"]}/metrics`)).text();
    expect(metrics).toMatch(
      /controller_runtime_reconcile_total\{controller="evaluatorshardset",result="success"\} [1-9]/,
    );
    expect(metrics).toContain("controller_runtime_reconcile_time_seconds_bucket");
    expect(metrics).toContain('workqueue_depth{name="evaluatorshardset"}');
    expect(metrics).toMatch(/^leader_election_master_status\{name="none"\} 1$/m);
    // The status-derived gauges the alerting rules read (monitoring/alerts.rules.yaml).
    expect(metrics).toContain(
      `evaluator_operator_shardset_condition{namespace="${ns}",shardset="alerts",condition="Ready",`,
    );
    expect(metrics).toContain(
      `evaluator_operator_shardset_tick_interval_seconds{namespace="${ns}",shardset="alerts"} `,
    );
    const lint = await promtoolCheck(metrics);
    expect(lint.output).toBe("");
    expect(lint.code).toBe(0);
    for (const probe of ["healthz", "readyz"]) {
      expect((await fetch(`http://127.0.0.1:${ports["healthPort"]}/${probe}`)).status).toBe(200);
    }

    const table = await kubectl(["get", "ess", "alerts", "-n", ns]);
    const [header, row] = table.trim().split("\n");
    const cols = header!.split(/\s+/);
    const vals = row!.split(/\s+/);
    expect(vals[cols.indexOf("SHARDS")]).toBe("3");
    expect(vals[cols.indexOf("READY")]).toBe("3");
  });

  it("scales with kubectl scale without touching the shards that stay, and removes the highest shards on scale-down", async () => {
    const { ns } = await setup("scale");
    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 3));
    await settled(ns, "alerts", 3);
    const before = await shardDeployments(ns, "alerts");

    const t0 = Date.now();
    await kubectl(["scale", "ess/alerts", "-n", ns, "--replicas=5"]);
    await eventually(async () => ((await shardDeployments(ns, "alerts")).length === 5 ? true : undefined), {
      what: "5 Deployments",
    });
    const appliedMs = Date.now() - t0;
    console.info(`kubectl scale 3→5: all Deployments applied after ${appliedMs} ms`);
    await settled(ns, "alerts", 5);

    const after = await shardDeployments(ns, "alerts");
    for (const i of [0, 1, 2]) {
      expect(after[i]?.metadata?.uid).toBe(before[i]?.metadata?.uid);
      expect(after[i]?.metadata?.generation).toBe(before[i]?.metadata?.generation);
      expect(after[i]?.spec?.template).toEqual(before[i]?.spec?.template);
    }

    await kubectl(["scale", "ess/alerts", "-n", ns, "--replicas=2"]);
    // Removed shards keep running one tick interval (5 s here) past the commit, then go.
    const s = await settled(ns, "alerts", 2);
    expect((await shardDeployments(ns, "alerts")).map((d) => d.metadata?.name)).toEqual([
      "alerts-shard-0",
      "alerts-shard-1",
    ]);
    expect(s.status?.lastReshard).toMatchObject({ from: 5, to: 2 });
    const remaining = await shardDeployments(ns, "alerts");
    expect(remaining[0]?.metadata?.uid).toBe(before[0]?.metadata?.uid);
    // The operator never writes spec: what kubectl scale set is still there.
    expect((await getShardSet(kc, ns, "alerts")).spec.shards).toBe(2);
  });

  it("restores a Deployment edited or deleted by hand, and the set's deletion garbage-collects its shards", async () => {
    const { ns } = await setup("drift");
    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 2));
    await settled(ns, "alerts", 2);

    await kubectl([
      "set",
      "image",
      "deployment/alerts-shard-1",
      "-n",
      ns,
      "evaluator=registry.invalid/tampered:6.6.6",
    ]);
    await eventually(
      async () => {
        const d = await apps.readNamespacedDeployment({ name: "alerts-shard-1", namespace: ns });
        return d.spec?.template.spec?.containers[0]?.image === "registry.invalid/evaluator:1.0.0"
          ? true
          : undefined;
      },
      { what: "image restored" },
    );

    const oldUid = (await apps.readNamespacedDeployment({ name: "alerts-shard-0", namespace: ns })).metadata
      ?.uid;
    await kubectl(["delete", "deployment", "alerts-shard-0", "-n", ns]);
    await eventually(
      async () => {
        const d = await apps
          .readNamespacedDeployment({ name: "alerts-shard-0", namespace: ns })
          .catch(() => undefined);
        return d && d.metadata?.uid !== oldUid ? true : undefined;
      },
      { what: "deleted Deployment recreated" },
    );

    await kubectl(["delete", "ess", "alerts", "-n", ns, "--wait=true"]);
    await eventually(
      async () => {
        const [d, p] = await Promise.all([
          shardDeployments(ns, "alerts"),
          core.listNamespacedPod({ namespace: ns, labelSelector: "evaluator.iot.dev/shardset=alerts" }),
        ]);
        return d.length === 0 && p.items.length === 0 ? true : undefined;
      },
      { what: "shards garbage-collected" },
    );
  });

  it("changes nothing while paused, but keeps status fresh", async () => {
    const { ns } = await setup("paused");
    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 2));
    await settled(ns, "alerts", 2);
    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 4, "  paused: true\n"));
    const s = await eventually(
      async () => {
        const s = await getShardSet(kc, ns, "alerts");
        return s.status?.observedGeneration === s.metadata.generation ? s : undefined;
      },
      { what: "paused generation observed" },
    );
    expect(s.status?.desiredShards).toBe(4);
    expect(s.status?.shards).toBe(2);
    expect(s.status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({
      status: "False",
      reason: "Paused",
    });
    // The reconcile writes status after it acted, so whatever the paused reconcile of this
    // generation would have applied exists by now: nothing did.
    expect(await shardDeployments(ns, "alerts")).toHaveLength(2);

    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 4, "  paused: false\n"));
    await settled(ns, "alerts", 4);
  });

  it("converges with no duplicate objects when killed in the middle of a scale-down and restarted", async () => {
    const { ns, op } = await setup("crash");
    await kubectl(["apply", "-n", ns, "-f", "-"], shardSetManifest("alerts", 4));
    await settled(ns, "alerts", 4);
    await op.kill("SIGKILL");

    const crashing = startOperator(
      ["--namespaces", ns, "--no-leader-elect", "--no-assignments", "--drain-slack", "0s"],
      {
        EO_FAULT_CRASH_AT: "before-delete",
      },
    );
    cleanups.push(() => crashing.kill("SIGKILL"));
    await kubectl(["scale", "ess/alerts", "-n", ns, "--replicas=1"]);
    // SIGKILL at the fault point: the process dies before it can say so.
    const signal = await eventually(async () => crashing.child.signalCode ?? undefined, {
      what: "operator crashed",
    });
    expect(signal).toBe("SIGKILL");
    const mid = await getShardSet(kc, ns, "alerts");
    expect(mid.status?.reshard?.phase).toBe("Draining");
    expect(await shardDeployments(ns, "alerts")).toHaveLength(4);

    const restarted = startOperator([
      "--namespaces",
      ns,
      "--no-leader-elect",
      "--no-assignments",
      "--drain-slack",
      "0s",
    ]);
    cleanups.push(() => restarted.kill("SIGKILL"));
    const s = await settled(ns, "alerts", 1);
    expect(s.status?.lastReshard).toMatchObject({ from: 4, to: 1 });
    const all = await apps.listNamespacedDeployment({ namespace: ns });
    expect(all.items.map((d) => d.metadata?.name)).toEqual(["alerts-shard-0"]);
  });
});

describe("leader election", () => {
  it("lets exactly one of two operators reconcile, and a standby takes over when the leader dies", async () => {
    const ns = await createTestNamespace(kc, "leader");
    cleanups.push(() => ns.remove());
    const args = [
      "--namespaces",
      ns.name,
      "--no-assignments",
      "--leader-election-namespace",
      ns.name,
      "--leader-election-lease-duration",
      "4s",
      "--leader-election-renew-deadline",
      "3s",
      "--leader-election-retry-period",
      "500ms",
    ];
    const a = startOperator(args);
    cleanups.push(() => a.kill("SIGKILL"));
    await a.waitForLog(msg("Became leader"));
    const b = startOperator(args);
    cleanups.push(() => b.kill("SIGKILL"));
    await b.waitForLog(msg("Campaigning for leadership"));
    // The standby reads 0 (not a metric without a sample) and its exposition is lint-clean.
    const bPorts = b.logs.find((l) => l["msg"] === "Serving metrics and probes")!;
    const standbyMetrics = await (await fetch(`http://127.0.0.1:${bPorts["metricsPort"]}/metrics`)).text();
    expect(standbyMetrics).toMatch(/^leader_election_master_status\{name="evaluator-operator-leader"\} 0$/m);
    const standbyLint = await promtoolCheck(standbyMetrics);
    expect(standbyLint.output).toBe("");
    expect(standbyLint.code).toBe(0);

    await kubectl(["apply", "-n", ns.name, "-f", "-"], shardSetManifest("alerts", 2));
    await settled(ns.name, "alerts", 2);
    const applied = (p: OperatorProcess) => p.logs.filter((l) => l["msg"] === "Applied Deployment").length;
    expect(applied(a)).toBe(2);
    expect(applied(b)).toBe(0);
    expect(b.logs.some((l) => l["msg"] === "Became leader")).toBe(false);
    const lease = await coordination.readNamespacedLease({
      name: "evaluator-operator-leader",
      namespace: ns.name,
    });
    expect(lease.spec?.holderIdentity).toBe(a.logs.find((l) => l["msg"] === "Became leader")?.["identity"]);

    // The leader dies without releasing: the standby takes over once the lease expires.
    const killedAt = Date.now();
    await a.kill("SIGKILL");
    await b.waitForLog(msg("Became leader"), 30_000);
    const takeoverMs = Date.now() - killedAt;
    console.info(`standby took over ${takeoverMs} ms after the leader was killed (lease 4 s)`);
    expect(takeoverMs).toBeLessThan(15_000);
    await kubectl(["scale", "ess/alerts", "-n", ns.name, "--replicas=3"]);
    await settled(ns.name, "alerts", 3);
    expect(b.logs.filter((l) => l["msg"] === "Applied Deployment").length).toBeGreaterThanOrEqual(1);

    // SIGTERM releases the Lease: a new candidate gets it without waiting for expiry.
    const c = startOperator(args);
    cleanups.push(() => c.kill("SIGKILL"));
    await c.waitForLog(msg("Campaigning for leadership"));
    expect(await b.kill("SIGTERM")).toBe(0);
    expect(b.logs.some((l) => l["msg"] === "Released leadership")).toBe(true);
    await c.waitForLog(msg("Became leader"), 30_000);
  });
});
