import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { SETTINGS } from "../../evaluator/src/config/evaluatorConfig.ts";
import {
  DEFAULTS,
  type EnvVar,
  type EvaluatorShardSetSpec,
  type EvaluatorShardSetStatus,
  type EvaluatorSpec,
  GROUP,
  PLURAL,
  VERSION,
} from "../../operator/src/api/types.ts";
import { AUTOSCALING_DEFAULTS } from "../../operator/src/autoscale/policy.ts";
import { DEFAULT_QUERY_TIMEOUT_MS } from "../../operator/src/autoscale/signalSource.ts";
import { buildShardDeployment, RESERVED_ENV } from "../../operator/src/desired/buildShardDeployment.ts";
import { createTestNamespace, eventually, kubectl, loadKubeConfig } from "../support/cluster.ts";

/**
 * The EvaluatorShardSet CRD against the real apiserver: it installs, documents itself for
 * `kubectl explain`, fills in the defaults of operator/src/api/types.ts, refuses bad input with a
 * message naming the field, and serves the scale and status subresources.
 * Other test files use the CRD at the same time, so it is applied (idempotently) but never deleted.
 */

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const crdDir = join(repo, "crds");
const crdFile = join(crdDir, "evaluator.iot.dev_evaluatorshardsets.yaml");
const samplesDir = join(crdDir, "samples");
const CRD_NAME = `${PLURAL}.${GROUP}`;

const kc = loadKubeConfig();
const customObjects = kc.makeApiClient(k8s.CustomObjectsApi);

/** Runs `body` in a namespace of its own and removes the namespace afterwards. */
async function inNamespace<T>(label: string, body: (ns: string) => Promise<T>): Promise<T> {
  const ns = await createTestNamespace(kc, label);
  try {
    return await body(ns.name);
  } finally {
    await ns.remove();
  }
}

/** Runs kubectl expecting it to fail; resolves with what it printed on stderr. */
async function kubectlFailure(args: string[], input?: string): Promise<string> {
  try {
    await kubectl(args, input);
  } catch (err) {
    return String((err as { stderr?: unknown }).stderr ?? err);
  }
  throw new Error(`kubectl ${args.join(" ")} succeeded, expected a rejection`);
}

async function getShardSet(
  ns: string,
  name: string,
): Promise<{
  spec: EvaluatorShardSetSpec;
  status?: EvaluatorShardSetStatus;
}> {
  return customObjects.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  });
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces. */
function mergePatch(target: Json, patch: Json): Json {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base: { [key: string]: Json } =
    target !== null && typeof target === "object" && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key] ?? null, value);
  }
  return base;
}

/** The smallest valid EvaluatorShardSet; the invalid cases below each break one thing of it. */
function minimalShardSet(name: string): Json {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "EvaluatorShardSet",
    metadata: { name },
    spec: {
      evaluator: {
        image: "registry.invalid/evaluator:1",
        databaseSecretRef: { name: "evaluator-database" },
        valkeySecretRef: { name: "evaluator-valkey" },
      },
      database: { secretRef: { name: "evaluator-database" } },
    },
  };
}

/** Every field of the TypeScript contract present, so a literal of it proves the schema knows them all. */
type DeepRequired<T> = T extends readonly (infer U)[]
  ? DeepRequired<U>[]
  : T extends object
    ? { [K in keyof T]-?: DeepRequired<T[K]> }
    : T;
/** An env var sets value or valueFrom, never both, so extraEnv entries stay as the contract has them. */
type FullSpec = Omit<DeepRequired<EvaluatorShardSetSpec>, "evaluator"> & {
  evaluator: Omit<DeepRequired<EvaluatorSpec>, "extraEnv"> & { extraEnv: EnvVar[] };
};

beforeAll(async () => {
  // Idempotent and safe while other files use the CRD: same content, and never deleted.
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", crdFile]);
  await kubectl(["wait", "--for=condition=Established", `crd/${CRD_NAME}`, "--timeout=60s"]);
});

