/**
 * The CI-sized chaos scenario (hack/chaos/scenarios/ci.json), run as `npm run chaos` runs it: the
 * whole system on the local plane with private PostgreSQL and Valkey, every kind of action at
 * least once, and the verdict from what was judged (hack/chaos/verdict.ts). The run must pass, and
 * must have done what the scenario says: every action carried out, evaluations, alerts and events
 * observed. EO_CHAOS_SCENARIO runs another scenario file instead (e.g. the full-size one).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Verdict } from "../../hack/chaos/verdict.ts";
import { installCrd } from "../support/cluster.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const SCENARIO = process.env["EO_CHAOS_SCENARIO"] ?? join(REPO, "hack", "chaos", "scenarios", "ci.json");

interface Report {
  actions: { at: number; kind: string; result: string }[];
  notes: string[];
  verdict: Verdict;
}

let dir: string;
beforeAll(async () => {
  await installCrd();
  dir = await mkdtemp(join(tmpdir(), "eo-chaos-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("chaos", () => {
  it("the scenario's run passes its verdict: no duplicate, no missed evaluation, no lost row", {
    timeout: 60 * 60_000,
  }, async () => {
    const reportPath = join(dir, "report.json");
    const output: string[] = [];
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(
        process.execPath,
        [join(REPO, "hack", "chaos", "run.ts"), "--scenario", SCENARIO, "--report", reportPath],
        {
          cwd: REPO,
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      child.stdout.setEncoding("utf8").on("data", (d: string) => output.push(d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => output.push(d));
      child.on("exit", (c) => resolve(c));
    });
    const text = output.join("");
    const table = text.slice(Math.max(0, text.lastIndexOf("\n\n", text.indexOf("report:"))));
    expect(code, `chaos run exited ${code}:\n${text.slice(-6000)}`).toBe(0);
    process.stdout.write(`${table}\n`);
    const report = JSON.parse(await readFile(reportPath, "utf8")) as Report;
    expect(report.verdict.ok).toBe(true);
    // It did what the scenario says.
    expect(report.actions.filter((a) => a.result.startsWith("failed"))).toEqual([]);
    expect(new Set(report.actions.map((a) => a.kind)).size).toBeGreaterThanOrEqual(
      new Set(JSON.parse(await readFile(SCENARIO, "utf8")).timeline.map((a: { kind: string }) => a.kind))
        .size,
    );
    const s = report.verdict.summary as Record<string, number>;
    expect(s["evaluations"]).toBeGreaterThan(0);
    expect(s["alerts"]).toBeGreaterThan(0);
    expect(s["events"]).toBeGreaterThan(0);
  });
});
