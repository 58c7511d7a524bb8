/**
 * A real Prometheus on loopback for local runs and e2e tests, scraping the shard processes that the
 * shard runner lists in a file_sd file (every 5 s by default).
 *
 * As a module: `startPrometheus({ fileSdFiles: [path] })` → `{ url, port, pid, dir, stop() }`; with no
 * `dir`, the config and the TSDB live in a temp folder that `stop()` removes.
 *
 * As a command (state, pid file and log in `<cache>/prometheus` or `--state-dir`):
 *
 *   node hack/prometheus.ts up --file-sd PATH [--file-sd PATH2] [--port 19090] [--state-dir DIR]
 *   node hack/prometheus.ts down [--state-dir DIR]
 *   node hack/prometheus.ts status [--state-dir DIR]
 *
 * The binary is the toolchain's (`<cache>/bin/prometheus`, Debian's 2.42), else `prometheus` on PATH.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, closeSync, constants, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readlink, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { parseArgs } from "node:util";

export interface PrometheusOptions {
  /** file_sd files (or globs) whose targets are scraped. */
  fileSdFiles: readonly string[];
  /** Listen port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Scrape interval and file_sd refresh interval (default 5 s). */
  scrapeIntervalSeconds?: number;
  /** State folder (config, TSDB, log). Default: a temp folder removed by `stop()`. */
  dir?: string;
  /** Run in its own session, outliving this process (the `up` command). */
  detached?: boolean;
  binary?: string;
}

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** SIGTERM (SIGKILL after 10 s); removes the state folder when it was a temp one. */
  stop(): Promise<void>;
}

/** Where the hack/ scripts cache things (mirrors hack/lib.sh). */
function cacheRoot(): string {
  return (
    process.env["EVALUATOR_OPERATOR_CACHE"] ??
    join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "evaluator-operator")
  );
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The toolchain's prometheus (hack/toolchain.sh links it), else the one on PATH. */
export function prometheusBinary(): string {
  const cached = join(cacheRoot(), "bin", "prometheus");
  if (executable(cached)) return cached;
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir && executable(join(dir, "prometheus"))) return join(dir, "prometheus");
  }
  throw new Error("prometheus not found: run hack/toolchain.sh (or apt-get install prometheus)");
}

/** The Prometheus configuration (JSON, which is valid YAML): one job scraping the file_sd targets. */
export function renderPrometheusConfig(opts: {
  fileSdFiles: readonly string[];
  scrapeIntervalSeconds: number;
}): string {
  const interval = `${opts.scrapeIntervalSeconds}s`;
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    scrape_configs: [
      {
        job_name: "evaluator",
        scrape_interval: interval,
        scrape_timeout: `${Math.max(1, opts.scrapeIntervalSeconds - 1)}s`,
        metrics_path: "/metrics",
        file_sd_configs: [{ files: opts.fileSdFiles.map((f) => resolve(f)), refresh_interval: interval }],
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? ok(addr.port) : fail(new Error("no port"))));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function waitUntil(probe: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return probe();
}

async function ready(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function terminate(pid: number, child: ChildProcess | undefined, graceMs = 10_000): Promise<void> {
  const gone = child
    ? new Promise<void>((r) =>
        child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", () => r()),
      )
    : undefined;
  const isGone = () => (child ? child.exitCode !== null || child.signalCode !== null : !alive(pid));
  if (isGone()) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const stopped = gone
    ? await Promise.race([
        gone.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), graceMs)),
      ])
    : await waitUntil(isGone, graceMs);
  if (!stopped) {
    process.kill(pid, "SIGKILL");
    if (gone) await gone;
    else await waitUntil(isGone, 5000);
  }
}