describe("EvaluatorShardSet CRD: installation", () => {
  it("installs with kubectl apply -f crds/, idempotently, under the names and short name of the design", async () => {
    const generation = async () =>
      Number(await kubectl(["get", "crd", CRD_NAME, "-o", "jsonpath={.metadata.generation}"]));
    const before = await generation();

    expect(await kubectl(["apply", "--server-side", "--force-conflicts", "-f", crdDir])).toContain(
      `customresourcedefinition.apiextensions.k8s.io/${CRD_NAME} serverside-applied`,
    );
    // Client-side apply of the folder works too (dry run: it would add a last-applied annotation).
    expect(await kubectl(["apply", "--dry-run=server", "-f", crdDir])).toContain(CRD_NAME);
    // Re-applying the same file changes nothing.
    expect(await generation()).toBe(before);

    const crd = JSON.parse(await kubectl(["get", "crd", CRD_NAME, "-o", "json"]));
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe("Namespaced");
    expect(crd.spec.names).toMatchObject({
      kind: "EvaluatorShardSet",
      plural: "evaluatorshardsets",
      singular: "evaluatorshardset",
      shortNames: ["ess"],
      categories: ["evaluator"],
    });
    expect(crd.spec.versions.map((v: { name: string; served: boolean; storage: boolean }) => v)).toEqual([
      expect.objectContaining({ name: VERSION, served: true, storage: true }),
    ]);
    const conditions = Object.fromEntries(
      crd.status.conditions.map((c: { type: string; status: string }) => [c.type, c.status]),
    );
    expect(conditions).toMatchObject({ Established: "True", NamesAccepted: "True" });

    const resources = await eventually(
      async () => {
        const out = await kubectl(["api-resources", "--api-group", GROUP, "--no-headers"]);
        return out.includes("evaluatorshardsets") ? out : undefined;
      },
      { what: "evaluatorshardsets in discovery" },
    );
    expect(resources).toMatch(
      /^evaluatorshardsets\s+ess\s+evaluator\.iot\.dev\/v1alpha1\s+true\s+EvaluatorShardSet/m,
    );
  });

  it("documents every field of spec and status for kubectl explain", async () => {
    const crd = JSON.parse(await kubectl(["get", "crd", CRD_NAME, "-o", "json"]));
    const undocumented: string[] = [];
    const walk = (schema: Record<string, unknown>, path: string) => {
      if (typeof schema["description"] !== "string" || schema["description"].trim().length < 10) {
        undocumented.push(path);
      }
      const properties = (schema["properties"] ?? {}) as Record<string, Record<string, unknown>>;
      for (const [name, child] of Object.entries(properties)) walk(child, `${path}.${name}`);
      const items = schema["items"] as Record<string, unknown> | undefined;
      if (items?.["properties"]) {
        for (const [name, child] of Object.entries(
          items["properties"] as Record<string, Record<string, unknown>>,
        ))
          walk(child, `${path}[].${name}`);
      }
    };
    const root = crd.spec.versions[0].schema.openAPIV3Schema;
    walk(root.properties.spec, "spec");
    walk(root.properties.status, "status");
    expect(undocumented).toEqual([]);

    // The apiserver publishes the schema asynchronously after an update; wait for it.
    const autoscaling = await eventually(
      async () => {
        const out = await kubectl(["explain", "evaluatorshardset.spec.autoscaling"]);
        return out.includes("Relative dead band") ? out : undefined;
      },
      { what: "kubectl explain to show the field docs" },
    );
    const flat = autoscaling.replace(/\s+/g, " ");
    expect(flat).toContain("FIELD: autoscaling <Object>");
    expect(flat).toContain("spec.shards is ignored and status.shards is the truth");
    expect(flat).toContain("publishes status.recommendedShards plus an Event so you can commit that number");
    expect(flat).toContain("The operator never writes spec in any mode");
    expect(flat).toMatch(/mode <string> enum: Off, Recommend, Auto/);
    expect(flat).toContain(
      "Lowest shard count the autoscaler may choose (Recommend and Auto), 1 to 256, default 1",
    );
    expect(flat).toContain("tolerance <number> Relative dead band, 0 to 1, default 0.1");

    const shards = (await kubectl(["explain", "ess.spec.shards"])).replace(/\s+/g, " ");
    expect(shards).toContain("kubectl scale ess/NAME --replicas=N");
    expect(shards).toContain("Ignored in mode Auto");

    const status = (await kubectl(["explain", "ess.status"])).replace(/\s+/g, " ");
    expect(status).toContain("Observed state, written only by the operator");
    expect(status).toContain("recommendedShards <integer>");
    expect(status).toContain("In Recommend, commit this value to spec.shards");
    expect(status).toContain("MetricsAvailable: the Prometheus queries answer");
    expect(status).toMatch(/conditions <\[\]Object>/);

    const url = (await kubectl(["explain", "ess.spec.evaluator.databaseSecretRef.name"])).replace(
      /\s+/g,
      " ",
    );
    expect(url).toContain("never the URL itself");
  });
});

