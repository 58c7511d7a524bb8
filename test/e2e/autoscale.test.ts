/**
 * The autoscaler end to end, every part real: the operator reads a real Prometheus, which scrapes
 * real evaluator processes (the shard runner runs one per shard Deployment of the local plane)
 * evaluating tenants from a real PostgreSQL with their state in Valkey.
 *
 * Load is made the way a real shard falls behind: some tenants are slow (the evaluator's test entry
 * point delays their evaluation past the tenant budget, so every tick leaves them undone) and show
 * up in `evaluator_queue_depth_held`. Removing load is deleting those tenants. The windows (query
 * ranges, stabilization, periods) are shortened so a run takes minutes; the Recommend test keeps the
 * default queries, so they are proven against a real Prometheus too.
 *
 * Every observation is polled from the apiserver, the database, Prometheus or the shard processes'
 * logs; nothing waits a fixed time to let something happen. The `holdsFor` checks watch a property
 * for a bounded time (a count that must not change) and fail on the first violation; the only timed
 * step is the oscillating load's own period.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RunningPrometheus, startPrometheus } from "../../hack/prometheus.ts";
import type { Condition, EvaluatorShardSet } from "../../operator/src/api/types.ts";
import { shardDeploymentName } from "../../operator/src/desired/names.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import {
  createTestNamespace,
  eventually,
  installCrd,
  KUBECONFIG_PATH,
  kubectl,
  loadKubeConfig,
} from "../support/cluster.ts";
import { checkDashboardQueries, loadDashboard } from "../support/dashboard.ts";
import { insertTenants, type RuleSeed } from "../support/evaluatorFixture.ts";
import { msg, type OperatorProcess, startOperator } from "../support/operator.ts";
import { freePort } from "../support/ports.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { getShardSet } from "../support/shardSets.ts";
import { connectValkey, deleteTenantKeys, uniqueTenantId, VALKEY_URL } from "../support/valkey.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const SET = "alerts";
const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const core = kc.makeApiClient(k8s.CoreV1Api);

/** Each slow tenant's evaluation sleeps this long: cut at the budget, then still running for two ticks. */
const SLOW_MS = 12_000;
const TICK_SECONDS = 5;
const BUDGET_MS = 200;
const RULE: RuleSeed = { id: "hot", rule_type: "threshold", operator: ">", threshold: 1e9 };

/** The test's queries: the defaults with windows short enough for a test (see the README's PromQL). */
const FAST_QUERIES = {
  queueDepthQuery:
    'max by (shard) (max_over_time(evaluator_queue_depth_held{namespace="{{namespace}}",shardset="{{name}}"}[8s]))',
  tickLatencyQuery:
    'histogram_quantile(0.95, sum by (shard, le) (rate(evaluator_tick_duration_seconds_bucket{namespace="{{namespace}}",shardset="{{name}}"}[20s])))',
};

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
beforeAll(async () => {
  await installCrd();
});

interface World {
  readonly ns: string;
  readonly db: TestDatabase;
  /** "namespace/name", the shard set's key in the database. */
  readonly shardSet: string;
  /** Prefix of this world's tenant ids; slow tenants are `<prefix>-slow-<n>`. */
  readonly prefix: string;
  /** When the world was made (ms): the start of the Prometheus data of this test. */
  readonly startedAt: number;
  readonly prometheus: () => RunningPrometheus | undefined;
  readonly operator: OperatorProcess;
  /** Folder of the shard processes' logs (`<deployment>.log`). */
  readonly shardLogs: string;
  stopPrometheus(): Promise<void>;
  startPrometheus(): Promise<void>;
  /** Seeds `count` tenants (slow or not); resolves with their ids. */
  addTenants(kind: "slow" | "steady", count: number, shardIndex?: number): Promise<string[]>;
  removeTenants(ids: readonly string[]): Promise<void>;
  status(): Promise<NonNullable<EvaluatorShardSet["status"]>>;
  deployments(): Promise<number>;
}