/** Starts Prometheus and resolves once `/-/ready` answers. */
export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const binary = opts.binary ?? prometheusBinary();
  const temporary = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "eo-prometheus-")));
  await mkdir(join(dir, "data"), { recursive: true });
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const configFile = join(dir, "prometheus.yml");
  await writeFile(
    configFile,
    renderPrometheusConfig({
      fileSdFiles: opts.fileSdFiles,
      scrapeIntervalSeconds: opts.scrapeIntervalSeconds ?? 5,
    }),
  );
  const logFd = openSync(join(dir, "prometheus.log"), "a");
  let child: ChildProcess;
  try {
    child = spawn(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        "--storage.tsdb.retention.time=1d",
        `--web.listen-address=127.0.0.1:${port}`,
        "--web.enable-lifecycle",
      ],
      { cwd: dir, stdio: ["ignore", logFd, logFd], detached: opts.detached ?? false },
    );
  } finally {
    closeSync(logFd);
  }
  child.on("error", () => {
    // A spawn failure shows up as the readiness timeout below, with the log.
  });
  const ownChild = opts.detached ? undefined : child;
  if (opts.detached) child.unref();
  const pid = child.pid ?? -1;

  const stop = async () => {
    if (pid > 0) await terminate(pid, ownChild);
    if (temporary) await rm(dir, { recursive: true, force: true });
  };

  const up = await waitUntil(async () => (pid > 0 && alive(pid) ? ready(url) : false), 30_000);
  if (!up) {
    const log = (() => {
      try {
        return readFileSync(join(dir, "prometheus.log"), "utf8").split("\n").slice(-15).join("\n");
      } catch {
        return "";
      }
    })();
    await stop();
    throw new Error(`prometheus did not become ready on ${url}\n${log}`);
  }
  return { url, port, pid, dir, stop };
}

// --- command line ---------------------------------------------------------------------------------

async function cli(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "file-sd": { type: "string", multiple: true },
      port: { type: "string" },
      "state-dir": { type: "string" },
    },
  });
  const stateDir = resolve(values["state-dir"] ?? join(cacheRoot(), "prometheus"));
  const pidFile = join(stateDir, "prometheus.pid");
  const runningPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      return pid > 0 && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const say = (msg: string) => process.stderr.write(`[prometheus] ${msg}\n`);

  switch (positionals[0]) {
    case "up": {
      const files = values["file-sd"] ?? [];
      if (files.length === 0) {
        say("up needs --file-sd PATH");
        return 2;
      }
      const existing = runningPid();
      if (existing !== undefined) {
        say(`already running (pid ${existing}); run 'down' first to change its targets`);
        return 0;
      }
      const port = Number(values.port ?? process.env["EO_PROMETHEUS_PORT"] ?? 19090);
      const prom = await startPrometheus({ fileSdFiles: files, port, dir: stateDir, detached: true });
      await writeFile(pidFile, `${prom.pid}\n`);
      await writeFile(join(stateDir, "url"), `${prom.url}\n`);
      say(`running on ${prom.url} (pid ${prom.pid}, log ${join(stateDir, "prometheus.log")})`);
      process.stdout.write(`${prom.url}\n`);
      return 0;
    }
    case "down": {
      const pid = runningPid();
      // Only a prometheus of this state folder (it runs inside it): never some other process that reuses the pid.
      if (pid !== undefined && (await readlink(`/proc/${pid}/cwd`).catch(() => "")) === stateDir) {
        await terminate(pid, undefined);
        say(`stopped (pid ${pid})`);
      } else {
        say("not running");
      }
      await rm(stateDir, { recursive: true, force: true });
      return 0;
    }
    case "status": {
      const pid = runningPid();
      if (pid === undefined) {
        say("not running");
        return 1;
      }
      const url = readFileSync(join(stateDir, "url"), "utf8").trim();
      say(`running on ${url} (pid ${pid})`);
      process.stdout.write(`${url}\n`);
      return 0;
    }
    default:
      say("usage: node hack/prometheus.ts up --file-sd PATH [--port N] [--state-dir DIR] | down | status");
      return 2;
  }
}

if (import.meta.main) {
  process.exitCode = await cli(process.argv.slice(2));
}
