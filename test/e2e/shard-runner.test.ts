/**
 * The shard runner against the real local control plane, and a real Prometheus scraping what it
 * runs. The Kubernetes side is real (Deployments, a Secret, the runner's watch); the shard process
 * is a small stand-in worker that serves its environment and a metric on METRICS_PORT, because this
 * suite tests the harness, not the evaluator.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningPrometheus, startPrometheus } from "../../hack/prometheus.ts";
import {
  createTestNamespace,
  eventually,
  KUBECONFIG_PATH,
  kubectl,
  loadKubeConfig,
} from "../support/cluster.ts";
import { isProcessAlive } from "../support/privateServices.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const SHARD_SET = "alerts";
const DB_URL = "postgres://evaluator:s3cret@db.example:5432/iot";

/** Stand-in shard process: GET /env → { pid, env }; GET /metrics → one gauge; exits on SIGTERM. */
const FAKE_WORKER = `
const http = require("node:http");
const server = http.createServer((req, res) => {
  if (req.url === "/env") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ pid: process.pid, env: process.env }));
  } else if (req.url === "/metrics") {
    res.setHeader("content-type", "text/plain; version=0.0.4");
    res.end("fake_worker_info{log_level=\\"" + process.env.LOG_LEVEL + "\\"} 1\\n");
  } else {
    res.end("ok");
  }
});
server.listen(Number(process.env.METRICS_PORT), "127.0.0.1", () =>
  console.log(JSON.stringify({ msg: "fake worker listening", port: process.env.METRICS_PORT })));
process.on("SIGTERM", () => process.exit(0));
`;

interface FileSdGroup {
  targets: string[];
  labels: Record<string, string>;
}
interface WorkerView {
  pid: number;
  env: Record<string, string>;
}
interface LogLine {
  msg: string;
  deployment?: string;
  reason?: string;
  pid?: number;
}

let kc: k8s.KubeConfig;
let apps: k8s.AppsV1Api;
let ns: { name: string; remove(): Promise<void> };
let dir: string;
let fileSd: string;
let runner: ChildProcess | undefined;
let runnerExit: Promise<number | null>;
let prometheus: RunningPrometheus | undefined;
const logs: LogLine[] = [];
/** Every worker pid seen, to check that none outlives the runner. */
const workerPids = new Set<number>();

function shardDeployment(
  index: number,
  { shardSet = SHARD_SET, dbSecret = "evaluator-db" }: { shardSet?: string; dbSecret?: string } = {},
): k8s.V1Deployment {
  const labels = { "evaluator.iot.dev/shardset": shardSet, "evaluator.iot.dev/shard": String(index) };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: `${shardSet}-shard-${index}`, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: "evaluator",
              image: "example.invalid/evaluator:test",
              args: ["run"],
              env: [
                { name: "SHARD_INDEX", value: String(index) },
                { name: "SHARD_SET", value: `${ns.name}/${shardSet}` },
                { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: dbSecret, key: "url" } } },
                { name: "LOG_LEVEL", value: "info" },
                { name: "METRICS_PORT", value: "9464" },
              ],
              ports: [{ name: "metrics", containerPort: 9464 }],
            },
          ],
        },
      },
    },
  };
}

function readFileSd(): FileSdGroup[] {
  return existsSync(fileSd) ? (JSON.parse(readFileSync(fileSd, "utf8")) as FileSdGroup[]) : [];
}

function targetOf(deployment: string): FileSdGroup | undefined {
  return readFileSd().find((g) => g.labels["deployment"] === deployment);
}

async function workerView(deployment: string): Promise<WorkerView | undefined> {
  const target = targetOf(deployment)?.targets[0];
  if (!target) return undefined;
  const res = await fetch(`http://${target}/env`, { signal: AbortSignal.timeout(2000) });
  const view = (await res.json()) as WorkerView;
  workerPids.add(view.pid);
  return view;
}