/**
 * A namespace with the Secrets, a migrated database, a private Prometheus (1 s scrapes) on the
 * shard runner's file_sd and on the operator's /metrics, the shard runner (through the evaluator's
 * test entry point, which honours EVALUATOR_TEST_DELAY_TENANT), the shard set applied from `spec`,
 * and the operator reconciling every 2 s.
 */
async function world(label: string, spec: string): Promise<World> {
  const startedAt = Date.now();
  const ns = await createTestNamespace(kc, label);
  cleanups.push(() => ns.remove());
  const db = await createTestDatabase(label);
  cleanups.push(() => db.drop());
  await migrateUp({ db: db.pool });
  const shardSet = `${ns.name}/${SET}`;
  const prefix = uniqueTenantId().slice(0, 8);
  const seeded: string[] = [];
  cleanups.push(async () => {
    const valkey = connectValkey();
    try {
      for (const id of seeded) await deleteTenantKeys(valkey, id);
    } finally {
      valkey.disconnect();
    }
  });

  for (const [name, url] of [
    ["operator-db", db.url],
    ["evaluator-db", db.url],
    ["evaluator-valkey", VALKEY_URL],
  ] as const) {
    await core.createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name }, stringData: { url } },
    });
  }

  const dir = await mkdtemp(join(tmpdir(), `eo-autoscale-${label}-`));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const fileSd = join(dir, "file_sd.json");
  // The operator's target, written once it listens (no target until then).
  const operatorSd = join(dir, "operator_sd.json");
  await writeFile(operatorSd, "[]\n");
  const shardLogs = join(dir, "shards");
  const promDir = join(dir, "prometheus");
  const promPort = await freePort();
  let prometheus: RunningPrometheus | undefined;
  const startProm = async () => {
    prometheus = await startPrometheus({
      fileSdFiles: [fileSd, operatorSd],
      scrapeIntervalSeconds: 1,
      port: promPort,
      dir: promDir,
    });
  };
  const stopProm = async () => {
    await prometheus?.stop();
    prometheus = undefined;
  };
  await startProm();
  cleanups.push(stopProm);

  const runner = spawnShardRunner(ns.name, fileSd, shardLogs);
  cleanups.push(() => stopChild(runner));

  await kubectl(
    ["apply", "-n", ns.name, "-f", "-"],
    shardSetYaml(spec.replaceAll("{{prometheus}}", `http://127.0.0.1:${promPort}`), `${prefix}-slow-*`),
  );

  const operator = startOperator([
    "--namespaces",
    ns.name,
    "--no-leader-elect",
    "--drain-slack",
    "0s",
    "--resync-period",
    "2s",
    "--autoscale-interval",
    "2s",
  ]);
  cleanups.push(() => operator.kill("SIGKILL"));
  // No namespace label on the target: the operator's per-set series keep their own (as the chart's
  // ServiceMonitor, with honorLabels, keeps them on a cluster).
  const { metricsPort } = await operator.waitForLog(msg("Serving metrics and probes"));
  await writeFile(
    `${operatorSd}.tmp`,
    `${JSON.stringify([{ targets: [`127.0.0.1:${metricsPort}`], labels: { job: "evaluator-operator" } }])}\n`,
  );
  await rename(`${operatorSd}.tmp`, operatorSd);

  let serial = 0;
  return {
    ns: ns.name,
    db,
    shardSet,
    prefix,
    startedAt,
    prometheus: () => prometheus,
    operator,
    shardLogs,
    stopPrometheus: stopProm,
    startPrometheus: startProm,
    async addTenants(kind, count, shardIndex) {
      const ids = Array.from({ length: count }, () => `${prefix}-${kind}-${serial++}`);
      seeded.push(...ids);
      await insertTenants(db.pool, shardSet, ids, {
        rules: [RULE],
        ...(shardIndex === undefined ? {} : { shardIndex }),
      });
      if (shardIndex === undefined) {
        // New tenants are the operator's to place (shard_index NULL until its next commit).
        await db.pool.query("UPDATE tenants SET shard_index = NULL WHERE id = ANY($1)", [ids]);
      }
      return ids;
    },
    async removeTenants(ids) {
      await db.pool.query("DELETE FROM tenants WHERE id = ANY($1)", [ids]);
    },
    async status() {
      return (await getShardSet(kc, ns.name, SET)).status ?? {};
    },
    async deployments() {
      const list = await apps.listNamespacedDeployment({
        namespace: ns.name,
        labelSelector: `evaluator.iot.dev/shardset=${SET}`,
      });
      return list.items.length;
    },
  };
}

