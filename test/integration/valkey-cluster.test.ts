/**
 * The evaluator on a real Valkey Cluster (redis-server in cluster mode: three primaries, three
 * replicas, test/support/valkeyCluster.ts), through the client the evaluator builds
 * (`connectValkey` with VALKEY_MODE=cluster):
 * - each tenant's state lives on the primary of its hash slot, and a call declares every key, so a
 *   slot half moved between primaries refuses it (TRYAGAIN) instead of reading or writing half a
 *   state, and the state is whole on the new primary once the move is done;
 * - generated interleavings of ticks, hand-offs, overruns, restarts and ingests with slot migrations
 *   and primary failovers (graceful, and takeovers that may lose the last writes) running beside
 *   them hold every exactly-once invariant of the history checker (EO_CLUSTER_RUNS, default 12);
 * - an evaluator process started with VALKEY_MODE=cluster evaluates and alerts.
 */
import fc from "fast-check";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileEvaluatorConfig } from "../../evaluator/src/config/evaluatorConfig.ts";
import { connectValkey } from "../../evaluator/src/main.ts";
import { T0, thresholdRule, windowRule } from "../../evaluator/src/rules/fixtures.ts";
import { planTenant } from "../../evaluator/src/rules/planTenant.ts";
import { groupReadings } from "../../evaluator/src/rules/readings.ts";
import { cooldownKey, tenantStateKey, windowBufferKey } from "../../evaluator/src/state/keys.ts";
import { emptySnapshot } from "../../evaluator/src/state/tenantSnapshot.ts";
import { ValkeyState } from "../../evaluator/src/state/valkeyState.ts";
import { encodeBuffer } from "../../evaluator/src/state/valueEncoding.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually } from "../support/evaluatorProcess.ts";
import { type InterleavingOptions, runAndCheck, type Step, scheduleStep } from "../support/interleavings.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { deleteTenantKeys } from "../support/valkey.ts";
import { type PrivateValkeyCluster, startValkeyCluster } from "../support/valkeyCluster.ts";

/** The slot of a key (CRC16 of its hash tag), as the cluster computes it. */
async function slotOf(client: Cluster, key: string): Promise<number> {
  return Number(await client.call("CLUSTER", "KEYSLOT", key));
}

let cluster: PrivateValkeyCluster;
let client: Cluster;
let db: TestDatabase;

const clusterClient = (url: string): Cluster => {
  const config = compileEvaluatorConfig({
    shardIndex: "0",
    shardSet: "test/cluster",
    databaseUrl: "postgres://unused@127.0.0.1:1/x",
    valkeyUrl: url,
    valkeyMode: "cluster",
    valkeyCommandTimeoutMs: "2000",
  });
  return connectValkey(config) as Cluster;
};

beforeAll(async () => {
  cluster = await startValkeyCluster();
  client = clusterClient(cluster.url);
  db = await createTestDatabase("valkey_cluster");
  await migrateUp({ db: db.pool });
}, 90_000);

afterAll(async () => {
  client?.disconnect();
  await db?.drop();
  await cluster?.destroy();
});

describe("the state scripts on a Valkey Cluster", () => {
  it("keep each tenant on its slot's primary, and refuse a call while the slot is half moved", async () => {
    const tenantId = `cl-${Date.now()}`;
    const rules = [
      thresholdRule({ id: "hot", tenant_id: tenantId, device_id: null, cooldown_seconds: 600 }),
      windowRule({ id: "avg", tenant_id: tenantId, device_id: null, window_seconds: 300 }),
    ];
    const plan = planTenant({
      tenantId,
      rules,
      deviceIds: ["d1", "d2"],
      readingsByDeviceMetric: groupReadings([]),
      now: T0,
    });
    const state = new ValkeyState(client, { wallClock: () => T0 });
    const snapshot = emptySnapshot();
    snapshot.seq = 7;
    snapshot.at = T0;
    for (const pair of plan.pairs) {
      snapshot.covered.add(pair.key);
      if (pair.window) {
        const entries = [{ ts: T0 - 1000, value: 41 }];
        snapshot.buffers.set(pair.key, { entries, stored: encodeBuffer(entries) });
      } else {
        snapshot.cooldownUntil.set(pair.key, T0 + 600_000);
      }
    }
    expect(await state.storeTenantState(plan, snapshot, null)).toEqual({ stored: true, full: true });

    // Every key of the tenant is on the primary of its slot.
    const slot = await slotOf(client, tenantStateKey(tenantId));
    const keys = [
      tenantStateKey(tenantId),
      windowBufferKey(tenantId, "avg", "d1"),
      windowBufferKey(tenantId, "avg", "d2"),
      cooldownKey(tenantId, "hot", "d1"),
      cooldownKey(tenantId, "hot", "d2"),
    ];
    for (const key of keys) expect(await slotOf(client, key)).toBe(slot);
    const home = await cluster.primaryOf(slot);
    const onHome = (
      await client
        .nodes("master")
        .find((n) => n.options.port === home.port)!
        .keys(`*{${tenantId}}*`)
    ).sort();
    expect(onHome, JSON.stringify(onHome)).toEqual([...keys].sort());

    // A fresh process (no kept copy) reads the whole state back.
    const reader = () => new ValkeyState(client, { wallClock: () => T0 });
    const fence = { seq: 7, evalMs: T0 };
    const loaded = await reader().loadTenantState(plan, fence);
    expect(loaded).toMatchObject({ kind: "state", source: "valkey" });

    // Half of the slot's keys moved: the call is refused (TRYAGAIN, retried, then an error) rather
    // than reading a state that is half on each node.
    await cluster.beginMigration(slot, 0.5);
    await expect(reader().loadTenantState(plan, fence)).rejects.toThrow(/TRYAGAIN|ASK|MOVED/);
    await cluster.finishMigrations();
    const moved = await cluster.primaryOf(slot);
    expect(moved.id).not.toBe(home.id);
    const after = await reader().loadTenantState(plan, fence);
    expect(after.kind).toBe("state");
    if (after.kind !== "state") return;
    expect(after.source).toBe("valkey");
    expect([...after.snapshot.buffers.values()].map((b) => b.stored)).toEqual([
      snapshot.buffers.get(plan.pairs.find((p) => p.window)!.key)!.stored,
      snapshot.buffers.get(plan.pairs.filter((p) => p.window)[1]!.key)!.stored,
    ]);
    expect(after.snapshot.cooldownUntil.size).toBe(2);
    await deleteTenantKeys(client, tenantId);
  }, 60_000);
});