describe("EvaluatorShardSet CRD: samples and defaults", () => {
  it("applies crds/samples/ and the apiserver fills in the defaults of types.ts", async () => {
    await inNamespace("crd-samples", async (ns) => {
      const out = await kubectl(["apply", "-n", ns, "-f", samplesDir]);
      expect(out).toContain("evaluatorshardset.evaluator.iot.dev/alerts created");
      expect(out).toContain("evaluatorshardset.evaluator.iot.dev/alerts-auto created");
      expect(out).toContain("secret/evaluator-database created");
      expect(out).toContain("secret/evaluator-valkey created");

      const fixed = (await getShardSet(ns, "alerts")).spec;
      expect(fixed.shards).toBe(3);
      expect(fixed.paused).toBe(false);
      expect(fixed.autoscaling).toEqual({
        mode: "Off",
        minShards: DEFAULTS.minShards,
        maxShards: DEFAULTS.maxShards,
        tolerance: DEFAULTS.tolerance,
        targets: {
          queueDepthPerShard: DEFAULTS.queueDepthPerShard,
          tickLatencySeconds: DEFAULTS.tickLatencySeconds,
        },
        // The apiserver's defaults are the policy's (autoscale/policy.ts).
        minReshardIntervalSeconds: AUTOSCALING_DEFAULTS.minReshardIntervalSeconds,
        scaleUp: AUTOSCALING_DEFAULTS.scaleUp,
        scaleDown: AUTOSCALING_DEFAULTS.scaleDown,
      });
      expect(fixed.evaluator).toMatchObject({
        tickIntervalSeconds: DEFAULTS.tickIntervalSeconds,
        tenantBudgetMs: DEFAULTS.tenantBudgetMs,
        concurrency: DEFAULTS.concurrency,
        imagePullPolicy: "IfNotPresent",
        logLevel: "info",
        databaseSecretRef: { name: "evaluator-database", key: DEFAULTS.secretKey },
        valkeySecretRef: { name: "evaluator-valkey", key: DEFAULTS.secretKey },
      });
      expect(fixed.database.secretRef).toEqual({ name: "evaluator-database", key: DEFAULTS.secretKey });

      const auto = (await getShardSet(ns, "alerts-auto")).spec;
      expect(auto.shards).toBe(DEFAULTS.shards);
      expect(auto.autoscaling?.mode).toBe("Auto");
      expect(auto.autoscaling?.scaleDown?.stabilizationWindowSeconds).toBe(600);
      expect(auto.autoscaling?.prometheus).toEqual({
        url: "http://prometheus-operated.monitoring.svc:9090",
        queueDepthQuery: DEFAULTS.queueDepthQuery,
        tickLatencyQuery: DEFAULTS.tickLatencyQuery,
        timeoutSeconds: DEFAULT_QUERY_TIMEOUT_MS / 1000,
      });

      // Re-applying the samples is a no-op: server defaults never look like drift.
      expect(await kubectl(["apply", "-n", ns, "-f", samplesDir])).toContain(
        "evaluatorshardset.evaluator.iot.dev/alerts unchanged",
      );
    });
  });

  it("keeps every field of the TypeScript contract (strict field validation, nothing pruned)", async () => {
    const spec: FullSpec = {
      shards: 4,
      paused: true,
      autoscaling: {
        mode: "Recommend",
        minShards: 2,
        maxShards: 10,
        targets: { queueDepthPerShard: 50, tickLatencySeconds: 20.5, loadPerShard: 4000.5 },
        minReshardIntervalSeconds: 600,
        tolerance: 0.2,
        scaleUp: { stabilizationWindowSeconds: 30, maxShardsChange: 2, periodSeconds: 120 },
        scaleDown: { stabilizationWindowSeconds: 900, maxShardsChange: 1, periodSeconds: 600 },
        prometheus: {
          url: "https://prometheus.monitoring.svc:9090/prefix",
          timeoutSeconds: 2.5,
          authSecretRef: {
            name: "prometheus-auth",
            bearerTokenKey: "token",
            usernameKey: "user",
            passwordKey: "password",
            caKey: "ca.crt",
          },
          queueDepthQuery: 'sum(my_queue{ns="{{namespace}}",set="{{name}}"})',
          tickLatencyQuery: 'max(my_latency{ns="{{namespace}}",set="{{name}}"})',
        },
      },
      evaluator: {
        image:
          "registry.invalid/evaluator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        imagePullPolicy: "Always",
        resources: { limits: { cpu: 2, memory: "1Gi" }, requests: { cpu: "500m", memory: "256Mi" } },
        tickIntervalSeconds: 30,
        tenantBudgetMs: 2000,
        concurrency: 16,
        logLevel: "debug",
        nodeSelector: { "kubernetes.io/os": "linux" },
        tolerations: [{ key: "dedicated", operator: "Equal", value: "alerts", effect: "NoSchedule" }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: "pool", operator: "In", values: ["alerts"] }] },
              ],
            },
          },
        },
        priorityClassName: "alerting-critical",
        serviceAccountName: "evaluator",
        podAnnotations: { "prometheus.io/scrape": "true" },
        extraEnv: [
          { name: "TZ", value: "UTC" },
          { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          { name: "PG_POOL_MODE", value: "transaction" },
          { name: "DIRECT_DATABASE_URL", valueFrom: { secretKeyRef: { name: "pg-direct", key: "url" } } },
        ],
        databaseSecretRef: { name: "pg-evaluator", key: "dsn" },
        valkeySecretRef: { name: "valkey.alerts", key: "connection_url" },
        tls: { caSecretRef: { name: "db-ca", key: "ca.pem" } },
      },
      database: { secretRef: { name: "pg-operator", key: "url" } },
    };
    const status: DeepRequired<EvaluatorShardSetStatus> = {
      observedGeneration: 1,
      shards: 4,
      desiredShards: 5,
      recommendedShards: 5,
      readyShards: 4,
      tenants: 1200,
      epoch: 9,
      selector: "app.kubernetes.io/instance=full,evaluator.iot.dev/shardset=full",
      lastScaleTime: "2026-01-02T03:04:05Z",
      reshard: {
        phase: "MovingTenants",
        from: 4,
        to: 5,
        startedAt: "2026-01-02T03:04:05Z",
        epoch: 9,
        committedAt: "2026-01-02T03:05:05Z",
        moved: 240,
        movedLoad: 1234.5,
        minimumMovedLoad: 1200.25,
      },
      lastReshard: {
        from: 3,
        to: 4,
        moved: 300,
        movedLoad: 1500,
        minimumMovedLoad: 1490.5,
        durationSeconds: 42.5,
        finishedAt: "2026-01-01T00:00:00Z",
      },
      metrics: { queueDepth: 250.5, tickLatencyP95Seconds: 12.25, readAt: "2026-01-02T03:04:00Z" },
      autoscaler: {
        reason: "tick p95 12.25s within tolerance of 20.5s",
        limits: ["Stabilizing"],
        recommendations: [{ at: "2026-01-02T03:04:00Z", shards: 5 }],
        changes: [{ at: "2026-01-02T03:04:05Z", from: 4, to: 5 }],
      },
      conditions: [
        {
          type: "Progressing",
          status: "True",
          reason: "Resharding",
          message: "moving tenants from 4 to 5 shards",
          lastTransitionTime: "2026-01-02T03:04:05Z",
          observedGeneration: 1,
        },
      ],
    };

    await inNamespace("crd-contract", async (ns) => {
      const manifest = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "EvaluatorShardSet",
        metadata: { name: "full" },
        spec,
      };
      // kubectl validates strictly by default: a field the schema lacks would be an "unknown field" error.
      await kubectl(["create", "-n", ns, "-f", "-"], JSON.stringify(manifest));
      await kubectl([
        "patch",
        "ess/full",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status }),
      ]);
      const stored = await getShardSet(ns, "full");
      expect(stored.spec).toEqual(spec);
      expect(stored.status).toEqual(status);
    });
  });
});