function shardSetYaml(spec: string, slowPattern: string): string {
  return `apiVersion: evaluator.iot.dev/v1alpha1
kind: EvaluatorShardSet
metadata: { name: ${SET} }
spec:
${spec}  evaluator:
    image: registry.invalid/evaluator:1.0.0
    tickIntervalSeconds: ${TICK_SECONDS}
    tenantBudgetMs: ${BUDGET_MS}
    databaseSecretRef: { name: evaluator-db }
    valkeySecretRef: { name: evaluator-valkey }
    extraEnv:
      - { name: EVALUATOR_TEST_DELAY_TENANT, value: "${slowPattern}:${SLOW_MS}" }
  database: { secretRef: { name: operator-db } }
`;
}

function spawnShardRunner(namespace: string, fileSd: string, logDir: string): ChildProcess {
  const command = [process.execPath, join(REPO, "test", "support", "evaluatorWithFaults.ts"), "run"];
  return spawn(
    process.execPath,
    [
      join(REPO, "hack", "shard-runner", "main.ts"),
      "--kubeconfig",
      KUBECONFIG_PATH,
      "--namespace",
      namespace,
      "--shardset",
      SET,
      "--file-sd",
      fileSd,
      "--log-dir",
      logDir,
      "--evaluator-cmd",
      JSON.stringify(command),
    ],
    { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] },
  );
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

