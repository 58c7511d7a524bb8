/**
 * The real evaluator (`node evaluator/bin/evaluator.ts run`) as a child process, for tests that
 * restart it, run two of them, or check what the process prints and serves. Logs are parsed from
 * its stdout (pino JSON lines); the metrics port comes from its `metrics_listening` line
 * (METRICS_PORT=0 picks a free port). A test that sets a fault variable (EVALUATOR_TEST_*) gets the
 * test entry point with fault hooks instead (test/support/evaluatorWithFaults.ts); every other test
 * runs the product's entry point.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { eventually as pollUntil, toolchainBin } from "./cluster.ts";
import { createTestDatabase, type TestDatabase } from "./postgres.ts";
import { connectValkey, deleteTenantKeys, VALKEY_URL } from "./valkey.ts";

export const EVALUATOR_BIN = fileURLToPath(new URL("../../evaluator/bin/evaluator.ts", import.meta.url));
/** The test entry point that injects the EVALUATOR_TEST_* faults (see ./evaluatorFaults.ts). */
export const EVALUATOR_WITH_FAULTS_BIN = fileURLToPath(new URL("./evaluatorWithFaults.ts", import.meta.url));

/** The entry point for `env`: the one with fault hooks only when a fault variable is set. */
export function evaluatorEntry(env: Record<string, string>): string {
  return Object.keys(env).some((name) => name.startsWith("EVALUATOR_TEST_"))
    ? EVALUATOR_WITH_FAULTS_BIN
    : EVALUATOR_BIN;
}

/** One pino log line. */
export interface LogLine {
  readonly msg: string;
  readonly level: number;
  readonly [field: string]: unknown;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface EvaluatorProcess {
  readonly child: ChildProcess;
  /** Every JSON log line printed so far (non-JSON lines are kept in `stdoutText`). */
  readonly logs: LogLine[];
  stdoutText(): string;
  stderrText(): string;
  /** Resolves with the first line (already printed or to come) that matches. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** The port of /metrics, /healthz and /readyz. */
  port(): Promise<number>;
  /** GET a path of the metrics server. */
  get(path: string): Promise<{ status: number; body: string }>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit status. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
  readonly exited: Promise<ExitStatus>;
}

/** The environment of a child evaluator: only what is given, plus PATH/HOME (never the test's own SHARD_*). */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? homedir(), ...env };
}

/**
 * Starts the evaluator with `env` (and extra CLI `args`), through {@link evaluatorEntry}. Stop it
 * with `stop()` in `afterEach`.
 */
export function startEvaluator(env: Record<string, string>, args: string[] = []): EvaluatorProcess {
  const child = spawn(process.execPath, [evaluatorEntry(env), "run", ...args], {
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  let stdout = "";
  let stderr = "";
  let partial = "";
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    partial += chunk;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const text of lines) {
      if (!text.startsWith("{")) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      logs.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (w.match(line)) {
          waiters.splice(i, 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 20_000) => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        reject(
          new Error(
            `no matching log line within ${timeoutMs} ms; stderr:\n${stderr}\nlast lines:\n${stdout.slice(-3000)}`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(waiter);
      void exited.then(() => {
        // A process that died will never print the line.
        setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i < 0) return;
          waiters.splice(i, 1);
          clearTimeout(timer);
          reject(new Error(`evaluator exited before the expected log line; stderr:\n${stderr}`));
        }, 50);
      });
    });
  };

  const port = async () => {
    const line = await waitForLog((l) => l.msg === "metrics_listening");
    return line["port"] as number;
  };

  return {
    child,
    logs,
    stdoutText: () => stdout,
    stderrText: () => stderr,
    waitForLog,
    port,
    async get(path) {
      const res = await fetch(`http://127.0.0.1:${await port()}${path}`);
      return { status: res.status, body: await res.text() };
    },
    async stop(signal = "SIGTERM", timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    exited,
  };
}

/** Runs the evaluator until it exits on its own (e.g. an invalid configuration). */
export async function runEvaluatorToExit(
  env: Record<string, string>,
  args: string[] = [],
  timeoutMs = 15_000,
): Promise<ExitStatus & { stdout: string; stderr: string }> {
  const p = startEvaluator(env, args);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  try {
    const status = await p.exited;
    return { ...status, stdout: p.stdoutText(), stderr: p.stderrText() };
  } finally {
    clearTimeout(timer);
  }
}

/** A migrated database of the test's own, a shard set row, and key cleanup for its tenants. */
export interface EvaluatorWorld {
  readonly db: TestDatabase;
  /** "namespace/name" of the test's shard set. */
  readonly shardSet: string;
  /** Environment for an evaluator of shard `index` against this world. */
  env(index: number, extra?: Record<string, string>): Record<string, string>;
  /** Remembers a tenant id so that `destroy` deletes its Valkey keys. */
  track(tenantId: string): string;
  destroy(): Promise<void>;
}

/** Creates an {@link EvaluatorWorld} with `shardCount` shards in `shard_sets`. */
export async function createEvaluatorWorld(label: string, shardCount = 1): Promise<EvaluatorWorld> {
  const db = await createTestDatabase(label);
  await migrateUp({ db: db.pool });
  const shardSet = `eval-test/${db.name.replace(/_/g, "-")}`;
  await db.pool.query("INSERT INTO shard_sets (name, shard_count) VALUES ($1, $2)", [shardSet, shardCount]);
  const tenants: string[] = [];
  return {
    db,
    shardSet,
    env: (index, extra = {}) => ({
      SHARD_INDEX: String(index),
      SHARD_SET: shardSet,
      DATABASE_URL: db.url,
      VALKEY_URL,
      METRICS_PORT: "0",
      METRICS_HOST: "127.0.0.1",
      LOG_LEVEL: "debug",
      ...extra,
    }),
    track(tenantId) {
      tenants.push(tenantId);
      return tenantId;
    },
    async destroy() {
      const valkey = connectValkey();
      try {
        for (const t of tenants) await deleteTenantKeys(valkey, t);
      } finally {
        valkey.disconnect();
        await db.drop();
      }
    },
  };
}

/** Resolves when `check` returns a truthy value (polled), or rejects after `timeoutMs`. */
export function eventually<T>(
  check: () => Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<T> {
  return pollUntil(async () => (await check()) || undefined, { timeoutMs, intervalMs: 100, what });
}

/** Sum of a metric's samples in Prometheus text format (optionally only those whose labels match). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** The promtool binary of the cached toolchain (hack/toolchain.sh), or $PROMTOOL. */
export function promtoolPath(): string {
  return process.env["PROMTOOL"] ?? join(toolchainBin(), "promtool");
}
