import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";

const run = promisify(execFile);

/** The toolchain cache folder (mirrors hack/lib.sh). */
export function cacheRoot(): string {
  return (
    process.env["EVALUATOR_OPERATOR_CACHE"] ??
    join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "evaluator-operator")
  );
}

/** Where hack/cluster.sh keeps its state. */
export function clusterStateDir(): string {
  return process.env["EO_CLUSTER_DIR"] ?? join(cacheRoot(), "cluster");
}

/** The toolchain's bin folder (kubectl, helm, promtool ...), mirrors hack/toolchain.sh. */
export function toolchainBin(): string {
  return join(cacheRoot(), "bin");
}

export const KUBECONFIG_PATH = process.env["KUBECONFIG"] ?? join(clusterStateDir(), "kubeconfig");

export function loadKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(KUBECONFIG_PATH);
  return kc;
}

/** Runs the real kubectl against the local plane; resolves with stdout, rejects with stderr. */
export async function kubectl(args: string[], input?: string): Promise<string> {
  const child = run(join(toolchainBin(), "kubectl"), ["--kubeconfig", KUBECONFIG_PATH, ...args], {
    maxBuffer: 16 * 1024 * 1024,
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  const { stdout } = await child;
  return stdout;
}

/** Creates a namespace of the test's own; `remove` deletes it (its objects are garbage-collected). */
export async function createTestNamespace(
  kc: k8s.KubeConfig,
  label = "t",
): Promise<{ name: string; remove(): Promise<void> }> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const name = `eo-${label.replace(/[^a-z0-9-]/g, "-").toLowerCase()}-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name, labels: { "evaluator.iot.dev/test": "true" } } } });
  return {
    name,
    async remove() {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}

/** Polls `probe` until it returns a value other than undefined, or fails with the last error after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 250, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Installs (idempotently) the EvaluatorShardSet CRD from crds/ and waits until it is Established. */
export async function installCrd(): Promise<void> {
  const file = new URL("../../crds/evaluator.iot.dev_evaluatorshardsets.yaml", import.meta.url).pathname;
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", file]);
  await kubectl([
    "wait",
    "--for=condition=Established",
    "crd/evaluatorshardsets.evaluator.iot.dev",
    "--timeout=60s",
  ]);
}
