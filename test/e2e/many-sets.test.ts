import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestNamespace, installCrd, kubectl, loadKubeConfig } from "../support/cluster.ts";
import { msg, startOperator } from "../support/operator.ts";
import { createTestDatabase } from "../support/postgres.ts";
import { settledShardSet, shardSetManifest } from "../support/shardSets.ts";
import { seedTenants } from "../support/tenants.ts";

/**
 * One operator, many sets: 10 sets of 4 shards across 3 namespaces, created at once, all sharing
 * one database (as sets usually do) with tenant assignments on, at the default rate limit. Every
 * set gets its 4 Deployments, reports Ready, and has all its tenants assigned; and the operator
 * keeps one PostgreSQL pool for the one connection string, not one per set: its connections
 * (told apart by an `application_name` in the Secret's URL), sampled through the whole run, never
 * exceed the pool's size (4), where a pool per set would keep at least one connection per set open.
 */

const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const SETS = [4, 3, 3]; // per namespace
const SHARDS = 4;
const TENANTS = 12;
const POOL_MAX = 4;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

beforeAll(async () => {
  await installCrd();
});

describe("many shard sets", () => {
  it("applies every Deployment of 10 sets × 4 shards in 3 namespaces, every set Ready, through one database pool", async () => {
    const db = await createTestDatabase("manysets");
    cleanups.push(() => db.drop());
    await migrateUp({ db: db.pool });
    const appName = `eo-many-sets-${randomBytes(3).toString("hex")}`;
    const url = `${db.url}?application_name=${appName}`;

    const sets: { ns: string; name: string }[] = [];
    for (const [n, count] of SETS.entries()) {
      const ns = await createTestNamespace(kc, `many-${n}`);
      cleanups.push(() => ns.remove());
      await kubectl([
        "create",
        "secret",
        "generic",
        "operator-db",
        "-n",
        ns.name,
        `--from-literal=url=${url}`,
      ]);
      for (let s = 0; s < count; s++) sets.push({ ns: ns.name, name: `alerts-${s}` });
    }
    for (const s of sets) await seedTenants(db.pool, `${s.ns}/${s.name}`, TENANTS, `${s.ns}-${s.name}`);

    const op = startOperator([
      "--namespaces",
      [...new Set(sets.map((s) => s.ns))].join(","),
      "--no-leader-elect",
      "--drain-slack",
      "0s",
    ]);
    cleanups.push(() => op.kill("SIGKILL"));
    await op.waitForLog(msg("Caches synced; reconciling"));

    let maxConnections = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await db.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
          [appName],
        );
        maxConnections = Math.max(maxConnections, rows[0]!.n);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    await Promise.all(
      sets.map((s) => kubectl(["apply", "-n", s.ns, "-f", "-"], shardSetManifest(s.name, SHARDS))),
    );
    const settled = await Promise.all(sets.map((s) => settledShardSet(kc, s.ns, s.name, SHARDS, 120_000)));
    sampling = false;
    await sampler;

    for (const set of settled) {
      expect(set.status?.conditions?.find((c) => c.type === "Ready")?.status, set.metadata.name).toBe("True");
    }
    for (const ns of new Set(sets.map((s) => s.ns))) {
      const deployments = await apps.listNamespacedDeployment({
        namespace: ns,
        labelSelector: "evaluator.iot.dev/shardset",
      });
      const expected = sets
        .filter((s) => s.ns === ns)
        .flatMap((s) => Array.from({ length: SHARDS }, (_, i) => `${s.name}-shard-${i}`))
        .sort();
      expect(deployments.items.map((d) => d.metadata!.name!).sort()).toEqual(expected);
    }
    const { rows } = await db.pool.query<{ unassigned: number; total: number }>(
      "SELECT count(*) FILTER (WHERE shard_index IS NULL)::int AS unassigned, count(*)::int AS total FROM tenants",
    );
    expect(rows[0]).toEqual({ unassigned: 0, total: sets.length * TENANTS });
    // The operator did reach the database, through one pool of at most POOL_MAX connections.
    expect(maxConnections).toBeGreaterThan(0);
    expect(maxConnections).toBeLessThanOrEqual(POOL_MAX);
  }, 180_000);
});
