import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { FIELD_MANAGER } from "../../operator/src/api/types.ts";
import { buildShardDeployment } from "../../operator/src/desired/buildShardDeployment.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { statusCode } from "../../runtime/errors.ts";
import {
  createTestNamespace,
  eventually,
  installCrd,
  kubectl,
  loadKubeConfig,
  toolchainBin,
} from "../support/cluster.ts";
import { msg, startOperator } from "../support/operator.ts";
import { createTestDatabase } from "../support/postgres.ts";
import { type PrivateApiserver, startPrivateApiserver } from "../support/privateApiserver.ts";
import { getShardSet, settledShardSet, shardSetManifest } from "../support/shardSets.ts";
import { seedTenants } from "../support/tenants.ts";

/**
 * The chart's RBAC is what the operator calls, no more and no less. The operator runs under a
 * ServiceAccount token bound only to the rules `helm template` renders, against a private
 * kube-apiserver of the local plane that writes an audit log of that ServiceAccount's requests
 * (Metadata level). It creates, grows, shrinks and deletes a set, then stops (releasing its Lease).
 * From the log: every request was granted by the chart's rules (and none answered 403), and every
 * verb the chart grants was used, but the two the apiserver checks inside another request, listed
 * in NOT_A_REQUEST with the reason (a probe below shows that each is needed all the same).
 */
const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const chart = join(repo, "helm", "evaluator-operator");
const kc = loadKubeConfig();

/** Granted by the chart, never a request of its own: the apiserver checks them inside another one. */
const NOT_A_REQUEST = [
  {
    group: "apps",
    resource: "deployments",
    verb: "create",
    why: "a server-side apply (a patch) that creates the Deployment is also authorized as create",
    /** How the apiserver refuses the operator's first apply of a shard without it. */
    refusal: 'cannot create resource "deployments"',
  },
  {
    group: "evaluator.iot.dev",
    resource: "evaluatorshardsets/finalizers",
    verb: "update",
    why:
      "the OwnerReferencesPermissionEnforcement admission plugin checks it when a Deployment's owner " +
      "reference sets blockOwnerDeletion",
    refusal: "blockOwnerDeletion",
  },
] as const;

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests of many kinds
  [field: string]: any;
}

interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  objectRef?: {
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
    apiGroup?: string;
  };
  responseStatus?: { code?: number };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
beforeAll(async () => {
  await installCrd();
});

/** `helm template` of the chart with `args`, parsed. */
async function render(release: string, namespace: string, args: string[]): Promise<Manifest[]> {
  const home = await mkdtemp(join(tmpdir(), "eo-rbac-helm-"));
  try {
    const { stdout } = await run(
      join(toolchainBin(), "helm"),
      ["template", release, chart, "--namespace", namespace, ...args],
      {
        maxBuffer: 16 * 1024 * 1024,
        env: {
          ...process.env,
          HELM_CACHE_HOME: join(home, "cache"),
          HELM_CONFIG_HOME: join(home, "config"),
          HELM_DATA_HOME: join(home, "data"),
        },
      },
    );
    return k8s
      .loadAllYaml(stdout)
      .filter(Boolean)
      .map((o) => JSON.parse(JSON.stringify(o)) as Manifest);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** "group/resource[/subresource] verb", the group "" for the core API. */
const key = (group: string, resource: string, verb: string) =>
  `${group ? `${group}/` : ""}${resource} ${verb}`;

/** Whether one of `roles` (namespaced Roles) grants the request. */
function granted(
  roles: readonly Manifest[],
  req: { group: string; resource: string; verb: string; namespace?: string; name?: string },
): boolean {
  return roles.some(
    (role) =>
      role.metadata.namespace === req.namespace &&
      (role.rules ?? []).some(
        (r) =>
          (r.apiGroups ?? []).some((g) => g === req.group || g === "*") &&
          (r.resources ?? []).some((x) => x === req.resource || x === "*") &&
          r.verbs.some((v) => v === req.verb || v === "*") &&
          (!r.resourceNames?.length || (req.name !== undefined && r.resourceNames.includes(req.name))),
      ),
  );
}

/** Every (group, resource, verb) the rules grant. */
function grantedKeys(roles: readonly Manifest[]): Set<string> {
  const out = new Set<string>();
  for (const role of roles)
    for (const r of role.rules ?? [])
      for (const g of r.apiGroups ?? [])
        for (const x of r.resources ?? []) for (const v of r.verbs) out.add(key(g, x, v));
  return out;
}

/** A kubeconfig file for `api` authenticating with a bearer token. */
async function tokenKubeconfig(
  api: PrivateApiserver,
  token: string,
  dir: string,
  name: string,
): Promise<string> {
  const cluster = api.kc.getCurrentCluster()!;
  const config = new k8s.KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: "private", server: cluster.server, caFile: cluster.caFile, caData: cluster.caData }],
    users: [{ name, token }],
    contexts: [{ name, cluster: "private", user: name }],
    currentContext: name,
  });
  const file = join(dir, `${name}.kubeconfig`);
  await writeFile(file, config.exportConfig());
  return file;
}