/** [what, merge patch onto the minimal valid object, substring the apiserver's answer must contain]. */
const invalid: [string, Json, string][] = [
  ["negative shards", { spec: { shards: -1 } }, "spec.shards in body should be greater than or equal to 1"],
  ["zero shards", { spec: { shards: 0 } }, "spec.shards in body should be greater than or equal to 1"],
  ["1000 shards", { spec: { shards: 1000 } }, "spec.shards in body should be less than or equal to 256"],
  [
    "minShards above maxShards",
    { spec: { autoscaling: { minShards: 5, maxShards: 2 } } },
    'spec.autoscaling.minShards: Invalid value: "object": autoscaling.minShards must be less than or equal to autoscaling.maxShards',
  ],
  [
    "maxShards above 256",
    { spec: { autoscaling: { maxShards: 300 } } },
    "spec.autoscaling.maxShards in body should be less than or equal to 256",
  ],
  [
    "an unknown autoscaling mode",
    { spec: { autoscaling: { mode: "Manual" } } },
    'spec.autoscaling.mode: Unsupported value: "Manual": supported values: "Off", "Recommend", "Auto"',
  ],
  [
    "an unknown imagePullPolicy",
    { spec: { evaluator: { imagePullPolicy: "Sometimes" } } },
    'spec.evaluator.imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"',
  ],
  [
    "an unknown logLevel",
    { spec: { evaluator: { logLevel: "verbose" } } },
    'spec.evaluator.logLevel: Unsupported value: "verbose"',
  ],
  ["a missing image", { spec: { evaluator: { image: null } } }, "spec.evaluator.image: Required value"],
  [
    "an empty image",
    { spec: { evaluator: { image: "" } } },
    "spec.evaluator.image in body should be at least 1 chars long",
  ],
  [
    "a missing valkeySecretRef",
    { spec: { evaluator: { valkeySecretRef: null } } },
    "spec.evaluator.valkeySecretRef: Required value",
  ],
  [
    "a missing database.secretRef",
    { spec: { database: { secretRef: null } } },
    "spec.database.secretRef: Required value",
  ],
  [
    "a connection string as databaseSecretRef.name",
    { spec: { evaluator: { databaseSecretRef: { name: "postgres://user:secret@db/app" } } } },
    'spec.evaluator.databaseSecretRef.name: Invalid value: "string": must name a Secret holding the URL, never the URL itself',
  ],
  [
    "a libpq key/value string as database.secretRef.name",
    { spec: { database: { secretRef: { name: "host=db user=app password=secret" } } } },
    'spec.database.secretRef.name: Invalid value: "string": must name a Secret holding the URL, never the URL itself',
  ],
  [
    "an uppercase Secret name",
    { spec: { evaluator: { valkeySecretRef: { name: "Valkey_Creds" } } } },
    'spec.evaluator.valkeySecretRef.name: Invalid value: "string": must be a valid Secret name',
  ],
  [
    "a Secret key with a slash",
    { spec: { evaluator: { valkeySecretRef: { name: "valkey", key: "creds/url" } } } },
    'spec.evaluator.valkeySecretRef.key: Invalid value: "string": must be a key of the Secret',
  ],
  [
    "a connection string as databaseSecretRef.key",
    {
      spec: {
        evaluator: {
          databaseSecretRef: { name: "db", key: "postgres://user:secret@db/app?password=secret" },
        },
      },
    },
    "spec.evaluator.databaseSecretRef.key: Invalid value: \"string\": must be a key of the Secret (letters, digits, '-', '_' and '.'), never the URL itself",
  ],
  [
    "a connection string as database.secretRef.key",
    { spec: { database: { secretRef: { name: "db", key: "postgres://user:secret@db/app" } } } },
    'spec.database.secretRef.key: Invalid value: "string": must be a key of the Secret',
  ],
  [
    "an extraEnv name with its value pasted in",
    { spec: { evaluator: { extraEnv: [{ name: "PGPASSWORD=user:secret@db" }] } } },
    'spec.evaluator.extraEnv[0].name: Invalid value: "string": must be an environment variable name',
  ],
  [
    "a tls.caSecretRef without a name",
    { spec: { evaluator: { tls: { caSecretRef: { key: "ca.crt" } } } } },
    "spec.evaluator.tls.caSecretRef.name: Required value",
  ],
  [
    "a tls.caSecretRef name that is not a Secret name",
    { spec: { evaluator: { tls: { caSecretRef: { name: "DB_CA" } } } } },
    'spec.evaluator.tls.caSecretRef.name: Invalid value: "string": must be a valid Secret name',
  ],
  [
    "a tls.caSecretRef key that is a path",
    { spec: { evaluator: { tls: { caSecretRef: { name: "db-ca", key: "../ca.crt" } } } } },
    'spec.evaluator.tls.caSecretRef.key: Invalid value: "string": must be a key of the Secret',
  ],
  [
    "a tls.caSecretRef key of '..'",
    { spec: { evaluator: { tls: { caSecretRef: { name: "db-ca", key: ".." } } } } },
    "spec.evaluator.tls.caSecretRef.key: Invalid value: \"string\": must be a key of the Secret: letters, digits, '-', '_' and '.', neither '.' nor '..'",
  ],
  [
    "an unknown field in spec.evaluator.tls",
    { spec: { evaluator: { tls: { caFile: "/etc/ssl/ca.pem" } } } },
    'strict decoding error: unknown field "spec.evaluator.tls.caFile"',
  ],
  [
    "an unknown field spec.evaluator.databaseUrl",
    { spec: { evaluator: { databaseUrl: "postgres://user:secret@db/app" } } },
    'strict decoding error: unknown field "spec.evaluator.databaseUrl"',
  ],
  [
    "tenantBudgetMs equal to the tick interval",
    { spec: { evaluator: { tickIntervalSeconds: 60, tenantBudgetMs: 60000 } } },
    'spec.evaluator.tenantBudgetMs: Invalid value: "object": evaluator.tenantBudgetMs (default 5000) must be less than evaluator.tickIntervalSeconds * 1000',
  ],
  [
    "a 5 s tick with the default 5000 ms tenant budget",
    { spec: { evaluator: { tickIntervalSeconds: 5 } } },
    "evaluator.tenantBudgetMs (default 5000) must be less than evaluator.tickIntervalSeconds * 1000",
  ],
  [
    "a tick interval below 5 s",
    { spec: { evaluator: { tickIntervalSeconds: 1, tenantBudgetMs: 100 } } },
    "spec.evaluator.tickIntervalSeconds in body should be greater than or equal to 5",
  ],
  [
    "mode Auto without a Prometheus URL",
    { spec: { autoscaling: { mode: "Auto" } } },
    "spec.autoscaling.prometheus: Required value: autoscaling.prometheus.url is required when mode is Recommend or Auto",
  ],
  [
    "mode Recommend without a Prometheus URL",
    { spec: { autoscaling: { mode: "Recommend" } } },
    "autoscaling.prometheus.url is required when mode is Recommend or Auto",
  ],
  [
    "a non-http Prometheus URL",
    { spec: { autoscaling: { mode: "Auto", prometheus: { url: "ftp://prometheus:9090" } } } },
    'spec.autoscaling.prometheus.url: Invalid value: "string": prometheus.url must be an absolute http:// or https:// URL',
  ],
  [
    "a Prometheus URL with credentials",
    { spec: { autoscaling: { mode: "Auto", prometheus: { url: "https://admin:secret@prometheus:9090" } } } },
    "prometheus.url must not embed credentials",
  ],
  [
    "a tick latency target not below the tick interval",
    {
      spec: {
        autoscaling: {
          mode: "Auto",
          prometheus: { url: "http://prometheus:9090" },
          targets: { tickLatencySeconds: 60 },
        },
      },
    },
    'spec.autoscaling.targets.tickLatencySeconds: Invalid value: "object": autoscaling.targets.tickLatencySeconds must be less than evaluator.tickIntervalSeconds',
  ],
  [
    "a zero queue depth target",
    { spec: { autoscaling: { targets: { queueDepthPerShard: 0 } } } },
    "spec.autoscaling.targets.queueDepthPerShard in body should be greater than 0",
  ],
  [
    "tolerance 2",
    { spec: { autoscaling: { tolerance: 2 } } },
    "spec.autoscaling.tolerance in body should be less than or equal to 1",
  ],
  [
    "a negative stabilization window",
    { spec: { autoscaling: { scaleDown: { stabilizationWindowSeconds: -1 } } } },
    "spec.autoscaling.scaleDown.stabilizationWindowSeconds in body should be greater than or equal to 0",
  ],
  [
    "the reserved extraEnv name SHARD_INDEX",
    { spec: { evaluator: { extraEnv: [{ name: "SHARD_INDEX", value: "3" }] } } },
    "spec.evaluator.extraEnv[0].name: Forbidden: extraEnv may not set SHARD_INDEX: it is reserved, set by the operator on every shard",
  ],
  [
    "DATABASE_URL through extraEnv",
    {
      spec: {
        evaluator: {
          extraEnv: [
            { name: "LOG_FORMAT", value: "json" },
            { name: "DATABASE_URL", value: "postgres://db/app" },
          ],
        },
      },
    },
    "spec.evaluator.extraEnv[1].name: Forbidden: extraEnv may not set DATABASE_URL: it is reserved, set by the operator from evaluator.databaseSecretRef",
  ],
  [
    "DIRECT_DATABASE_URL as a plain value in extraEnv",
    {
      spec: {
        evaluator: { extraEnv: [{ name: "DIRECT_DATABASE_URL", value: "postgres://user:secret@db/app" }] },
      },
    },
    "spec.evaluator.extraEnv[0].name: Forbidden: DIRECT_DATABASE_URL must come from a Secret (valueFrom.secretKeyRef): a connection string is never plain text in this resource",
  ],
  [
    "duplicate extraEnv names",
    {
      spec: {
        evaluator: {
          extraEnv: [
            { name: "TZ", value: "UTC" },
            { name: "TZ", value: "CET" },
          ],
        },
      },
    },
    'spec.evaluator.extraEnv[1]: Duplicate value: map[string]interface {}{"name":"TZ"}',
  ],
  [
    "an extraEnv entry with value and valueFrom",
    {
      spec: {
        evaluator: {
          extraEnv: [{ name: "TOKEN", value: "x", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }],
        },
      },
    },
    "extraEnv entries set either value or valueFrom, not both",
  ],
  [
    "an unknown toleration operator",
    { spec: { evaluator: { tolerations: [{ key: "dedicated", operator: "Matches" }] } } },
    'spec.evaluator.tolerations[0].operator: Unsupported value: "Matches"',
  ],
  [
    "a name longer than 63 characters",
    { metadata: { name: "a".repeat(64) } },
    "metadata.name must be at most 63 characters",
  ],
];

