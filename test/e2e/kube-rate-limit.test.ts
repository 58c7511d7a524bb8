import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestNamespace, installCrd, kubectl, loadKubeConfig } from "../support/cluster.ts";
import { msg, startOperator } from "../support/operator.ts";
import { createTestDatabase } from "../support/postgres.ts";
import { startPrivateApiserver } from "../support/privateApiserver.ts";
import { settledShardSet, shardSetManifest } from "../support/shardSets.ts";
import { seedTenants } from "../support/tenants.ts";

/**
 * The operator's client-side rate limit, seen from the apiserver. The operator talks to a private
 * kube-apiserver of the plane that writes an audit log of every request it receives (Metadata
 * level; the apiserver's own loopback requests and health checks left out), and to nothing else.
 * With `--kube-api-qps 3 --kube-api-burst 3` it brings up 2 sets of 3 shards in 2 namespaces at
 * once (tenant assignments on: Secret reads and PostgreSQL), leader election on (the Lease's
 * requests count too), a 5 s resync, then grows every set to 5 shards at once. From the audit log:
 * no window of t seconds received more than burst + qps × (t + slack) requests, for windows from
 * 0.25 s to 20 s; the apiserver received no request the limiter did not let through (the audited
 * requests are at most the operator's `rest_client_rate_limiter_duration_seconds_count`); and the
 * limiter did make requests wait (without it, the first applies alone would arrive within a
 * second). Every Deployment is applied and every set settles. No speed is asserted.
 */

const kc = loadKubeConfig();
const QPS = 3;
const BURST = 3;
/**
 * The apiserver stamps a request when it receives it, some time after the operator took its token;
 * a request held up on its way (the first requests each open a TLS connection, slow on a loaded
 * machine) can land closer to the next ones than their tokens were. Windows are widened by this
 * much to allow for it: 3 more requests per window at 3/s. A run of this test with the limit
 * lifted (10000/10000, and 6 sets of 4 shards) had the apiserver receive 15 requests within 0.5 s,
 * where 7.5 pass here.
 */
const SLACK_S = 1;
const NAMESPACES = 2;
const SETS_PER_NAMESPACE = 1;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

beforeAll(async () => {
  await installCrd();
});

interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  requestReceivedTimestamp: string;
  user: { username: string };
}

/** The most timestamps (ms) within any closed window of `windowMs`. */
function maxInWindow(sortedMs: number[], windowMs: number): number {
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sortedMs.length; hi++) {
    while (sortedMs[hi]! - sortedMs[lo]! > windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** Sum of a metric's samples over all label sets, from a /metrics text. */
function sampleSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

describe("--kube-api-qps and --kube-api-burst", () => {
  it("hold every request the operator sends, as the apiserver's audit log records them", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eo-rate-limit-audit-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const auditLog = join(dir, "audit.log");
    await writeFile(
      join(dir, "policy.yaml"),
      [
        "apiVersion: audit.k8s.io/v1",
        "kind: Policy",
        "omitStages: [RequestReceived]",
        "rules:",
        '  - level: None\n    users: ["system:apiserver"]',
        '  - level: None\n    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*"]',
        "  - level: Metadata",
        "",
      ].join("\n"),
    );
    const api = await startPrivateApiserver({
      extraArgs: [`--audit-policy-file=${join(dir, "policy.yaml")}`, `--audit-log-path=${auditLog}`],
    });
    cleanups.push(() => api.destroy());

    const db = await createTestDatabase("ratelimit");
    cleanups.push(() => db.drop());
    await migrateUp({ db: db.pool });
    const sets: { ns: string; name: string }[] = [];
    for (let n = 0; n < NAMESPACES; n++) {
      const ns = await createTestNamespace(kc, `ratelimit-${n}`);
      cleanups.push(() => ns.remove());
      await kubectl([
        "create",
        "secret",
        "generic",
        "operator-db",
        "-n",
        ns.name,
        `--from-literal=url=${db.url}`,
      ]);
      for (let s = 0; s < SETS_PER_NAMESPACE; s++) {
        const name = `alerts-${s}`;
        await seedTenants(db.pool, `${ns.name}/${name}`, 8, `${ns.name}-${name}`);
        await kubectl(["apply", "-n", ns.name, "-f", "-"], shardSetManifest(name, 3));
        sets.push({ ns: ns.name, name });
      }
    }
    const namespaces = [...new Set(sets.map((s) => s.ns))];

    // All the sets exist before the operator starts: its first reconciles are one burst of work.
    const op = startOperator([
      "--kubeconfig",
      api.kubeconfigPath,
      "--namespaces",
      namespaces.join(","),
      "--leader-election-namespace",
      namespaces[0]!,
      "--leader-election-id",
      `rate-limit-${randomBytes(3).toString("hex")}`,
      "--drain-slack",
      "0s",
      "--resync-period",
      "5s",
      "--kube-api-qps",
      String(QPS),
      "--kube-api-burst",
      String(BURST),
    ]);
    cleanups.push(() => op.kill("SIGKILL"));
    const { metricsPort } = await op.waitForLog(msg("Serving metrics and probes"));
    expect(await op.waitForLog(msg("Rate-limiting requests to the kube-apiserver"))).toMatchObject({
      qps: QPS,
      burst: BURST,
    });
    await Promise.all(sets.map((s) => settledShardSet(kc, s.ns, s.name, 3, 180_000)));
    await Promise.all(sets.map((s) => kubectl(["scale", `ess/${s.name}`, "-n", s.ns, "--replicas=5"])));
    await Promise.all(sets.map((s) => settledShardSet(kc, s.ns, s.name, 5, 180_000)));

    // The audit log first, then the operator's count: a request sent meanwhile is in the count only.
    const events = (await readFile(auditLog, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    // A watch is logged when its response starts and again when it ends: each request once.
    const requests = [...new Map(events.map((e) => [e.auditID, e])).values()];
    const times = requests.map((e) => Date.parse(e.requestReceivedTimestamp)).sort((a, b) => a - b);
    const admitted = sampleSum(metrics, "rest_client_rate_limiter_duration_seconds_count");
    const waitedSeconds = sampleSum(metrics, "rest_client_rate_limiter_duration_seconds_sum");

    const verbs = new Set(requests.map((e) => e.verb));
    for (const v of ["list", "watch", "get", "patch", "create"]) expect(verbs, `a ${v} request`).toContain(v);
    expect(requests.some((e) => e.requestURI.includes("/leases"))).toBe(true);
    expect(requests.some((e) => e.requestURI.includes("/secrets/operator-db"))).toBe(true);

    const report: string[] = [];
    for (const windowS of [0.25, 0.5, 1, 2, 5, 10, 20]) {
      const seen = maxInWindow(times, windowS * 1000);
      const bound = BURST + QPS * (windowS + SLACK_S);
      report.push(`${windowS}s: ${seen} ≤ ${bound}`);
      expect(seen, `most requests within ${windowS} s (${report.join(", ")})`).toBeLessThanOrEqual(bound);
    }
    console.log(`requests to the apiserver: ${requests.length}; most within a window: ${report.join(", ")}`);
    expect(requests.length).toBeGreaterThan(60);
    expect(requests.length).toBeLessThanOrEqual(admitted);
    expect(waitedSeconds).toBeGreaterThan(1);
  }, 300_000);
});