/**
 * A token of the ServiceAccount, issued by `api` itself: the apiserver that will check it (another
 * apiserver of the plane checks it only while both hold the same signing key).
 */
async function tokenOf(api: PrivateApiserver, namespace: string, serviceAccount: string): Promise<string> {
  const core = api.kc.makeApiClient(k8s.CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  return request.status?.token ?? "";
}

async function settled(ns: string, shards: number): Promise<void> {
  await settledShardSet(kc, ns, "alerts", shards);
}

describe("the chart's RBAC", () => {
  it("grants exactly the calls the operator makes (audit log of a run under the rendered rules)", async () => {
    const releaseNs = await createTestNamespace(kc, "rbac-release");
    const watched = await createTestNamespace(kc, "rbac-watched");
    cleanups.push(
      () => releaseNs.remove(),
      () => watched.remove(),
    );
    const release = `eo-${watched.name.slice(-6)}`;
    const objects = await render(release, releaseNs.name, [
      "--set",
      `watchNamespaces={${watched.name}}`,
      "--set",
      "replicaCount=1",
    ]);
    const rbac = objects.filter((o) => ["ServiceAccount", "Role", "RoleBinding"].includes(o.kind));
    expect(objects.filter((o) => o.kind.startsWith("Cluster"))).toEqual([]);
    const roles = rbac.filter((o) => o.kind === "Role");
    expect(roles.map((r) => r.metadata.namespace).sort()).toEqual([releaseNs.name, watched.name].sort());
    await kubectl(["apply", "-f", "-"], rbac.map((o) => JSON.stringify(o)).join("\n"));
    const serviceAccount = rbac.find((o) => o.kind === "ServiceAccount")!.metadata.name;
    const username = `system:serviceaccount:${releaseNs.name}:${serviceAccount}`;

    // An apiserver of the plane that logs this ServiceAccount's requests, and enforces owner
    // references like a hardened cluster (OwnerReferencesPermissionEnforcement).
    const dir = await mkdtemp(join(tmpdir(), "eo-rbac-audit-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const auditLog = join(dir, "audit.log");
    await writeFile(
      join(dir, "policy.yaml"),
      [
        "apiVersion: audit.k8s.io/v1",
        "kind: Policy",
        "omitStages: [RequestReceived]",
        "rules:",
        `  - level: Metadata\n    users: [${JSON.stringify(username)}]`,
        "  - level: None",
        "",
      ].join("\n"),
    );
    const api = await startPrivateApiserver({
      extraArgs: [
        `--audit-policy-file=${join(dir, "policy.yaml")}`,
        `--audit-log-path=${auditLog}`,
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
      ],
    });
    cleanups.push(() => api.destroy());

    const db = await createTestDatabase("rbac");
    cleanups.push(() => db.drop());
    await migrateUp({ db: db.pool });
    await seedTenants(db.pool, `${watched.name}/alerts`, 12);
    await kubectl([
      "create",
      "secret",
      "generic",
      "operator-db",
      "-n",
      watched.name,
      `--from-literal=url=${db.url}`,
    ]);

    // The operator as the chart runs it (its own listen addresses and log level aside), through the
    // ServiceAccount's token, with short timings for the test.
    const container = objects.find((o) => o.kind === "Deployment")!["spec"].template.spec.containers[0];
    const chartArgs = (container.args as string[])
      .slice(1) // `run`
      .filter((a) => !/^--(metrics-bind-address|health-probe-bind-address|log-level)=/.test(a))
      .map((a) => a.replace("$(POD_NAMESPACE)", releaseNs.name));
    expect(chartArgs).toContain(`--namespaces=${watched.name}`);
    const kubeconfig = await tokenKubeconfig(
      api,
      await tokenOf(api, releaseNs.name, serviceAccount),
      dir,
      "operator",
    );
    const op = startOperator([
      ...chartArgs,
      "--kubeconfig",
      kubeconfig,
      "--drain-slack",
      "0s",
      "--resync-period",
      "2s",
    ]);
    cleanups.push(() => op.kill("SIGKILL"));
    await op.waitForLog(msg("Caches synced; reconciling")).catch((err) => {
      throw new Error(`${String(err)}\nlast logs: ${JSON.stringify(op.logs.slice(-8))}`);
    });

    await kubectl(["apply", "-n", watched.name, "-f", "-"], shardSetManifest("alerts", 2));
    await settled(watched.name, 2);
    await kubectl(["scale", "ess/alerts", "-n", watched.name, "--replicas=3"]);
    await settled(watched.name, 3);
    await kubectl(["scale", "ess/alerts", "-n", watched.name, "--replicas=1"]);
    await settled(watched.name, 1);
    await kubectl(["delete", "ess", "alerts", "-n", watched.name, "--wait=true"]);
    // SIGTERM: the operator drains and hands its Lease back (read, then update).
    expect(await op.kill("SIGTERM")).toBe(0);
    await op.waitForLog(msg("Released leadership")).catch(() => undefined);

    const events = (await readFile(auditLog, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter((e) => e.user.username === username);
    // A watch is logged when its response starts (and again when it ends): count each request once.
    const requests = [...new Map(events.map((e) => [e.auditID, e])).values()];
    expect(requests.length).toBeGreaterThan(10);

    const refused = events.filter((e) => e.responseStatus?.code === 403);
    expect(
      refused.map((e) => `${e.verb} ${e.requestURI}`),
      "requests answered 403",
    ).toEqual([]);

    // Requests without an object: API discovery only (granted to every authenticated user).
    const nonResource = requests.filter((e) => !e.objectRef?.resource);
    for (const e of nonResource) {
      expect(`${e.verb} ${e.requestURI}`).toMatch(/^get \/(api|apis)(\/[a-z0-9.-]+){0,2}(\?.*)?$/);
    }

    const used = new Set<string>();
    const notGranted: string[] = [];
    for (const e of requests.filter((r) => r.objectRef?.resource)) {
      const ref = e.objectRef!;
      const resource = ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource!;
      const req = {
        group: ref.apiGroup ?? "",
        resource,
        verb: e.verb,
        ...(ref.namespace ? { namespace: ref.namespace } : {}),
        ...(ref.name ? { name: ref.name } : {}),
      };
      used.add(key(req.group, resource, e.verb));
      if (!granted(roles, req)) notGranted.push(`${e.verb} ${e.requestURI}`);
    }
    expect(notGranted, "requests the chart's rules do not grant").toEqual([]);

    const grants = grantedKeys(roles);
    const unused = [...grants].filter((g) => !used.has(g)).sort();
    const notRequests = NOT_A_REQUEST.map((n) => key(n.group, n.resource, n.verb));
    expect(unused, "verbs granted but never used (drop them, or say in NOT_A_REQUEST why they stay)").toEqual(
      [...notRequests].sort(),
    );
    // Each call of the operator, seen: the informers, the Deployment writes, status, Events,
    // the database URL and the Lease.
    expect([...used].sort()).toEqual([...grants].filter((g) => !notRequests.includes(g)).sort());

    // The two verbs that are never a request are needed all the same: without either, the
    // operator's first write of a shard Deployment is refused.
    const set = await eventually(
      async () => {
        await kubectl(
          ["apply", "-n", watched.name, "-f", "-"],
          shardSetManifest("probe", 1, "  paused: true\n"),
        );
        return getShardSet(kc, watched.name, "probe");
      },
      { what: "a set to own the probe Deployment" },
    );
    const manager = roles.find((r) => r.metadata.namespace === watched.name)!;
    for (const [index, missing] of NOT_A_REQUEST.entries()) {
      const name = `rbac-probe-${index}`;
      // The chart's rules but this verb.
      const rules = manager
        .rules!.map((r) =>
          r.apiGroups?.includes(missing.group) && r.resources?.includes(missing.resource)
            ? { ...r, verbs: r.verbs.filter((v) => v !== missing.verb) }
            : r,
        )
        .filter((r) => r.verbs.length > 0);
      await kubectl(
        ["apply", "-n", watched.name, "-f", "-"],
        [
          { apiVersion: "v1", kind: "ServiceAccount", metadata: { name } },
          { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name }, rules },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
            subjects: [{ kind: "ServiceAccount", name, namespace: watched.name }],
          },
        ]
          .map((o) => JSON.stringify(o))
          .join("\n"),
      );
      const probe = new k8s.KubeConfig();
      probe.loadFromFile(await tokenKubeconfig(api, await tokenOf(api, watched.name, name), dir, name));
      const objectsApi = k8s.KubernetesObjectApi.makeApiClient(probe);
      const apply = () =>
        objectsApi.patch(
          buildShardDeployment(set, index),
          undefined,
          undefined,
          FIELD_MANAGER,
          true,
          k8s.PatchStrategy.ServerSideApply,
        );
      // Retried until the new Role is in force (before, the patch itself is refused).
      const refusal = await eventually(
        async () => {
          const err = await apply().then(
            () => new Error("applied"),
            (e: unknown) => e,
          );
          const body = String((err as { body?: unknown }).body ?? "");
          const text = body.startsWith("{") ? String(JSON.parse(body).message) : String(err);
          if (statusCode(err) === 403 && text.includes(missing.refusal)) return text;
          throw new Error(`${statusCode(err) ?? ""} ${text}`);
        },
        { timeoutMs: 30_000, what: `the apply refused without ${missing.verb} on ${missing.resource}` },
      );
      expect(refusal).toContain("forbidden");
    }
  });
});
