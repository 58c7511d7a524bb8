/**
 * The shard runner: a dev/test harness that plays the node where there is no kubelet (the local
 * control plane's kwok nodes only pretend to run pods). It watches the Deployments of one
 * EvaluatorShardSet and runs one evaluator process per Deployment with that Deployment's container
 * env, on this host:
 *
 * - a Deployment with replicas ≥ 1 gets exactly one process; replicas 0 or deletion stops it
 *   (SIGTERM, then SIGKILL after the pod's terminationGracePeriodSeconds, capped);
 * - a changed pod template (hash of `.spec.template`) replaces the process, like a rollout; any other
 *   change (replicas 1→2, status, labels) leaves it alone. With the RollingUpdate strategy the
 *   operator sets (maxSurge ≥ 1, maxUnavailable 0) the new process starts first and the old one is
 *   stopped once the new one answers /readyz (or after 60 s), so for a while two processes of one
 *   shard run, as two pods of one Deployment do during a rollout; otherwise the old one stops first;
 * - a process that exits unexpectedly is restarted with exponential backoff (a CrashLoopBackOff);
 * - METRICS_PORT is overridden with a free port per process (all of them share one host), and
 *   every change rewrites a Prometheus file_sd file listing the processes.
 *
 * One level-triggered loop converges the processes to the informer's cache; watch events, process
 * exits and backoff timers only trigger it. When the apiserver is unreachable the processes keep
 * running as they are (a kubelet does the same) while the watch restarts with backoff.
 *
 * Not product code: on a real cluster the kubelet runs the evaluator image instead.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import type pino from "pino";
import { statusCode } from "../../runtime/errors.ts";
import { startInformer } from "../../runtime/informer.ts";
import { buildFileSd, type ShardTarget, writeFileAtomic } from "./fileSd.ts";
import { resolveContainerEnv } from "./podEnv.ts";

/** Labels the operator puts on every shard Deployment (the contract in operator/src/api/types.ts). */
export const SHARD_SET_LABEL = "evaluator.iot.dev/shardset";
export const SHARD_LABEL = "evaluator.iot.dev/shard";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `node evaluator/bin/evaluator.ts run`, the evaluator as its image runs it. */
export function defaultEvaluatorCommand(): string[] {
  return [process.execPath, join(REPO_ROOT, "evaluator", "bin", "evaluator.ts"), "run"];
}

/** Host variables a process needs to run at all (PATH to find binaries, HOME, locale); nothing else leaks in. */
const HOST_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS"];

export interface ShardRunnerOptions {
  kc: k8s.KubeConfig;
  namespace: string;
  /** EvaluatorShardSet name: Deployments labelled `evaluator.iot.dev/shardset=<shardSet>` are run. */
  shardSet: string;
  /** Where the Prometheus file_sd JSON goes (written atomically after every change). */
  fileSdPath: string;
  log: pino.Logger;
  /** argv of one shard process; the Deployment's env is its environment. Default: `defaultEvaluatorCommand()`. */
  command?: readonly string[];
  /** Working directory of the processes (default: the repository root). */
  cwd?: string;
  /** Host environment the pod env is layered on (default: PATH, HOME, locale and Node settings of this process). */
  hostEnv?: Readonly<Record<string, string>>;
  /** Append each process's stdout/stderr to `<logDir>/<deployment>.log`; default: inherit this process's. */
  logDir?: string;
  /** Backoff after an unexpected exit: base × 2^failures, at most max (default 1 s … 30 s). */
  restartBackoffMs?: { base: number; max: number };
  /** A process that ran at least this long before exiting starts its backoff over (default 10 s). */
  stableAfterMs?: number;
  /** Upper bound on the SIGTERM→SIGKILL grace (the pod's terminationGracePeriodSeconds is used below it; default 30 s). */
  maxGraceMs?: number;
  /** Periodic re-convergence even without events (default 30 s). */
  resyncMs?: number;
}

/** A shard process as the runner sees it. */
export interface ShardProcessInfo {
  deployment: string;
  shard: string;
  /** Undefined while the process is waiting out a restart backoff. */
  pid: number | undefined;
  port: number | undefined;
  /** Name the process was given as HOSTNAME (like a pod name): `<deployment>-<template hash>-<random>`. */
  podName: string | undefined;
  templateHash: string;
  /** Unexpected exits since the process last ran stably. */
  failures: number;
}

