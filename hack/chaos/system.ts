/**
 * The whole system of a chaos run, brought up on this host: private PostgreSQL and Valkey instances
 * (the run stops and starts them), a private Prometheus, the operator (restarted like a Deployment
 * would after it is killed), and the shard runner playing the kubelet for the evaluator
 * Deployments of one EvaluatorShardSet in a namespace of the local control plane.
 */
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import pg from "pg";
import type pino from "pino";
import type { EvaluatorShardSet } from "../../operator/src/api/types.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestNamespace, installCrd, kubectl, loadKubeConfig } from "../../test/support/cluster.ts";
import { CLOCK_SKEW_DIR_ENV } from "../../test/support/evaluatorFaults.ts";
import { type OperatorProcess, startOperator } from "../../test/support/operator.ts";
import { freePort } from "../../test/support/ports.ts";
import {
  type PrivatePostgres,
  type PrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
} from "../../test/support/privateServices.ts";
import { type RunningPrometheus, startPrometheus } from "../prometheus.ts";
import { type ShardRunner, startShardRunner } from "../shard-runner/shardRunner.ts";
import type { Scenario } from "./scenario.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const SET_NAME = "chaos";

/** Queries with windows short enough for a run of minutes (the defaults look back further). */
const QUERIES = {
  queueDepthQuery:
    'max by (shard) (max_over_time(evaluator_queue_depth_held{namespace="{{namespace}}",shardset="{{name}}"}[10s]))',
  tickLatencyQuery:
    'histogram_quantile(0.95, sum by (shard, le) (rate(evaluator_tick_duration_seconds_bucket{namespace="{{namespace}}",shardset="{{name}}"}[30s])))',
};

/** A process whose resource use the run reports. */
export interface WatchedProcess {
  readonly pid: number;
  readonly name: string;
  readonly kind: "operator" | "evaluator" | "postgres" | "valkey" | "prometheus";
}

export interface ChaosSystem {
  readonly namespace: string;
  /** `namespace/name`: the shard set's key in the database. */
  readonly shardSet: string;
  readonly postgres: PrivatePostgres;
  readonly valkey: PrivateRedis;
  /** A pool on the private database (the run's own reads and telemetry writes). */
  readonly pool: pg.Pool;
  readonly runner: ShardRunner;
  /** Where per-shard clock skews are written (`shard-<n>`: ms ahead). */
  readonly skewDir: string;
  readonly dir: string;
  prometheusRunning(): boolean;
  stopPrometheus(): Promise<void>;
  startPrometheus(): Promise<void>;
  /** Kills the running operator with `signal`; a new one starts 2 s later (as its Deployment would). */
  killOperator(signal: NodeJS.Signals): Promise<void>;
  /** Operator exits nobody asked for (a crash is a finding). */
  readonly operatorCrashes: string[];
  status(): Promise<NonNullable<EvaluatorShardSet["status"]>>;
  /** Every process started so far (pids of processes that have exited included). */
  processes(): WatchedProcess[];
  teardown(): Promise<void>;
}

function shardSetManifest(s: Scenario, prometheusUrl: string): string {
  return `apiVersion: evaluator.iot.dev/v1alpha1
kind: EvaluatorShardSet
metadata: { name: ${SET_NAME} }
spec:
  shards: ${s.initialShards}
  autoscaling:
    mode: "Off"
    minShards: 1
    maxShards: ${s.maxShards}
    targets: { queueDepthPerShard: 20, tickLatencySeconds: ${Math.max(1, s.tickSeconds * 0.5)} }
    minReshardIntervalSeconds: ${Math.max(15, s.tickSeconds * 3)}
    scaleUp: { stabilizationWindowSeconds: 0, maxShardsChange: 2, periodSeconds: ${Math.max(10, s.tickSeconds * 2)} }
    scaleDown: { stabilizationWindowSeconds: ${Math.max(20, s.tickSeconds * 4)}, maxShardsChange: 1, periodSeconds: ${Math.max(10, s.tickSeconds * 2)} }
    prometheus:
      url: "${prometheusUrl}"
      queueDepthQuery: '${QUERIES.queueDepthQuery}'
      tickLatencyQuery: '${QUERIES.tickLatencyQuery}'
  evaluator:
    image: registry.invalid/evaluator:chaos
    tickIntervalSeconds: ${s.tickSeconds}
    tenantBudgetMs: ${Math.min(5000, Math.max(500, s.tickSeconds * 200))}
    databaseSecretRef: { name: evaluator-db }
    valkeySecretRef: { name: evaluator-valkey }
  database: { secretRef: { name: operator-db } }
`;
}