async function promQuery(
  query: string,
): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${prometheus!.url}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as {
    data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  };
  return body.data.result;
}

beforeAll(async () => {
  kc = loadKubeConfig();
  apps = kc.makeApiClient(k8s.AppsV1Api);
  ns = await createTestNamespace(kc, "shard-runner");
  dir = await mkdtemp(join(tmpdir(), "eo-shard-runner-"));
  fileSd = join(dir, "sd", "shards.json");
  await kc.makeApiClient(k8s.CoreV1Api).createNamespacedSecret({
    namespace: ns.name,
    body: { metadata: { name: "evaluator-db" }, stringData: { url: DB_URL } },
  });

  runner = spawn(
    process.execPath,
    [
      join(REPO, "hack", "shard-runner", "main.ts"),
      "--kubeconfig",
      KUBECONFIG_PATH,
      "--namespace",
      ns.name,
      "--shardset",
      SHARD_SET,
      "--file-sd",
      fileSd,
      "--evaluator-cmd",
      JSON.stringify([process.execPath, "-e", FAKE_WORKER]),
      "--log-dir",
      join(dir, "logs"),
    ],
    { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
  );
  const proc = runner;
  runnerExit = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  let partial = "";
  proc.stdout!.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) logs.push(JSON.parse(line) as LogLine);
  });

  // The runner publishes an (empty) file_sd once its first list has converged.
  const [prom] = await Promise.all([
    startPrometheus({ fileSdFiles: [fileSd], scrapeIntervalSeconds: 2 }),
    eventually(async () => (existsSync(fileSd) ? true : undefined), { what: "the runner's first file_sd" }),
  ]);
  prometheus = prom;
});