export interface ShardRunner {
  /** Resolves once the first list of Deployments has been converged. */
  readonly synced: Promise<void>;
  processes(): ShardProcessInfo[];
  /** Stops watching, stops every process (graceful, then forced) and publishes an empty file_sd. */
  stop(): Promise<void>;
}

interface RunningProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly podName: string;
  readonly startedAt: number;
  readonly graceMs: number;
  readonly exited: Promise<void>;
  stopping: boolean;
}

interface Slot {
  readonly deployment: string;
  templateHash: string;
  shard: string;
  port: number | undefined;
  proc: RunningProcess | undefined;
  failures: number;
  /** Earliest time of the next start after an unexpected exit or a failed start. */
  notBefore: number;
}

type Deployment = k8s.V1Deployment;

/** JSON with sorted keys and without null/undefined members, so equal templates hash equally. */
function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== null && v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Hash of `.spec.template`: a process is replaced exactly when a rollout would replace its pod. */
export function podTemplateHash(d: Deployment): string {
  return createHash("sha256")
    .update(canonicalJson(d.spec?.template ?? {}))
    .digest("hex")
    .slice(0, 10);
}

/** The container that runs the evaluator: the one named `evaluator`, else the first. */
function evaluatorContainer(d: Deployment): k8s.V1Container | undefined {
  const containers = d.spec?.template.spec?.containers ?? [];
  return containers.find((c) => c.name === "evaluator") ?? containers[0];
}

function shardOf(d: Deployment): string {
  const label = d.metadata?.labels?.[SHARD_LABEL];
  if (label !== undefined) return label;
  return evaluatorContainer(d)?.env?.find((e) => e.name === "SHARD_INDEX")?.value ?? "";
}

/** A port on 127.0.0.1 the OS just handed out, or `preferred` when it is still free (stable scrape targets). */
async function pickPort(preferred?: number): Promise<number> {
  const listen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(undefined));
      srv.listen(port, "127.0.0.1", () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : undefined));
      });
    });
  if (preferred !== undefined && (await listen(preferred)) === preferred) return preferred;
  const port = await listen(0);
  if (port === undefined) throw new Error("no free port on 127.0.0.1");
  return port;
}

/** True when the Deployment rolls out by surging: maxSurge ≥ 1 (or a non-zero percentage) and maxUnavailable 0. */
export function surges(d: Deployment): boolean {
  const strategy = d.spec?.strategy;
  if (strategy?.type === "Recreate") return false;
  const zero = (v: number | string | undefined) => v === 0 || v === "0" || v === "0%";
  const surge = strategy?.rollingUpdate?.maxSurge ?? "25%";
  const unavailable = strategy?.rollingUpdate?.maxUnavailable ?? "25%";
  return !zero(surge) && zero(unavailable);
}

/** True when the evaluator on `port` answers /readyz with 200. */
function answersReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/readyz", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Resolves once the child runs, rejects when it could not be spawned (e.g. ENOENT). */
function spawned(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const onSpawn = () => {
      child.off("error", onError);
      resolve();
    };
    const onError = (err: Error) => {
      child.off("spawn", onSpawn);
      reject(err);
    };
    child.once("spawn", onSpawn);
    child.once("error", onError);
  });
}

/**
 * GET a path of the apiserver as plain JSON. The informer's list goes through here rather than the
 * typed client: the typed client turns timestamps into Dates and drops unknown fields while watch
 * events stay raw JSON, and template hashes must agree between the two.
 */