/** Brings the system up and waits until the set runs `scenario.initialShards` ready shards. */
export async function startChaosSystem(scenario: Scenario, log: pino.Logger): Promise<ChaosSystem> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const teardown = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const dir = await mkdtemp(join(tmpdir(), "eo-chaos-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const skewDir = join(dir, "skew");
    await mkdir(skewDir);

    const postgres = await startPrivatePostgres();
    cleanups.push(() => postgres.destroy());
    const valkey = await startPrivateRedis();
    cleanups.push(() => valkey.destroy());
    // Telemetry is written with synchronous commit, as a durable ingest side writes it: a reading
    // PostgreSQL acknowledged survives its immediate shutdown (the instance runs with it off, as
    // the evaluator's commits do by default).
    const pool = new pg.Pool({
      connectionString: postgres.url,
      max: 6,
      connectionTimeoutMillis: 3000,
      options: "-c synchronous_commit=on",
    });
    pool.on("error", () => undefined);
    cleanups.push(() => pool.end());
    await migrateUp({ db: pool });
    log.info({ postgres: postgres.port, valkey: valkey.port }, "chaos_services_started");

    const kc = loadKubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await installCrd();
    const ns = await createTestNamespace(kc, "chaos");
    cleanups.push(() => ns.remove());
    for (const [name, url] of [
      ["operator-db", postgres.url],
      ["evaluator-db", postgres.url],
      ["evaluator-valkey", valkey.url],
    ] as const) {
      await core.createNamespacedSecret({
        namespace: ns.name,
        body: { metadata: { name }, stringData: { url } },
      });
    }

    const fileSd = join(dir, "file_sd.json");
    const operatorSd = join(dir, "operator_sd.json");
    await writeFile(operatorSd, "[]\n");
    const promPort = await freePort();
    let prometheus: RunningPrometheus | undefined;
    const startProm = async () => {
      prometheus = await startPrometheus({
        fileSdFiles: [fileSd, operatorSd],
        scrapeIntervalSeconds: 2,
        port: promPort,
        dir: join(dir, "prometheus"),
      });
      watched.push({ pid: prometheus.pid, name: `prometheus (${prometheus.pid})`, kind: "prometheus" });
    };
    const stopProm = async () => {
      const p = prometheus;
      prometheus = undefined;
      await p?.stop();
    };
    const watched: WatchedProcess[] = [];
    await startProm();
    cleanups.push(stopProm);

    const hostEnv: Record<string, string> = { [CLOCK_SKEW_DIR_ENV]: skewDir };
    for (const k of ["PATH", "HOME", "LANG", "TZ", "TMPDIR"]) {
      const v = process.env[k];
      if (v !== undefined) hostEnv[k] = v;
    }
    const runner = startShardRunner({
      kc,
      namespace: ns.name,
      shardSet: SET_NAME,
      fileSdPath: fileSd,
      log: log.child({ component: "shard-runner" }, { level: "warn" }),
      command: [process.execPath, join(REPO, "test", "support", "evaluatorWithFaults.ts"), "run"],
      logDir: join(dir, "shards"),
      hostEnv,
      restartBackoffMs: { base: 500, max: 5000 },
      maxGraceMs: 15_000,
      resyncMs: 5000,
    });
    cleanups.push(() => runner.stop());

    await kubectl(
      ["apply", "-n", ns.name, "-f", "-"],
      shardSetManifest(scenario, `http://127.0.0.1:${promPort}`),
    );

    // The operator, restarted 2 s after each exit (asked for or not), as its Deployment would.
    let operator: OperatorProcess | undefined;
    let stopping = false;
    let expectedExit = false;
    const operatorCrashes: string[] = [];
    const launch = async (): Promise<void> => {
      const op = startOperator(
        ["--namespaces", ns.name, "--no-leader-elect", "--resync-period", "2s", "--autoscale-interval", "2s"],
        { LOG_LEVEL: "info" },
      );
      operator = op;
      if (op.child.pid)
        watched.push({ pid: op.child.pid, name: `operator (${op.child.pid})`, kind: "operator" });
      op.child.once("exit", (code, signal) => {
        if (stopping) return;
        if (!expectedExit)
          operatorCrashes.push(`operator exited on its own (code ${code}, signal ${signal})`);
        expectedExit = false;
        setTimeout(() => {
          if (!stopping) void launch();
        }, 2000);
      });
      const ready = await op.waitForLog((l) => l["msg"] === "Serving metrics and probes", 60_000);
      await writeFile(
        `${operatorSd}.tmp`,
        `${JSON.stringify([{ targets: [`127.0.0.1:${ready["metricsPort"]}`], labels: { job: "evaluator-operator" } }])}\n`,
      );
      await rename(`${operatorSd}.tmp`, operatorSd);
    };
    await launch();
    cleanups.push(async () => {
      stopping = true;
      await operator?.kill("SIGKILL");
    });

    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const status = async () => {
      const obj = (await custom.getNamespacedCustomObject({
        group: "evaluator.iot.dev",
        version: "v1alpha1",
        namespace: ns.name,
        plural: "evaluatorshardsets",
        name: SET_NAME,
      })) as EvaluatorShardSet;
      return obj.status ?? {};
    };

    const system: ChaosSystem = {
      namespace: ns.name,
      shardSet: `${ns.name}/${SET_NAME}`,
      postgres,
      valkey,
      pool,
      runner,
      skewDir,
      dir,
      prometheusRunning: () => prometheus !== undefined,
      stopPrometheus: stopProm,
      startPrometheus: startProm,
      async killOperator(signal) {
        const op = operator;
        if (!op) return;
        expectedExit = true;
        await op.kill(signal);
      },
      operatorCrashes,
      status,
      processes() {
        const out = [...watched];
        const pgPid = postgres.pid();
        if (pgPid) out.push({ pid: pgPid, name: `postgres (${pgPid})`, kind: "postgres" });
        const vPid = valkey.pid();
        if (vPid) out.push({ pid: vPid, name: `valkey (${vPid})`, kind: "valkey" });
        for (const p of runner.processes()) {
          if (p.pid)
            out.push({ pid: p.pid, name: `evaluator shard-${p.shard} (${p.pid})`, kind: "evaluator" });
        }
        return out;
      },
      teardown,
    };
    return system;
  } catch (err) {
    await teardown();
    throw err;
  }
}