afterAll(async () => {
  if (runner && runner.exitCode === null && runner.signalCode === null) {
    runner.kill("SIGTERM");
    await runnerExit;
  }
  await prometheus?.stop();
  await ns?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("shard runner", () => {
  it("runs one process per shard Deployment with that Deployment's env, and lists them in file_sd", async () => {
    await Promise.all([
      apps.createNamespacedDeployment({ namespace: ns.name, body: shardDeployment(0) }),
      apps.createNamespacedDeployment({ namespace: ns.name, body: shardDeployment(1) }),
      // Another shard set's Deployment: not this runner's business.
      apps.createNamespacedDeployment({
        namespace: ns.name,
        body: shardDeployment(0, { shardSet: "other" }),
      }),
    ]);

    const [w0, w1] = await eventually(
      async () => {
        const views = await Promise.all([workerView("alerts-shard-0"), workerView("alerts-shard-1")]);
        return views.every(Boolean) ? (views as WorkerView[]) : undefined;
      },
      { what: "both shard processes serving" },
    );
    expect(w0!.pid).not.toBe(w1!.pid);
    for (const [index, w] of [w0!, w1!].entries()) {
      const deployment = `alerts-shard-${index}`;
      const port = targetOf(deployment)!.targets[0]!.split(":")[1];
      expect(w.env).toMatchObject({
        SHARD_INDEX: String(index),
        SHARD_SET: `${ns.name}/alerts`,
        DATABASE_URL: DB_URL, // from the Secret, base64-decoded
        LOG_LEVEL: "info",
        METRICS_PORT: port, // overridden: every process has a port of its own
      });
      expect(w.env["METRICS_PORT"]).not.toBe("9464");
      expect(w.env["HOSTNAME"]).toMatch(new RegExp(`^${deployment}-[0-9a-f]{10}-[0-9a-f]{5}$`));
    }

    expect(readFileSd()).toEqual([
      {
        targets: [expect.stringMatching(/^127\.0\.0\.1:\d+$/)],
        labels: { namespace: ns.name, shardset: "alerts", shard: "0", deployment: "alerts-shard-0" },
      },
      {
        targets: [expect.stringMatching(/^127\.0\.0\.1:\d+$/)],
        labels: { namespace: ns.name, shardset: "alerts", shard: "1", deployment: "alerts-shard-1" },
      },
    ]);
    const started = logs.filter((l) => l.msg === "Started shard process").map((l) => l.deployment);
    expect(started.sort()).toEqual(["alerts-shard-0", "alerts-shard-1"]);
  });

  it("is scraped by a real Prometheus through the file_sd file", async () => {
    const up = await eventually(
      async () => {
        const result = await promQuery('up{job="evaluator"}');
        return result.length === 2 && result.every((r) => r.value[1] === "1") ? result : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: "Prometheus to scrape both shard processes" },
    );
    expect(up.map((r) => r.metric).sort((a, b) => a["shard"]!.localeCompare(b["shard"]!))).toEqual([
      expect.objectContaining({
        namespace: ns.name,
        shardset: "alerts",
        shard: "0",
        deployment: "alerts-shard-0",
      }),
      expect.objectContaining({
        namespace: ns.name,
        shardset: "alerts",
        shard: "1",
        deployment: "alerts-shard-1",
      }),
    ]);
    const info = await promQuery('fake_worker_info{shardset="alerts"}');
    expect(info.map((r) => r.metric["shard"]).sort()).toEqual(["0", "1"]);
  });

  it("replaces only the process whose pod template changed", async () => {
    const before0 = (await workerView("alerts-shard-0"))!;
    const before1 = (await workerView("alerts-shard-1"))!;

    // Not a template change (a replica count): shard 0 keeps its process. Applied first, so once
    // shard 1 has been replaced the runner has seen this event too.
    await kubectl(["-n", ns.name, "scale", "deployment/alerts-shard-0", "--replicas=2"]);
    await kubectl(["-n", ns.name, "set", "env", "deployment/alerts-shard-1", "LOG_LEVEL=debug"]);

    const after1 = await eventually(
      async () => {
        const w = await workerView("alerts-shard-1");
        return w && w.pid !== before1.pid ? w : undefined;
      },
      { what: "shard 1 to run with its new template" },
    );
    expect(after1.env["LOG_LEVEL"]).toBe("debug");
    expect(isProcessAlive(before1.pid)).toBe(false);
    expect((await workerView("alerts-shard-0"))!.pid).toBe(before0.pid);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "Stopped shard process",
        deployment: "alerts-shard-1",
        pid: before1.pid,
        reason: "pod template changed",
      }),
    );
  });

  it("with maxSurge 1 and maxUnavailable 0 (the operator's strategy), starts the new process before it stops the old one", async () => {
    await kubectl([
      "-n",
      ns.name,
      "patch",
      "deployment/alerts-shard-1",
      "--type=merge",
      "-p",
      JSON.stringify({
        spec: { strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } },
      }),
    ]);
    const before = (await workerView("alerts-shard-1"))!;
    await kubectl(["-n", ns.name, "set", "env", "deployment/alerts-shard-1", "LOG_LEVEL=warn"]);
    const after = await eventually(
      async () => {
        const w = await workerView("alerts-shard-1");
        return w && w.pid !== before.pid ? w : undefined;
      },
      { what: "shard 1 to run with its surged template" },
    );
    expect(after.env["LOG_LEVEL"]).toBe("warn");
    const stopped = await eventually(
      async () =>
        logs.findIndex(
          (l) =>
            l.msg === "Stopped shard process" &&
            l.pid === before.pid &&
            (l as { reason?: string }).reason === "pod template changed (rolled out)",
        ) + 1 || undefined,
      { what: "the old process stopped after the rollout" },
    );
    const started = logs.findIndex((l) => l.msg === "Started shard process" && l.pid === after.pid) + 1;
    expect(started).toBeGreaterThan(0);
    // The new one started while the old one still ran.
    expect(started).toBeLessThan(stopped);
    expect(isProcessAlive(before.pid)).toBe(false);
  });

  it("restarts a process that dies", async () => {
    const before = (await workerView("alerts-shard-0"))!;
    process.kill(before.pid, "SIGKILL");
    const after = await eventually(
      async () => {
        const w = await workerView("alerts-shard-0").catch(() => undefined);
        return w && w.pid !== before.pid ? w : undefined;
      },
      { what: "shard 0 to be restarted" },
    );
    expect(after.env["SHARD_INDEX"]).toBe("0");
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "Shard process exited unexpectedly",
        deployment: "alerts-shard-0",
        pid: before.pid,
      }),
    );
  });

  it("holds a process back while its Secret is missing, and starts it once the Secret exists", async () => {
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: shardDeployment(2, { dbSecret: "evaluator-db-late" }),
    });
    await eventually(
      async () =>
        logs.some((l) => l.msg === "Cannot start shard process" && l.deployment === "alerts-shard-2")
          ? true
          : undefined,
      { what: "the runner to report the missing Secret" },
    );
    expect(targetOf("alerts-shard-2")).toBeUndefined();

    const lateUrl = "postgres://late@db.example:5432/iot";
    await kc.makeApiClient(k8s.CoreV1Api).createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name: "evaluator-db-late" }, stringData: { url: lateUrl } },
    });
    const w2 = await eventually(() => workerView("alerts-shard-2").catch(() => undefined), {
      what: "shard 2 to start after its Secret appeared",
    });
    expect(w2.env["DATABASE_URL"]).toBe(lateUrl);

    await apps.deleteNamespacedDeployment({ name: "alerts-shard-2", namespace: ns.name });
    await eventually(async () => (targetOf("alerts-shard-2") ? undefined : true), {
      what: "shard 2 to leave file_sd",
    });
    expect(isProcessAlive(w2.pid)).toBe(false);
  });

  it("stops the process of a Deployment scaled to 0 or deleted, and drops it from file_sd and Prometheus", async () => {
    const w0 = (await workerView("alerts-shard-0"))!;
    const w1 = (await workerView("alerts-shard-1"))!;

    await kubectl(["-n", ns.name, "scale", "deployment/alerts-shard-0", "--replicas=0"]);
    await eventually(async () => (targetOf("alerts-shard-0") ? undefined : true), {
      what: "shard 0 to leave file_sd",
    });
    expect(isProcessAlive(w0.pid)).toBe(false);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "Stopped shard process",
        deployment: "alerts-shard-0",
        reason: "scaled to 0",
      }),
    );

    await apps.deleteNamespacedDeployment({ name: "alerts-shard-1", namespace: ns.name });
    await eventually(async () => (readFileSd().length === 0 ? true : undefined), {
      what: "an empty file_sd",
    });
    expect(isProcessAlive(w1.pid)).toBe(false);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "Stopped shard process",
        deployment: "alerts-shard-1",
        reason: "Deployment deleted",
      }),
    );

    // Prometheus marks the vanished targets' series stale at once.
    await eventually(async () => ((await promQuery('up{job="evaluator"}')).length === 0 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 1000,
      what: "Prometheus to drop the targets",
    });
  });

  it("brings a scaled-up Deployment back, and stops every process when the runner stops", async () => {
    await kubectl(["-n", ns.name, "scale", "deployment/alerts-shard-0", "--replicas=1"]);
    const w0 = await eventually(() => workerView("alerts-shard-0"), { what: "shard 0 to run again" });
    expect(w0.env["SHARD_INDEX"]).toBe("0");

    runner!.kill("SIGTERM");
    expect(await runnerExit).toBe(0);
    for (const pid of workerPids) expect(isProcessAlive(pid), `worker ${pid}`).toBe(false);
    expect(readFileSd()).toEqual([]);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "Stopped shard process",
        deployment: "alerts-shard-0",
        reason: "shard runner stopped",
      }),
    );
  });
});
