import * as k8s from "@kubernetes/client-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { pgConnectionConfig } from "../../runtime/pgTls.ts";
import { createTestNamespace, eventually, installCrd, kubectl, loadKubeConfig } from "../support/cluster.ts";
import { startOperator } from "../support/operator.ts";
import { type PrivatePostgres, startPrivatePostgres } from "../support/privateServices.ts";
import { getShardSet, settledShardSet, shardSetManifest } from "../support/shardSets.ts";
import { seedTenants } from "../support/tenants.ts";
import { createTestPki, type TestPki } from "../support/tls.ts";

/**
 * The real `evaluator-operator run` on the local plane reaches a set's database over TLS: the
 * Secret's URL says sslmode=verify-full, the operator trusts TLS_CA_FILE, and the server (private,
 * TLS-only pg_hba) turns away anything else. The set also names a CA Secret for its shards
 * (spec.evaluator.tls.caSecretRef), which the applied Deployments mount.
 */
const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);

let pki: TestPki;
let server: PrivatePostgres;
let pool: pg.Pool;
const cleanups: (() => Promise<unknown>)[] = [];

/** The private server's URL with verify-full, as a Secret holds it. */
const tlsUrl = (application: string) =>
  `postgres://postgres@127.0.0.1:${server.port}/postgres?sslmode=verify-full&application_name=${application}`;

beforeAll(async () => {
  await installCrd();
  pki = await createTestPki();
  server = await startPrivatePostgres({
    tls: { certFile: pki.certFile, keyFile: pki.keyFile, requireTls: true },
  });
  pool = new pg.Pool({ ...pgConnectionConfig(tlsUrl("e2e-test"), { caFile: pki.caFile }), max: 2 });
  pool.on("error", () => {
    // The server goes away at the end of the file.
  });
  await migrateUp({ db: pool });
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await pool?.end();
  await server?.destroy();
  await pki?.destroy();
});

describe("the operator over TLS to PostgreSQL", () => {
  it("assigns a set's tenants through a verify-full URL with TLS_CA_FILE, and its shards mount the set's CA", async () => {
    const ns = await createTestNamespace(kc, "operator-tls");
    cleanups.push(() => ns.remove());
    const shardSet = `${ns.name}/alerts`;
    await seedTenants(pool, shardSet, 12);
    await kubectl([
      "create",
      "secret",
      "generic",
      "operator-db",
      "-n",
      ns.name,
      `--from-literal=url=${tlsUrl("operator-e2e-tls")}`,
    ]);
    await kubectl([
      "create",
      "secret",
      "generic",
      "db-ca",
      "-n",
      ns.name,
      `--from-file=ca.crt=${pki.caFile}`,
    ]);

    const op = startOperator(["--namespaces", ns.name, "--no-leader-elect", "--resync-period", "2s"], {
      TLS_CA_FILE: pki.caFile,
    });
    cleanups.push(() => op.kill("SIGKILL"));
    // The set's shards trust the same CA: spec.evaluator.tls, added to the test manifest's evaluator.
    const manifest = shardSetManifest("alerts", 2).replace(
      "  evaluator:\n",
      "  evaluator:\n    tls: { caSecretRef: { name: db-ca } }\n",
    );
    await kubectl(["apply", "-n", ns.name, "-f", "-"], manifest);

    const set = await settledShardSet(kc, ns.name, "alerts", 2);
    expect(set.status?.tenants).toBe(12);
    const { rows } = await pool.query<{ unassigned: number; shards: number }>(
      `SELECT count(*) FILTER (WHERE shard_index IS NULL)::int AS unassigned,
              count(DISTINCT shard_index)::int AS shards
         FROM tenants WHERE shard_set = $1`,
      [shardSet],
    );
    expect(rows[0]).toEqual({ unassigned: 0, shards: 2 });

    // The operator's own connections (its pool keeps them idle for 30 s) are encrypted.
    const ssl = await eventually(
      async () => {
        const r = await pool.query<{ ssl: boolean }>(
          `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
            WHERE a.application_name = 'operator-e2e-tls'`,
        );
        return r.rows.length > 0 ? r.rows.map((x) => x.ssl) : undefined;
      },
      { timeoutMs: 20_000, what: "the operator's connections in pg_stat_activity" },
    );
    expect(ssl.every(Boolean)).toBe(true);

    const deployments = await apps.listNamespacedDeployment({
      namespace: ns.name,
      labelSelector: "evaluator.iot.dev/shardset=alerts",
    });
    expect(deployments.items).toHaveLength(2);
    for (const d of deployments.items) {
      const pod = d.spec!.template.spec!;
      expect(pod.containers[0]!.env).toContainEqual({
        name: "TLS_CA_FILE",
        value: "/etc/evaluator/tls/ca.crt",
      });
      expect(pod.volumes).toContainEqual(
        expect.objectContaining({
          name: "tls-ca",
          secret: expect.objectContaining({
            secretName: "db-ca",
            items: [{ key: "ca.crt", path: "ca.crt" }],
          }),
        }),
      );
    }
    expect((await getShardSet(kc, ns.name, "alerts")).status?.conditions).toContainEqual(
      expect.objectContaining({ type: "Degraded", status: "False" }),
    );
  });
});