describe("EvaluatorShardSet CRD: validation", () => {
  it.concurrent.each(invalid)("refuses %s", async (_what, patch, message) => {
    await inNamespace("crd-invalid", async (ns) => {
      const manifest = mergePatch(minimalShardSet("bad"), patch);
      const stderr = await kubectlFailure(["apply", "-n", ns, "-f", "-"], JSON.stringify(manifest));
      expect(stderr.replace(/\s+/g, " ")).toContain(message);
      // An error message must never echo a credential someone pasted by mistake.
      expect(stderr).not.toContain("user:secret@");
      expect(stderr).not.toContain("admin:secret@");
      expect(stderr).not.toContain("password=secret");
      expect(await kubectl(["get", "ess", "-n", ns, "-o", "name"])).toBe("");
    });
  });

  it("accepts the minimal object the table above breaks", async () => {
    await inNamespace("crd-valid", async (ns) => {
      expect(await kubectl(["apply", "-n", ns, "-f", "-"], JSON.stringify(minimalShardSet("ok")))).toContain(
        "evaluatorshardset.evaluator.iot.dev/ok created",
      );
    });
  });

  it("defaults tls.caSecretRef.key to the key the operator assumes (ca.crt); the apiserver takes the mount", async () => {
    await inNamespace("crd-tls-ca", async (ns) => {
      const manifest = mergePatch(minimalShardSet("tls"), {
        spec: { evaluator: { tls: { caSecretRef: { name: "db-ca" } } } },
      });
      await kubectl(["apply", "-n", ns, "-f", "-"], JSON.stringify(manifest));
      const stored = JSON.parse(await kubectl(["get", "ess", "tls", "-n", ns, "-o", "json"]));
      expect(stored.spec.evaluator.tls).toEqual({
        caSecretRef: { name: "db-ca", key: DEFAULTS.caSecretKey },
      });
      // The shard Deployment built from the stored set, with its CA volume, passes the apiserver's
      // validation (server-side dry run), and the mount comes back as sent.
      const deployment = buildShardDeployment(stored, 0);
      const applied = JSON.parse(
        await kubectl(
          ["apply", "--dry-run=server", "-n", ns, "-o", "json", "-f", "-"],
          JSON.stringify(deployment),
        ),
      );
      const pod = applied.spec.template.spec;
      expect(pod.containers[0].env).toContainEqual({
        name: "TLS_CA_FILE",
        value: "/etc/evaluator/tls/ca.crt",
      });
      expect(pod.containers[0].volumeMounts).toContainEqual({
        name: "tls-ca",
        mountPath: "/etc/evaluator/tls",
        readOnly: true,
      });
      expect(pod.volumes).toContainEqual({
        name: "tls-ca",
        secret: { secretName: "db-ca", items: [{ key: "ca.crt", path: "ca.crt" }], defaultMode: 0o444 },
      });
    });
  });

  it("refuses in extraEnv exactly the names the operator sets (server-side dry run)", async () => {
    await inNamespace("crd-reserved-env", async (ns) => {
      type SecretRef = { secretKeyRef: { name: string; key: string } };
      const withEnv = (
        extraEnv: ({ name: string; value: string } | { name: string; valueFrom: SecretRef })[],
      ) => JSON.stringify(mergePatch(minimalShardSet("env"), { spec: { evaluator: { extraEnv } } }));
      const dryRun = ["apply", "--dry-run=server", "-n", ns, "-f", "-"];
      const refusal = async (extraEnv: { name: string; value: string }[]) =>
        (await kubectlFailure(dryRun, withEnv(extraEnv))).replace(/\s+/g, " ");
      for (const name of RESERVED_ENV) {
        const tz = { name: "TZ", value: "UTC" };
        expect(await refusal([tz, { name, value: "1" }]), name).toContain(
          `spec.evaluator.extraEnv[1].name: Forbidden: extraEnv may not set ${name}: it is reserved, set by the operator`,
        );
      }
      expect(await refusal([{ name: "METRICS_PORT", value: "8080" }])).toContain(
        "extraEnv may not set METRICS_PORT: it is reserved, set by the operator on every shard",
      );
      expect(await refusal([{ name: "TICK_INTERVAL_SECONDS", value: "5" }])).toContain(
        "extraEnv may not set TICK_INTERVAL_SECONDS: it is reserved, set by the operator from evaluator.tickIntervalSeconds (set that field instead)",
      );
      // Every other setting of the evaluator, and SHARD_COUNT (which nothing sets), is allowed; a
      // connection string from a Secret only.
      const reserved = new Set<string>(RESERVED_ENV);
      const allowed = [...Object.values(SETTINGS).map((s) => s.env), "SHARD_COUNT"].filter(
        (n) => !reserved.has(n),
      );
      const fromSecret: SecretRef = { secretKeyRef: { name: "pg-direct", key: "url" } };
      const entries = allowed.map((name) =>
        name === "DIRECT_DATABASE_URL" ? { name, valueFrom: fromSecret } : { name, value: "1" },
      );
      expect(await kubectl(dryRun, withEnv(entries))).toContain("(server dry run)");
    });
  });
});

