/**
 * hack/cluster.sh on a running plane (the e2e setup has started it): a second `up` returns at once,
 * and no daemon of the plane holds the lock that serialises `up` (a daemon that inherited it would
 * make every later `up` wait for as long as the plane runs).
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { clusterStateDir } from "../support/cluster.ts";

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The pids of the plane's daemons, from the script's pid files. */
function daemonPids(): number[] {
  const runDir = join(clusterStateDir(), "run");
  return readdirSync(runDir)
    .filter((f) => f.endsWith(".pid"))
    .map((f) => Number(readFileSync(join(runDir, f), "utf8").trim()));
}

describe("hack/cluster.sh", () => {
  it("leaves the lock of `up` with no daemon of the plane", () => {
    const pids = daemonPids();
    expect(pids.length).toBeGreaterThanOrEqual(5);
    const holders: string[] = [];
    for (const pid of pids) {
      const fdDir = `/proc/${pid}/fd`;
      for (const fd of readdirSync(fdDir)) {
        let target = "";
        try {
          target = readlinkSync(join(fdDir, fd));
        } catch {
          continue; // closed meanwhile
        }
        if (target === `${clusterStateDir()}.lock`) holders.push(`pid ${pid} fd ${fd}`);
      }
    }
    expect(holders).toEqual([]);
  });

  it("returns at once from a second `up` while the plane runs", async () => {
    const { stderr } = await run("bash", [join(repo, "hack", "cluster.sh"), "up"], { timeout: 60_000 });
    expect(stderr).toContain("control plane already up");
  });
});
