import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { clusterStateDir } from "./cluster.ts";

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Starts the local control plane once for the e2e project, or reuses one that is already up.
 * A plane this setup started is stopped again at the end (set EO_KEEP_CLUSTER=1 to keep it).
 */
export default async function setup(): Promise<() => Promise<void>> {
  const cluster = join(repo, "hack", "cluster.sh");
  const wasUp = existsSync(join(clusterStateDir(), "run", "kube-apiserver.pid"));
  const { stderr } = await run("bash", [cluster, "up"], { maxBuffer: 64 * 1024 * 1024 });
  process.stderr.write(
    `${stderr
      .split("\n")
      .filter((l) => l.startsWith("[cluster]") || l.startsWith("[setup]"))
      .join("\n")}\n`,
  );
  return async () => {
    if (!wasUp && process.env["EO_KEEP_CLUSTER"] !== "1") {
      await run("bash", [cluster, "down"]);
    }
  };
}