async function getJson<T>(kc: k8s.KubeConfig, path: string): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(cluster.server + path);
  const opts: https.RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
  await kc.applyToHTTPSOptions(opts);
  const transport = url.protocol === "https:" ? https : http;
  return new Promise<T>((resolve, reject) => {
    const req = transport.request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          reject(
            Object.assign(new Error(`GET ${path}: HTTP ${status}: ${body.slice(0, 300)}`), {
              statusCode: status,
            }),
          );
          return;
        }
        try {
          resolve(JSON.parse(body) as T);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** Starts the runner; it runs until `stop()`. */
export function startShardRunner(opts: ShardRunnerOptions): ShardRunner {
  const { kc, namespace, shardSet, fileSdPath, log } = opts;
  const command = opts.command ?? defaultEvaluatorCommand();
  if (command.length === 0 || !command[0]) throw new Error("the shard process command is empty");
  const cwd = opts.cwd ?? REPO_ROOT;
  const hostEnv =
    opts.hostEnv ??
    Object.fromEntries(HOST_ENV.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]!]])));
  const backoff = opts.restartBackoffMs ?? { base: 1000, max: 30_000 };
  const stableAfterMs = opts.stableAfterMs ?? 10_000;
  const maxGraceMs = opts.maxGraceMs ?? 30_000;
  const resyncMs = opts.resyncMs ?? 30_000;
  const labelSelector = `${SHARD_SET_LABEL}=${shardSet}`;
  const core = kc.makeApiClient(k8s.CoreV1Api);

  const slots = new Map<string, Slot>();
  /** Previous processes of a surge rollout, still running until their successor is ready. */
  const retiring = new Map<RunningProcess, Slot>();
  let stopped = false;
  let lastFileSd: string | undefined;
  let wakeTimer: NodeJS.Timeout | undefined;

  // --- the watch -------------------------------------------------------------------------------
  // The shared resilient informer: restarted with backoff on every error, synced after its first list.
  const listPath = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`;
  const informer = startInformer<Deployment>({
    kc,
    path: listPath,
    labelSelector,
    list: () =>
      getJson<k8s.KubernetesListObject<Deployment>>(
        kc,
        `${listPath}?labelSelector=${encodeURIComponent(labelSelector)}`,
      ),
    onChange: () => trigger(),
    // Events missed while the watch was down arrive as watch events or a relist; converge anyway.
    onRestart: () => trigger(),
    log,
    resource: "deployments",
  });
  let resolveSynced!: () => void;
  let rejectSynced!: (err: unknown) => void;
  const synced = new Promise<void>((resolve, reject) => {
    resolveSynced = resolve;
    rejectSynced = reject;
  });
  synced.catch(() => undefined); // the caller may never await it
  void informer.synced.then(async () => {
    if (stopped) return;
    await converge();
    resolveSynced();
  });
  const resync = setInterval(() => trigger(), resyncMs);

  // --- single-flight convergence ---------------------------------------------------------------
  // Every `await` is an interleaving point: one convergence at a time, re-run while events arrive.
  let running: Promise<void> | undefined;
  let dirty = false;
  function trigger(): void {
    if (stopped) return;
    dirty = true;
    running ??= (async () => {
      try {
        // Let a burst of events (an initial list delivers one 'add' per Deployment) land in the cache first.
        await new Promise((resolve) => setImmediate(resolve));
        while (dirty && !stopped) {
          dirty = false;
          await reconcile();
        }
      } finally {
        running = undefined;
      }
    })().catch((err: unknown) => {
      log.error({ err: String(err) }, "Shard runner convergence failed");
      scheduleWake(Date.now() + backoff.base);
    });
  }
  async function converge(): Promise<void> {
    trigger();
    while (running) await running;
  }

  function scheduleWake(at: number): void {
    if (stopped) return;
    if (wakeTimer) clearTimeout(wakeTimer);
    wakeTimer = setTimeout(
      () => {
        wakeTimer = undefined;
        trigger();
      },
      Math.max(0, at - Date.now()),
    );
  }

  async function reconcile(): Promise<void> {
    const wanted = new Map<string, Deployment>();
    const scaledToZero = new Set<string>();
    for (const d of informer.cache.list(namespace)) {
      const name = d.metadata?.name;
      if (!name || d.metadata?.labels?.[SHARD_SET_LABEL] !== shardSet) continue;
      // An unset replicas means 1 (the apiserver's default); a Deployment being deleted gets no new process.
      if ((d.spec?.replicas ?? 1) < 1 || d.metadata?.deletionTimestamp) scaledToZero.add(name);
      else wanted.set(name, d);
    }

    await Promise.all(
      [...slots.values()]
        .filter((s) => !wanted.has(s.deployment))
        .map(async (s) => {
          await stopProcess(s, scaledToZero.has(s.deployment) ? "scaled to 0" : "Deployment deleted");
          slots.delete(s.deployment);
        }),
    );
    await Promise.all([...wanted].map(([name, d]) => convergeSlot(name, d)));
    await publishFileSd();

    const waiting = [...slots.values()].filter((s) => !s.proc).map((s) => s.notBefore);
    if (waiting.length > 0) scheduleWake(Math.min(...waiting));
  }

  async function convergeSlot(name: string, d: Deployment): Promise<void> {
    const hash = podTemplateHash(d);
    let slot = slots.get(name);
    if (!slot) {
      slot = {
        deployment: name,
        templateHash: hash,
        shard: shardOf(d),
        port: undefined,
        proc: undefined,
        failures: 0,
        notBefore: 0,
      };
      slots.set(name, slot);
    }
    if (slot.templateHash !== hash) {
      // A new pod template is a rollout: replace the process, with a fresh backoff.
      const old = slot.proc;
      if (old && surges(d)) {
        // Surge: the old process goes on until the new one is ready.
        slot.proc = undefined;
        retiring.set(old, slot);
        slot.templateHash = hash;
        slot.failures = 0;
        slot.notBefore = 0;
        slot.shard = shardOf(d);
        await startProcess(slot, d);
        void retire(slot, old, slot.proc, slot.port);
        return;
      }
      await stopProcess(slot, "pod template changed");
      slot.templateHash = hash;
      slot.failures = 0;
      slot.notBefore = 0;
    }
    slot.shard = shardOf(d);
    if (!slot.proc && Date.now() >= slot.notBefore) await startProcess(slot, d);
  }

  function backoffMs(failures: number): number {
    return Math.min(backoff.max, backoff.base * 2 ** failures);
  }

  async function startProcess(slot: Slot, d: Deployment): Promise<void> {
    const container = evaluatorContainer(d);
    const podName = `${slot.deployment}-${slot.templateHash}-${randomBytes(3).toString("hex").slice(0, 5)}`;
    try {
      if (!container) throw new Error("the pod template has no container");
      const secrets = new Map<string, Promise<Record<string, string> | undefined>>();
      const podEnv = await resolveContainerEnv(container, {
        namespace,
        podName,
        nodeName: "shard-runner",
        podIP: "127.0.0.1",
        secret: (name) => {
          let s = secrets.get(name);
          if (!s) {
            s = readSecret(name);
            secrets.set(name, s);
          }
          return s;
        },
        configMap: (name) => readConfigMap(name),
      });
      const port = await pickPort(slot.port);
      const env: Record<string, string> = {
        ...hostEnv,
        HOSTNAME: podName,
        ...Object.fromEntries(podEnv),
        // Every process shares this host: the pod's port would collide.
        METRICS_PORT: String(port),
      };
      const child = spawnProcess(slot.deployment, env);
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      await spawned(child);
      child.on("error", (err) => {
        log.warn({ deployment: slot.deployment, pid: child.pid, err: String(err) }, "Shard process error");
      });
      const graceSeconds = d.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
      const proc: RunningProcess = {
        child,
        pid: child.pid!,
        podName,
        startedAt: Date.now(),
        graceMs: Math.min(maxGraceMs, graceSeconds * 1000),
        exited,
        stopping: false,
      };
      child.on("exit", (code, signal) => onExit(slot, proc, code, signal));
      const pid = proc.pid;
      slot.proc = proc;
      slot.port = port;
      log.info(
        {
          deployment: slot.deployment,
          shard: slot.shard,
          pid,
          port,
          pod: podName,
          templateHash: slot.templateHash,
        },
        "Started shard process",
      );
    } catch (err) {
      // Like CreateContainerConfigError (a missing Secret) or a missing binary: retry with backoff.
      const delayMs = backoffMs(slot.failures);
      slot.failures++;
      slot.notBefore = Date.now() + delayMs;
      log.warn(
        { deployment: slot.deployment, shard: slot.shard, err: String(err), delayMs },
        "Cannot start shard process",
      );
    }
  }

  function spawnProcess(deployment: string, env: Record<string, string>): ChildProcess {
    if (!opts.logDir) {
      return spawn(command[0]!, command.slice(1), { cwd, env, stdio: ["ignore", "inherit", "inherit"] });
    }
    mkdirSync(opts.logDir, { recursive: true });
    const fd = openSync(join(opts.logDir, `${deployment}.log`), "a");
    try {
      return spawn(command[0]!, command.slice(1), { cwd, env, stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd); // the child holds its own copy
    }
  }

  function onExit(
    slot: Slot,
    proc: RunningProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (proc.stopping || slot.proc !== proc) return; // stopProcess reports its own stops
    slot.proc = undefined;
    if (Date.now() - proc.startedAt >= stableAfterMs) slot.failures = 0;
    const delayMs = backoffMs(slot.failures);
    slot.failures++;
    slot.notBefore = Date.now() + delayMs;
    log.warn(
      { deployment: slot.deployment, shard: slot.shard, pid: proc.pid, code, signal, restartInMs: delayMs },
      "Shard process exited unexpectedly",
    );
    trigger();
  }

  /** Stops `old` (a surge rollout's previous process) once `next` answers /readyz, or after 60 s. */
  async function retire(
    slot: Slot,
    old: RunningProcess,
    next: RunningProcess | undefined,
    port: number | undefined,
  ): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (next && port !== undefined && !stopped && Date.now() < deadline && slot.proc === next) {
      if (await answersReady(port)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await stopRunning(slot, old, "pod template changed (rolled out)");
    retiring.delete(old);
  }

  async function stopProcess(slot: Slot, reason: string): Promise<void> {
    const proc = slot.proc;
    if (!proc) return;
    await stopRunning(slot, proc, reason);
    if (slot.proc === proc) slot.proc = undefined;
  }

  async function stopRunning(slot: Slot, proc: RunningProcess, reason: string): Promise<void> {
    proc.stopping = true;
    let forced = false;
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill("SIGTERM");
      const timer = setTimeout(() => {
        forced = true;
        proc.child.kill("SIGKILL");
      }, proc.graceMs);
      await proc.exited;
      clearTimeout(timer);
    }
    log.info(
      {
        deployment: slot.deployment,
        shard: slot.shard,
        pid: proc.pid,
        reason,
        forced,
        code: proc.child.exitCode,
        signal: proc.child.signalCode,
      },
      "Stopped shard process",
    );
  }

  async function readSecret(name: string): Promise<Record<string, string> | undefined> {
    try {
      const secret = await core.readNamespacedSecret({ name, namespace });
      return Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
      );
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  async function readConfigMap(name: string): Promise<Record<string, string> | undefined> {
    try {
      const cm = await core.readNamespacedConfigMap({ name, namespace });
      return { ...cm.data };
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  async function publishFileSd(): Promise<void> {
    const targets: ShardTarget[] = [...slots.values()].flatMap((s) =>
      s.port === undefined
        ? []
        : [{ namespace, shardSet, shard: s.shard, deployment: s.deployment, port: s.port }],
    );
    const content = `${JSON.stringify(buildFileSd(targets), null, 2)}\n`;
    if (content === lastFileSd) return;
    await writeFileAtomic(fileSdPath, content);
    lastFileSd = content;
    log.info({ path: fileSdPath, targets: targets.length }, "Wrote file_sd");
  }

  return {
    synced,
    processes() {
      return [...slots.values()]
        .sort((a, b) => a.deployment.localeCompare(b.deployment))
        .map((s) => ({
          deployment: s.deployment,
          shard: s.shard,
          pid: s.proc?.pid,
          port: s.port,
          podName: s.proc?.podName,
          templateHash: s.templateHash,
          failures: s.failures,
        }));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      rejectSynced(new Error("the shard runner was stopped"));
      clearInterval(resync);
      if (wakeTimer) clearTimeout(wakeTimer);
      await informer.stop();
      while (running) await running.catch(() => undefined);
      await Promise.all([
        ...[...slots.values()].map((s) => stopProcess(s, "shard runner stopped")),
        ...[...retiring].map(([p, slot]) => stopRunning(slot, p, "shard runner stopped")),
      ]);
      slots.clear();
      await publishFileSd();
    },
  };
}
