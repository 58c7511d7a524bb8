/**
 * A private kube-apiserver for tests that stop and restart the apiserver under a running client.
 * Stopping the local plane's own apiserver would break every other e2e file running in parallel, so
 * this starts a second one: the same binary with the same flags as the plane's (read from its
 * process's command line), on a free loopback port, in front of the plane's etcd. It serves the same
 * objects; the plane's apiserver keeps serving everyone else, and a test can write through it while
 * the private one is down.
 *
 * `extraArgs` adds flags of its own, for example an audit log that only this apiserver writes.
 *
 * ```ts
 * const api = await startPrivateApiserver();
 * try {
 *   await api.stop(); // an outage (SIGTERM: a graceful apiserver shutdown)
 *   await api.start(); // back on the same port
 *   api.freeze(); // a hung apiserver (SIGSTOP): connections open, nothing answers
 *   api.thaw(); // SIGCONT: it answers again
 * } finally {
 *   await api.destroy();
 * }
 * ```
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdtemp, open, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { clusterStateDir, eventually, loadKubeConfig } from "./cluster.ts";
import { freePort } from "./ports.ts";
import { isProcessAlive } from "./privateServices.ts";

export interface PrivateApiserver {
  readonly port: number;
  /** A kubeconfig for this apiserver: the plane's credentials, this server's address. */
  readonly kc: k8s.KubeConfig;
  /** The same kubeconfig as a file, for a child process (`--kubeconfig`). */
  readonly kubeconfigPath: string;
  /** Pid of the running apiserver, or undefined while it is stopped. */
  pid(): number | undefined;
  /** SIGTERM (a graceful shutdown; SIGKILL after 60 s). Resolves once the process has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once `/readyz` answers ok. */
  start(): Promise<void>;
  /**
   * SIGSTOP: the process stays and the kernel still accepts connections, but no request gets an
   * answer (a hung apiserver, as behind a dead link); clients without a timeout wait forever.
   */
  freeze(): void;
  /** SIGCONT after {@link freeze}: the requests that waited are answered. */
  thaw(): void;
  /** Stops it if it runs and removes its temp folder. Idempotent. */
  destroy(): Promise<void>;
}

const DIR_PREFIX = "eo-apiserver-";

/** The plane's kube-apiserver: its binary and its arguments. */
async function planeApiserver(): Promise<{ bin: string; args: string[] }> {
  const pidFile = join(clusterStateDir(), "run", "kube-apiserver.pid");
  const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
  if (!(pid > 0) || !isProcessAlive(pid)) {
    throw new Error(
      `no running kube-apiserver of the local plane (pid file ${pidFile}): run hack/cluster.sh up`,
    );
  }
  const [bin, cmdline] = await Promise.all([
    readlink(`/proc/${pid}/exe`),
    readFile(`/proc/${pid}/cmdline`, "utf8"),
  ]);
  return { bin, args: cmdline.split("\0").filter(Boolean).slice(1) };
}

/** The same arguments with another `--secure-port`. */
function withPort(args: readonly string[], port: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--secure-port")
      i++; // and its value
    else if (!a.startsWith("--secure-port=")) out.push(a);
  }
  return [...out, `--secure-port=${port}`];
}

/** Kills apiservers and removes folders left by test processes that died without `destroy`. */
async function sweepOrphans(): Promise<void> {
  const pattern = new RegExp(`^${DIR_PREFIX}(\\d+)-`);
  for (const name of readdirSync(tmpdir())) {
    const owner = pattern.exec(name)?.[1];
    if (owner === undefined || isProcessAlive(Number(owner))) continue;
    const dir = join(tmpdir(), name);
    const pid = Number((await readFile(join(dir, "apiserver.pid"), "utf8").catch(() => "")).trim());
    // Only a process that still is a kube-apiserver (pids are reused).
    if (pid > 0 && isProcessAlive(pid)) {
      const exe = await readlink(`/proc/${pid}/exe`).catch(() => "");
      if (exe.endsWith("kube-apiserver")) process.kill(pid, "SIGKILL");
    }
    await rm(dir, { recursive: true, force: true });
  }
}

export interface PrivateApiserverOptions {
  /** Flags appended to the plane's (e.g. `--audit-policy-file=...`, `--audit-log-path=...`). */
  readonly extraArgs?: readonly string[];
}

/** Starts a second kube-apiserver of the local plane on a free port. Call `destroy()` when done. */
export async function startPrivateApiserver(
  options: PrivateApiserverOptions = {},
): Promise<PrivateApiserver> {
  await sweepOrphans();
  const plane = await planeApiserver();
  const port = await freePort();
  const args = [...withPort(plane.args, port), ...(options.extraArgs ?? [])];
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const shared = loadKubeConfig();
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: shared.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${port}` })),
    users: shared.users,
    contexts: shared.contexts,
    currentContext: shared.currentContext,
  });
  const kubeconfigPath = join(dir, "kubeconfig");
  await writeFile(kubeconfigPath, kc.exportConfig());
  const health = new k8s.Health(kc);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error("private apiserver was destroyed");
    if (child) return;
    const log = await open(join(dir, "apiserver.log"), "a");
    const proc = spawn(plane.bin, args, { stdio: ["ignore", log.fd, log.fd] });
    await log.close(); // the child holds its own copy
    child = proc;
    exited = new Promise((resolve) => {
      proc.once("exit", () => {
        if (child === proc) child = undefined;
        resolve();
      });
    });
    proc.once("error", () => {
      // A spawn failure surfaces as the readiness timeout below, with the log.
    });
    if (proc.pid) await writeFile(join(dir, "apiserver.pid"), String(proc.pid));
    try {
      await eventually(async () => ((await health.readyz({})) ? true : undefined), {
        timeoutMs: 120_000,
        intervalMs: 250,
        what: `the private kube-apiserver on port ${port} to be ready`,
      });
    } catch (err) {
      const tail = (await readFile(join(dir, "apiserver.log"), "utf8").catch(() => ""))
        .split("\n")
        .slice(-20)
        .join("\n");
      proc.kill("SIGKILL");
      await exited;
      throw new Error(`${String(err)}\n${tail}`);
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill("SIGTERM");
    proc.kill("SIGCONT"); // a frozen one could not shut down
    const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    await exited;
    clearTimeout(timer);
  };

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    if (child) {
      child.kill("SIGKILL");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (err) {
    await destroy();
    throw err;
  }
  const signal = (sig: NodeJS.Signals) => () => {
    if (!child) throw new Error("private apiserver is not running");
    child.kill(sig);
  };
  return {
    port,
    kc,
    kubeconfigPath,
    pid: () => child?.pid,
    stop,
    start,
    freeze: signal("SIGSTOP"),
    thaw: signal("SIGCONT"),
    destroy,
  };
}
