/**
 * The set-up's steps (hack/lib.sh run_step, step_line): small bash scripts that source lib.sh, run
 * as the hack/ scripts run (set -euo pipefail, stderr not a terminal), with the cache in a temp
 * folder. One line per step on success, the output in the log only; on failure the step, the log's
 * last 30 lines and the fix, and exit 1.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const lib = join(import.meta.dirname, "lib.sh");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs `script` after sourcing lib.sh, as `$0` = test.sh; resolves with its exit code, stderr and log. */
function run(script: string, env: Record<string, string> = {}) {
  const cache = mkdtempSync(join(tmpdir(), "eo-lib-test-"));
  dirs.push(cache);
  const file = join(cache, "test.sh");
  const body = `set -euo pipefail\nsource ${JSON.stringify(lib)}\n${script}\n`;
  const res = spawnSync("bash", ["-c", body, file], {
    encoding: "utf8",
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: cache,
      EVALUATOR_OPERATOR_CACHE: cache,
      ...env,
    },
    timeout: 30_000,
  });
  const logFile = join(cache, "logs", "setup-test.log");
  let log = "";
  try {
    log = readFileSync(logFile, "utf8");
  } catch {
    // no step ran
  }
  return { code: res.status, stderr: res.stderr, stdout: res.stdout, log, logFile };
}

describe("hack/lib.sh set-up steps", () => {
  it("shows one line per step with its time; the steps' output goes to the log only", () => {
    const r = run(`
      run_step "first: compiling" "never shown" bash -c 'echo compiler noise; echo warnings >&2'
      step_line "second" "cached"
      noisy() { echo "from a function"; }
      run_step "third: a function" "never shown" noisy
      echo "the script goes on" >&2
    `);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split("\n");
    // The cache is empty: the first run says up front what it will build and that later runs are quick.
    expect(lines[0]).toMatch(
      /^\[setup\] first run: builds Kubernetes v[\d.]+, etcd and kwok from source once \(minutes: about 10/,
    );
    expect(lines[0]).toContain("later runs take seconds");
    expect(lines.slice(1)).toEqual([
      `[setup] set-up output: ${r.logFile}`,
      "[setup] first: compiling ... done (0s)",
      "[setup] second: cached (0s)",
      "[setup] third: a function ... done (0s)",
      "the script goes on",
    ]);
    expect(r.log).toContain("compiler noise\nwarnings\n");
    expect(r.log).toContain("from a function\n");
    expect(r.log).toMatch(/^=== \S+ first: compiling$/m);
  });

  it("on a failure prints the step, the log's last 30 lines and the fix, and exits 1", () => {
    const r = run(`
      run_step "quiet" "never shown" true
      run_step "kubernetes: building" "free some disk and run again" bash -c 'for i in $(seq 1 50); do echo "build line $i"; done; exit 3'
      echo "never reached" >&2
    `);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[setup\] quiet \.\.\. done \(\d+s\)\n/);
    expect(r.stderr).toMatch(/\[setup\] kubernetes: building \.\.\. FAILED after \d+s \(exit 3\)\n/);
    expect(r.stderr).toContain(`[setup] the last 30 lines of ${r.logFile}:\n`);
    for (let i = 21; i <= 50; i++) expect(r.stderr).toContain(`    build line ${i}\n`);
    expect(r.stderr).not.toContain("build line 20\n");
    expect(r.stderr).toMatch(
      /\[setup\] step failed: kubernetes: building\n\[setup\] fix: free some disk and run again\n$/,
    );
    expect(r.stderr).not.toContain("never reached");
  });

  it("keeps set -e inside a step function, and shows the fix the step gave", () => {
    const r = run(`
      step() { step_fix "check GOPROXY"; false; echo "after a failed command" >&2; }
      run_step "etcd: building" "the generic hint" step
    `);
    expect(r.code).toBe(1);
    expect(r.log).not.toContain("after a failed command");
    expect(r.stderr).toContain("[setup] fix: check GOPROXY\n");
    expect(r.stderr).not.toContain("the generic hint");
  });

  it("shows a long step is alive with a dot every few seconds, on the same line", () => {
    const r = run(`run_step "slow" "-" sleep 2.5`, { EO_SETUP_DOT_SECONDS: "1" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^\[setup\] slow \.\.\.\.\.+ done \([23]s\)$/m);
  });

  it("runs a step once per run: a nested script that sources lib.sh again skips it silently", () => {
    const r = run(`
      mark_step_done deps
      step_done_before deps && echo "deps done" >&2
      step_done_before node || echo "node not done" >&2
      bash -c 'source ${JSON.stringify(lib)}; step_done_before deps && echo "nested: deps done" >&2'
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("deps done\nnode not done\nnested: deps done\n");
  });

  it("with EO_SETUP_VERBOSE=1 shows the step's output too", () => {
    const r = run(`run_step "loud" "-" echo "visible output"`, { EO_SETUP_VERBOSE: "1" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("visible output\n");
    expect(r.log).toContain("visible output\n");
  });
});