function condition(status: EvaluatorShardSet["status"], type: string): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** Events of the shard set with `reason`, oldest first. */
async function events(ns: string, reason: string): Promise<k8s.CoreV1Event[]> {
  const list = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${SET},reason=${reason}`,
  });
  return list.items;
}

/** Waits until the set runs `shards` shards, all ready, nothing in flight; resolves with that status. */
async function settledAt(w: World, shards: number, timeoutMs = 150_000) {
  return eventually(
    async () => {
      const s = await w.status();
      return s.shards === shards && s.readyShards === shards && !s.reshard && s.desiredShards === shards
        ? s
        : undefined;
    },
    { timeoutMs, intervalMs: 500, what: `${shards} shards settled` },
  );
}

/** Watches `probe` for `ms`; fails on the first sample that breaks `expected`. */
async function holdsFor<T>(ms: number, probe: () => Promise<T>, check: (v: T) => void): Promise<T[]> {
  const seen: T[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await probe();
    seen.push(v);
    check(v);
    await new Promise((r) => setTimeout(r, 500));
  }
  return seen;
}

/**
 * The first `tick_done` of a shard process that had tenants to evaluate: its time (ms). Evaluated
 * or cut at the budget alike: the planner may give a new shard only slow tenants, which the budget
 * cuts every tick.
 */
function firstEvaluatingTick(w: World, shard: number): number | undefined {
  const file = join(w.shardLogs, `${shardDeploymentName(SET, shard)}.log`);
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes('"tick_done"')) continue;
    try {
      const l = JSON.parse(line) as { msg?: string; time?: number; tenants?: number };
      if (l.msg === "tick_done" && (l.tenants ?? 0) > 0 && typeof l.time === "number") return l.time;
    } catch {
      // a partial last line
    }
  }
  return undefined;
}

/** Prometheus range query → [time ms, value][] of the one series it returns (empty if none). */
async function rangeOf(w: World, query: string, fromMs: number, toMs: number): Promise<[number, number][]> {
  const url = new URL("/api/v1/query_range", w.prometheus()!.url);
  url.searchParams.set("query", query);
  url.searchParams.set("start", String(fromMs / 1000));
  url.searchParams.set("end", String(toMs / 1000));
  url.searchParams.set("step", "1");
  const body = (await (await fetch(url)).json()) as {
    data: { result: { values: [number, string][] }[] };
  };
  return (body.data.result[0]?.values ?? []).map(([t, v]) => [t * 1000, Number(v)]);
}

/** The value under a column of `kubectl get ess` (by header name). */
async function column(ns: string, header: string): Promise<string | undefined> {
  const out = (await kubectl(["get", "ess", SET, "-n", ns])).trim().split("\n");
  const heads = out[0]!.split(/\s+/);
  const row = out[1]!.split(/\s+/);
  return heads.length === row.length ? row[heads.indexOf(header)] : undefined;
}

const NUMBER = /^\d+(\.\d+)?$/;

describe("autoscaler (real operator, Prometheus, evaluators, PostgreSQL, Valkey)", () => {
  it("Auto: grows through a real reshard when the backlog crosses its target, holds through a Prometheus outage, and shrinks only after the stabilization window, never below the hysteresis floor", {
    timeout: 420_000,
  }, async () => {
    const w = await world(
      "auto",
      `  autoscaling:
    mode: Auto
    minShards: 1
    maxShards: 3
    targets: { queueDepthPerShard: 2, tickLatencySeconds: 4 }
    minReshardIntervalSeconds: 15
    scaleUp: { stabilizationWindowSeconds: 0, maxShardsChange: 4, periodSeconds: 10 }
    scaleDown: { stabilizationWindowSeconds: 20, maxShardsChange: 2, periodSeconds: 10 }
    prometheus:
      url: "{{prometheus}}"
      queueDepthQuery: '${FAST_QUERIES.queueDepthQuery}'
      tickLatencyQuery: '${FAST_QUERIES.tickLatencyQuery}'
`,
    );
    await w.addTenants("steady", 6);
    // One shard keeps up with the steady tenants: the set settles at its minimum.
    await settledAt(w, 1);
    await eventually(
      async () => (condition(await w.status(), "MetricsAvailable")?.status === "True" ? true : undefined),
      { timeoutMs: 60_000, what: "MetricsAvailable=True" },
    );

    // Load: 8 slow tenants; 8 undone per tick against 2 per shard asks for 4, clamped to the max 3.
    const loadAt = Date.now();
    const slow = await w.addTenants("slow", 8);
    await settledAt(w, 3);
    expect(await w.deployments()).toBe(3);
    // Once the new shards report (until then the readings are WarmingUp and hold the count), the
    // 8 undone evaluations still ask for 4: held at the maximum.
    const grown = await eventually(
      async () => {
        const s = await w.status();
        return condition(s, "MetricsAvailable")?.reason === "MetricsOk" ? s : undefined;
      },
      { timeoutMs: 60_000, what: "every shard reporting" },
    );
    expect(grown.shards).toBe(3);
    expect(grown.autoscaler?.limits).toContain("AtMaximum");
    expect(condition(grown, "ScalingLimited")).toMatchObject({ status: "True", reason: "AtMaximum" });
    expect(grown.recommendedShards).toBe(3);
    // The Event of the change carries the numbers that drove it.
    const up = (await events(w.ns, "ScalingUp")).map((e) => e.message ?? "");
    expect(up.find((m) => m.startsWith("Resharding from 1 to 3 shards"))).toMatch(/queue depth/i);

    // The time from the signal crossing its target to a new shard evaluating its tenants.
    const newShardEvaluating = await eventually(
      async () => {
        const times = [1, 2].map((i) => firstEvaluatingTick(w, i));
        return times.every((t) => t !== undefined) ? Math.min(...(times as number[])) : undefined;
      },
      { timeoutMs: 60_000, what: "the new shards' first evaluating tick" },
    );
    const crossing = (
      await rangeOf(
        w,
        `sum(evaluator_queue_depth_held{namespace="${w.ns}",shardset="${SET}"})`,
        loadAt,
        Date.now(),
      )
    ).find(([, v]) => v > 2 * 1.1);
    expect(crossing, "Prometheus saw the queue depth cross 2 per shard").toBeDefined();
    const signalToShardMs = newShardEvaluating - crossing![0];
    expect(signalToShardMs).toBeGreaterThan(0);
    console.log(
      `[autoscale] signal crossed its target at +${Math.round((crossing![0] - loadAt) / 1000)} s after the load; ` +
        `a new shard evaluated its tenants ${(signalToShardMs / 1000).toFixed(1)} s after the crossing`,
    );

    // `kubectl get ess` shows the readings.
    await eventually(async () => ((await column(w.ns, "QUEUE"))?.match(NUMBER) ? true : undefined), {
      timeoutMs: 30_000,
      what: "a number in the Queue column",
    });
    expect(await column(w.ns, "TICK-P95")).toMatch(NUMBER);

    // Prometheus stops: the count holds, MetricsAvailable=False with one Event.
    await w.stopPrometheus();
    const blind = await eventually(
      async () => {
        const s = await w.status();
        return condition(s, "MetricsAvailable")?.status === "False" ? s : undefined;
      },
      { timeoutMs: 30_000, what: "MetricsAvailable=False" },
    );
    expect(condition(blind, "MetricsAvailable")?.message).toMatch(/Unreachable/);
    // Load is removed while the autoscaler is blind: it must not act on what it cannot see.
    await w.removeTenants(slow.slice(3));
    await holdsFor(
      8_000,
      () => w.status(),
      (s) => expect(s.desiredShards).toBe(3),
    );
    expect(await events(w.ns, "MetricsUnavailable")).toHaveLength(1);

    // Prometheus back: it recovers by itself, and no sudden drop — the stabilization window
    // (20 s) restarts from the recovery.
    await w.startPrometheus();
    const recoveredAt = await eventually(
      async () =>
        condition(await w.status(), "MetricsAvailable")?.status === "True" ? Date.now() : undefined,
      { timeoutMs: 60_000, what: "MetricsAvailable=True again" },
    );
    expect(await events(w.ns, "MetricsAvailable")).toHaveLength(1);
    await holdsFor(
      15_000,
      () => w.status(),
      (s) => expect(s.desiredShards).toBe(3),
    );

    // 3 slow tenants left ask for ceil(3 / 2) = 2 shards; at 1 shard they would be ×1.5 of the
    // target, so the hysteresis keeps 2.
    const shrunk = await settledAt(w, 2, 120_000);
    expect(Date.parse(shrunk.lastScaleTime!)).toBeGreaterThan(recoveredAt + 15_000);
    expect(await w.deployments()).toBe(2);
    await holdsFor(
      15_000,
      () => w.status(),
      (s) => expect(s.desiredShards).toBe(2),
    );

    // The Grafana dashboard, on this run's data: every panel's query (the set's variables filled
    // in, $__rate_interval at 1m), its reshard annotation and its variables return data from the
    // Prometheus that scraped these evaluators and this operator. Failures name the panel.
    const failures = await checkDashboardQueries(loadDashboard(), w.prometheus()!.url, {
      namespace: w.ns,
      shardset: SET,
      fromMs: w.startedAt,
      toMs: Date.now(),
    });
    expect(failures, failures.join("\n")).toEqual([]);
  });

  it("Recommend: the default queries drive status.recommendedShards and a RecommendedShards Event while the Deployments stay at spec.shards; Off then obeys kubectl scale", {
    timeout: 300_000,
  }, async () => {
    const w = await world(
      "recommend",
      `  shards: 1
  autoscaling:
    mode: Recommend
    minShards: 1
    maxShards: 4
    targets: { queueDepthPerShard: 2, tickLatencySeconds: 4 }
    prometheus: { url: "{{prometheus}}" }
`,
    );
    await w.addTenants("steady", 4);
    await settledAt(w, 1);
    await w.addTenants("slow", 6);
    // 6 undone per tick against 2 per shard: recommend 3; spec.shards (1) still rules.
    const recommending = await eventually(
      async () => {
        const s = await w.status();
        return s.recommendedShards === 3 ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: "recommendedShards 3" },
    );
    expect(recommending.metrics?.queueDepth).toBeGreaterThanOrEqual(5);
    expect(recommending.shards).toBe(1);
    expect(await w.deployments()).toBe(1);
    const recommended = await eventually(
      async () => {
        const list = await events(w.ns, "RecommendedShards");
        return list.find((e) => /Recommending 3 shards/.test(e.message ?? ""));
      },
      { timeoutMs: 30_000, what: "a RecommendedShards Event for 3" },
    );
    expect(recommended.message).toMatch(/spec\.shards is 1/);
    await holdsFor(
      6_000,
      async () => [(await w.status()).shards, await w.deployments()],
      (v) => expect(v).toEqual([1, 1]),
    );

    // Off: the autoscaler stops (its status and conditions go), and kubectl scale is obeyed.
    await kubectl([
      "patch",
      "ess",
      SET,
      "-n",
      w.ns,
      "--type=merge",
      "-p",
      '{"spec":{"autoscaling":{"mode":"Off"}}}',
    ]);
    await eventually(
      async () => {
        const s = await w.status();
        return s.recommendedShards === undefined &&
          condition(s, "MetricsAvailable") === undefined &&
          condition(s, "ScalingLimited") === undefined
          ? true
          : undefined;
      },
      { timeoutMs: 30_000, what: "the autoscaler's status gone in mode Off" },
    );
    await kubectl(["scale", "ess", SET, "-n", w.ns, "--replicas=2"]);
    await settledAt(w, 2);
    expect(await w.deployments()).toBe(2);
  });

  it("an oscillating load around the target causes no reshard flapping", { timeout: 300_000 }, async () => {
    const w = await world(
      "oscillate",
      `  autoscaling:
    mode: Auto
    minShards: 2
    maxShards: 4
    targets: { queueDepthPerShard: 2, tickLatencySeconds: 4 }
    minReshardIntervalSeconds: 15
    scaleUp: { stabilizationWindowSeconds: 0, maxShardsChange: 4, periodSeconds: 10 }
    scaleDown: { stabilizationWindowSeconds: 30, maxShardsChange: 2, periodSeconds: 10 }
    prometheus:
      url: "{{prometheus}}"
      queueDepthQuery: '${FAST_QUERIES.queueDepthQuery}'
      tickLatencyQuery: '${FAST_QUERIES.tickLatencyQuery}'
`,
    );
    await w.addTenants("slow", 3);
    await settledAt(w, 2);
    await eventually(
      async () => (condition(await w.status(), "MetricsAvailable")?.status === "True" ? true : undefined),
      { timeoutMs: 60_000, what: "MetricsAvailable=True" },
    );

    // The undone evaluations swing between 3 and 5 (×0.75 and ×1.25 of 2 shards' target) every
    // two ticks. The first peak may add a shard; nothing may take one away while it swings.
    const counts: number[] = [];
    const seen: string[] = [];
    const watch = (async () => {
      const end = Date.now() + 70_000;
      while (Date.now() < end) {
        const s = await w.status();
        counts.push(s.desiredShards ?? 0);
        seen.push(`${s.desiredShards}:${s.metrics?.queueDepth}:${s.metrics?.tickLatencyP95Seconds}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    let extra: string[] = [];
    for (let i = 0; i < 6; i++) {
      if (extra.length === 0) extra = await w.addTenants("slow", 2, 0);
      else {
        await w.removeTenants(extra);
        extra = [];
      }
      await new Promise((r) => setTimeout(r, 2 * TICK_SECONDS * 1000));
    }
    await watch;

    const changes = counts.filter((c, i) => i > 0 && c !== counts[i - 1]);
    const scaled = (await events(w.ns, "ScalingUp")).map((e) => e.message).join("\n");
    // desiredShards:queueDepth:tickP95 at each poll, and the ScalingUp Events, for a failure's message.
    const story = `${seen.join(" ")}\n${scaled}`;
    expect(
      counts.every((c, i) => i === 0 || c >= counts[i - 1]!),
      story,
    ).toBe(true);
    expect(changes.length, story).toBeLessThanOrEqual(1);
    expect(await events(w.ns, "ScalingDown")).toHaveLength(0);
  });
});
