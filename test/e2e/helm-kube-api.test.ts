import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainBin } from "../support/cluster.ts";

/**
 * The chart's `kubeApi.qps` and `kubeApi.burst`: rendered as the operator's `--kube-api-qps` and
 * `--kube-api-burst` (controller-runtime's 20/30 by default), and refused by the schema, naming the
 * value, outside what the operator accepts (qps 1 to 10000, fractions allowed; burst a whole 1 to 10000).
 */
const run = promisify(execFile);
const chart = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "helm", "evaluator-operator");

let helmHome: string;
beforeAll(async () => {
  helmHome = await mkdtemp(join(tmpdir(), "eo-helm-kube-api-"));
});
afterAll(async () => {
  await rm(helmHome, { recursive: true, force: true });
});

async function helmTemplate(args: string[]): Promise<string> {
  const { stdout } = await run(join(toolchainBin(), "helm"), ["template", "rel", chart, ...args], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, "cache"),
      HELM_CONFIG_HOME: join(helmHome, "config"),
      HELM_DATA_HOME: join(helmHome, "data"),
    },
  });
  return stdout;
}

async function operatorArgs(args: string[]): Promise<string[]> {
  const objects = k8s.loadAllYaml(await helmTemplate(args)) as {
    kind?: string;
    spec?: { template: { spec: { containers: { args: string[] }[] } } };
  }[];
  const deployment = objects.find((o) => o?.kind === "Deployment")!;
  return deployment.spec!.template.spec.containers[0]!.args.filter((a) => a.startsWith("--kube-api-"));
}

describe("the chart's kubeApi values", () => {
  it("render --kube-api-qps and --kube-api-burst, 20 and 30 by default", async () => {
    expect(await operatorArgs([])).toEqual(["--kube-api-qps=20", "--kube-api-burst=30"]);
    expect(await operatorArgs(["--set-json", "kubeApi.qps=2.5", "--set", "kubeApi.burst=100"])).toEqual([
      "--kube-api-qps=2.5",
      "--kube-api-burst=100",
    ]);
  });

  it.each([
    [["--set-json", "kubeApi.qps=0.5"], "/kubeApi/qps"],
    [["--set", "kubeApi.qps=10001"], "/kubeApi/qps"],
    [["--set", "kubeApi.qps=fast"], "/kubeApi/qps"],
    [["--set", "kubeApi.burst=0"], "/kubeApi/burst"],
    [["--set-json", "kubeApi.burst=2.5"], "/kubeApi/burst"],
    [["--set", "kubeApi.burst=10001"], "/kubeApi/burst"],
    [["--set", "kubeApi.rate=3"], "kubeApi"],
  ])("refuses %j, naming the value", async (args, path) => {
    const err = await helmTemplate(args).then(
      () => "",
      (e: { stderr?: string }) => String(e.stderr),
    );
    expect(err).toContain(path);
  });
});