describe("EvaluatorShardSet CRD: subresources and printer columns", () => {
  it("kubectl scale sets spec.shards through the scale subresource", async () => {
    await inNamespace("crd-scale", async (ns) => {
      await kubectl(["apply", "-n", ns, "-f", join(samplesDir, "evaluatorshardset-fixed.yaml")]);
      expect((await getShardSet(ns, "alerts")).spec.shards).toBe(3);

      expect(await kubectl(["scale", "-n", ns, "ess/alerts", "--replicas=5"])).toContain(
        "evaluatorshardset.evaluator.iot.dev/alerts scaled",
      );
      expect((await getShardSet(ns, "alerts")).spec.shards).toBe(5);

      const scale = JSON.parse(
        await kubectl(["get", "--raw", `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}/alerts/scale`]),
      );
      expect(scale.kind).toBe("Scale");
      expect(scale.spec.replicas).toBe(5);

      // The bounds hold through the subresource too.
      const refused = await kubectlFailure(["scale", "-n", ns, "ess/alerts", "--replicas=0"]);
      expect(refused).toContain("spec.shards in body should be greater than or equal to 1");
      expect((await getShardSet(ns, "alerts")).spec.shards).toBe(5);
    });
  });

  it("serves status separately and prints it in kubectl get columns", async () => {
    await inNamespace("crd-columns", async (ns) => {
      await kubectl(["apply", "-n", ns, "-f", join(samplesDir, "evaluatorshardset-fixed.yaml")]);

      const empty = (await kubectl(["get", "ess", "-n", ns])).split("\n");
      expect(empty[0]?.trim().split(/\s+/)).toEqual([
        "NAME",
        "SHARDS",
        "DESIRED",
        "READY",
        "TENANTS",
        "QUEUE",
        "TICK-P95",
        "EPOCH",
        "AGE",
      ]);
      expect(empty[1]).toMatch(/^alerts\s/);

      const status: EvaluatorShardSetStatus = {
        observedGeneration: 1,
        shards: 3,
        desiredShards: 4,
        readyShards: 2,
        tenants: 120,
        epoch: 7,
        selector: "evaluator.iot.dev/shardset=alerts",
        metrics: { queueDepth: 42, tickLatencyP95Seconds: 1.5, readAt: "2026-01-02T03:04:05Z" },
      };
      await kubectl([
        "patch",
        "ess/alerts",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status }),
      ]);

      const row = (await kubectl(["get", "ess", "alerts", "-n", ns, "--no-headers"])).trim().split(/\s+/);
      expect(row.slice(0, 8)).toEqual(["alerts", "3", "4", "2", "120", "42", "1.5", "7"]);
      const wide = (await kubectl(["get", "ess", "-n", ns, "-o", "wide"])).split("\n");
      expect(wide[0]?.trim().split(/\s+/)).toContain("MODE");
      expect(wide[1]).toMatch(/\sOff\s/);

      const scale = JSON.parse(
        await kubectl(["get", "--raw", `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}/alerts/scale`]),
      );
      expect(scale.status).toEqual({ replicas: 3, selector: "evaluator.iot.dev/shardset=alerts" });

      // The status subresource keeps spec writes and status writes apart.
      await kubectl([
        "patch",
        "ess/alerts",
        "-n",
        ns,
        "--type=merge",
        "-p",
        JSON.stringify({ status: { shards: 9 }, spec: { shards: 2 } }),
      ]);
      const after = await getShardSet(ns, "alerts");
      expect(after.spec.shards).toBe(2);
      expect(after.status?.shards).toBe(3);
    });
  });
});