/** Topology changes of the generated schedules (InterleavingOptions.topology). */
const TOPOLOGY = [
  "begin a slot migration",
  "finish the migrations",
  "graceful failover",
  "takeover",
] as const;

/** How often each topology change was made (so the generated runs are seen to make them). */
const made = new Map<string, number>();

async function changeTopology(action: number, tenantId: string): Promise<void> {
  const slot = await slotOf(client, tenantStateKey(tenantId));
  const change = TOPOLOGY[action % TOPOLOGY.length]!;
  made.set(change, (made.get(change) ?? 0) + 1);
  switch (change) {
    case "begin a slot migration":
      // One migration at a time per slot: a begun one is finished first.
      await cluster.finishMigrations();
      await cluster.beginMigration(slot, 0.5);
      break;
    case "finish the migrations":
      await cluster.finishMigrations();
      break;
    case "graceful failover":
      await cluster.finishMigrations();
      await cluster.failover(slot);
      break;
    case "takeover":
      await cluster.finishMigrations();
      await cluster.failover(slot, { takeover: true });
      break;
  }
}

const I = 60_000;
const options = (): InterleavingOptions => ({
  db: db.pool,
  dbUrl: db.url,
  valkey: client,
  tenants: 3,
  shards: [0, 1, 1],
  intervalMs: I,
  budgetMs: 5_000,
  topology: changeTopology,
});

/** A checked run; a slot migration it left begun is finished. */
async function runOnCluster(steps: readonly Step[]) {
  try {
    return (await runAndCheck(options(), steps)).summary;
  } finally {
    await cluster.finishMigrations();
  }
}

describe("exactly-once on a Valkey Cluster under slot migrations and failovers", () => {
  it("a fixed schedule: evaluations before, during and after a migration and a takeover", async () => {
    const ingest = (tenant: number, value: number): Step => ({ kind: "ingest", tenant, device: 0, value });
    const summary = await runOnCluster([
      ingest(0, 80),
      ingest(1, 20),
      { kind: "slot" },
      { kind: "topology", action: 0, tenant: 0 },
      ingest(0, 90),
      { kind: "advance", ms: I },
      { kind: "slot" },
      { kind: "topology", action: 1, tenant: 0 },
      ingest(0, 10),
      { kind: "overrun", pod: 0 },
      { kind: "topology", action: 3, tenant: 0 },
      { kind: "release" },
      { kind: "advance", ms: I },
      { kind: "slot" },
      { kind: "topology", action: 2, tenant: 1 },
      ingest(1, 95),
      { kind: "advance", ms: I },
      { kind: "slot" },
    ]);
    expect(summary.evaluations.committed).toBeGreaterThan(0);
    expect(summary.readings.judged).toBeGreaterThan(0);
  }, 180_000);

  const RUNS = Number(process.env["EO_CLUSTER_RUNS"] ?? 12);
  const step = scheduleStep(
    [I, 30_000],
    [
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant("topology" as const),
          action: fc.nat(TOPOLOGY.length - 1),
          tenant: fc.nat(2),
        }),
      },
    ],
  );
  it(`generated schedules with topology changes beside them hold every invariant (${RUNS} runs)`, {
    timeout: Math.max(300_000, RUNS * 30_000),
  }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 30 }), async (steps) => {
        await runOnCluster(steps);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    // Every kind of change was made under the evaluators (fixed schedule included).
    expect([...made.keys()].sort()).toEqual([...TOPOLOGY].sort());
  });
});

describe("an evaluator process with VALKEY_MODE=cluster", () => {
  const fx = useEvaluatorFixture("valkey_cluster_process");

  it("evaluates its tenants and alerts, its state on the cluster", async () => {
    const tenants = await fx.tenants(4, {
      rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 50 }],
    });
    await fx.reading(tenants, 75);
    const evaluator = fx.start({
      VALKEY_MODE: "cluster",
      VALKEY_URL: cluster.url,
      TICK_INTERVAL_SECONDS: "1",
    });
    await eventually(
      async () => (await fx.openAlerts(tenants)) === 4,
      30_000,
      "an open alert of every tenant",
    );
    expect(
      evaluator.logs.some(
        (l) => l["msg"] === "valkey_connected" && String(l["valkey"]).startsWith("cluster "),
      ),
    ).toBe(true);
    for (const t of tenants) expect(await client.exists(tenantStateKey(t))).toBe(1);
    for (const t of tenants) await deleteTenantKeys(client, t);
  }, 60_000);
});
