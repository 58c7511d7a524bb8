import { readFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../../../evaluator/src/config/evaluatorConfig.ts";
import { ANNOTATIONS, type EvaluatorShardSet, TLS_CA_PATH } from "../api/types.ts";
import {
  buildShardDeployment,
  DEFAULT_SHARD_DEPLOYMENT_CONFIG,
  DEFAULT_SHARD_RESOURCES,
  RESERVED_ENV,
} from "./buildShardDeployment.ts";

function shardSet(overrides: Partial<EvaluatorShardSet["spec"]> = {}): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: {
      name: "alerts",
      namespace: "iot",
      uid: "0b7e3c1e-1111-4222-8333-944445555666",
      generation: 1,
    },
    spec: {
      shards: 3,
      evaluator: {
        image: "ghcr.io/example/evaluator:1.0.0",
        databaseSecretRef: { name: "evaluator-db" },
        valkeySecretRef: { name: "evaluator-valkey", key: "uri" },
      },
      database: { secretRef: { name: "operator-db" } },
      ...overrides,
    },
  };
}

const env = (d: k8s.V1Deployment) => d.spec?.template.spec?.containers[0]?.env ?? [];

describe("buildShardDeployment", () => {
  it("matches the file snapshot for shard 0", async () => {
    await expect(JSON.stringify(buildShardDeployment(shardSet(), 0), null, 2)).toMatchFileSnapshot(
      "__snapshots__/shard-0.deployment.json",
    );
  });

  it.each([
    [0, "alerts-shard-0"],
    [1, "alerts-shard-1"],
    [17, "alerts-shard-17"],
  ])("shard %i is named %s and selects only its own pods", (i, name) => {
    const d = buildShardDeployment(shardSet(), i);
    expect(d.metadata?.name).toBe(name);
    expect(d.spec?.selector.matchLabels).toEqual({
      "evaluator.iot.dev/shardset": "alerts",
      "evaluator.iot.dev/shard": String(i),
    });
    expect(env(d).find((e) => e.name === "SHARD_INDEX")?.value).toBe(String(i));
  });

  it("is owned by its set as the controller, so deleting the set garbage-collects it", () => {
    const ref = buildShardDeployment(shardSet(), 0).metadata?.ownerReferences?.[0];
    expect(ref).toMatchObject({
      kind: "EvaluatorShardSet",
      name: "alerts",
      controller: true,
      blockOwnerDeletion: true,
    });
  });

  it("takes URLs only from Secret references", () => {
    const e = env(buildShardDeployment(shardSet(), 0));
    expect(e.find((x) => x.name === "DATABASE_URL")?.valueFrom?.secretKeyRef).toEqual({
      name: "evaluator-db",
      key: "url",
    });
    expect(e.find((x) => x.name === "VALKEY_URL")?.valueFrom?.secretKeyRef).toEqual({
      name: "evaluator-valkey",
      key: "uri",
    });
    expect(e.some((x) => /postgres:|redis:/.test(x.value ?? ""))).toBe(false);
  });

  it("runs non-root, read-only, without privilege escalation", () => {
    const spec = buildShardDeployment(shardSet(), 0).spec?.template.spec;
    expect(spec?.securityContext?.runAsNonRoot).toBe(true);
    const sc = spec?.containers[0]?.securityContext;
    expect(sc).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      runAsNonRoot: true,
    });
    expect(sc?.capabilities?.drop).toEqual(["ALL"]);
  });

  it("leaves the pod template unchanged when only the shard count changes", () => {
    const a = buildShardDeployment(shardSet({ shards: 3 }), 1);
    const b = buildShardDeployment(shardSet({ shards: 5 }), 1);
    expect(b.spec?.template).toEqual(a.spec?.template);
    expect(b.metadata?.annotations?.[ANNOTATIONS.inputHash]).toBe(
      a.metadata?.annotations?.[ANNOTATIONS.inputHash],
    );
    expect(env(a).some((e) => e.name === "SHARD_COUNT")).toBe(false);
  });

  it("changes the input hash when the evaluator spec changes", () => {
    const a = buildShardDeployment(shardSet(), 0);
    const s = shardSet();
    s.spec.evaluator.image = "ghcr.io/example/evaluator:1.0.1";
    const b = buildShardDeployment(s, 0);
    expect(b.metadata?.annotations?.[ANNOTATIONS.inputHash]).not.toBe(
      a.metadata?.annotations?.[ANNOTATIONS.inputHash],
    );
  });

  it("passes pod knobs through and never lets extraEnv override reserved variables", () => {
    const d = buildShardDeployment(
      shardSet({
        evaluator: {
          image: "img:1",
          databaseSecretRef: { name: "db" },
          valkeySecretRef: { name: "vk" },
          nodeSelector: { pool: "evaluators" },
          tolerations: [{ key: "dedicated", operator: "Equal", value: "evaluators", effect: "NoSchedule" }],
          extraEnv: [
            { name: "SHARD_INDEX", value: "9" },
            { name: "FEATURE_X", value: "on" },
          ],
          tickIntervalSeconds: 30,
          tenantBudgetMs: 2000,
        },
      }),
      2,
    );
    const spec = d.spec?.template.spec;
    expect(spec?.nodeSelector).toEqual({ pool: "evaluators" });
    expect(spec?.tolerations?.[0]?.key).toBe("dedicated");
    expect(env(d).filter((e) => e.name === "SHARD_INDEX")).toEqual([{ name: "SHARD_INDEX", value: "2" }]);
    expect(env(d).find((e) => e.name === "FEATURE_X")?.value).toBe("on");
    expect(env(d).find((e) => e.name === "TICK_INTERVAL_SECONDS")?.value).toBe("30");
    expect(spec?.terminationGracePeriodSeconds).toBe(17);
  });

  it("runs the set's ServiceAccount only with the passthrough on; off, the namespace's default one", () => {
    const withSa = shardSet({
      evaluator: { ...shardSet().spec.evaluator, serviceAccountName: "cloud-admin" },
    });
    const sa = (d: k8s.V1Deployment) => d.spec?.template.spec?.serviceAccountName;
    expect(sa(buildShardDeployment(withSa, 0))).toBe("cloud-admin");
    const on = { ...DEFAULT_SHARD_DEPLOYMENT_CONFIG, serviceAccountPassthrough: true };
    expect(sa(buildShardDeployment(withSa, 0, on))).toBe("cloud-admin");
    // Unset is named `default`: a name removed from the set does not linger in the deprecated alias.
    expect(sa(buildShardDeployment(shardSet(), 0))).toBe("default");

    const off = { ...DEFAULT_SHARD_DEPLOYMENT_CONFIG, serviceAccountPassthrough: false };
    const d = buildShardDeployment(withSa, 0, off);
    expect(sa(d)).toBe("default");
    expect(d.spec?.template.spec?.automountServiceAccountToken).toBe(false);
    // Whatever the set names, the pod template (and so its hash) is the same.
    expect(buildShardDeployment(shardSet(), 0, off)).toEqual(d);
  });
});

describe("spec.evaluator.tls.caSecretRef", () => {
  const pod = (d: k8s.V1Deployment) => d.spec!.template.spec!;
  const withCa = (caSecretRef: { name: string; key?: string }) =>
    shardSet({ evaluator: { ...shardSet().spec.evaluator, tls: { caSecretRef } } });

  it.each([
    ["the default key", { name: "db-ca" }, "ca.crt"],
    ["a named key", { name: "managed-db-ca", key: "bundle.pem" }, "bundle.pem"],
  ])("mounts the Secret's key read-only as TLS_CA_FILE's file (%s)", (_, ref, key) => {
    const d = buildShardDeployment(withCa(ref), 2);
    expect(TLS_CA_PATH).toBe("/etc/evaluator/tls/ca.crt");
    expect(env(d).filter((e) => e.name === "TLS_CA_FILE")).toEqual([
      { name: "TLS_CA_FILE", value: TLS_CA_PATH },
    ]);
    expect(pod(d).containers[0]!.volumeMounts).toEqual([
      { name: "tmp", mountPath: "/tmp" },
      { name: "tls-ca", mountPath: "/etc/evaluator/tls", readOnly: true },
    ]);
    expect(pod(d).volumes).toContainEqual({
      name: "tls-ca",
      secret: { secretName: ref.name, items: [{ key, path: "ca.crt" }], defaultMode: 0o444 },
    });
    // Never optional: a shard without the CA its URLs ask for must not start.
    expect(JSON.stringify(pod(d).volumes)).not.toContain("optional");
  });

  it("adds nothing without it: sets written before the field keep their pod template byte for byte", () => {
    const before = buildShardDeployment(shardSet(), 0);
    expect(env(before).some((e) => e.name === "TLS_CA_FILE")).toBe(false);
    expect(pod(before).volumes).toEqual([{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }]);
    const emptyTls = shardSet({ evaluator: { ...shardSet().spec.evaluator, tls: {} } });
    expect(buildShardDeployment(emptyTls, 0)).toEqual(before);
  });

  it("rolls the shards when the CA Secret changes (the input hash follows it)", () => {
    const hash = (d: k8s.V1Deployment) => d.metadata?.annotations?.[ANNOTATIONS.inputHash];
    const none = hash(buildShardDeployment(shardSet(), 0));
    const a = hash(buildShardDeployment(withCa({ name: "ca-a" }), 0));
    const b = hash(buildShardDeployment(withCa({ name: "ca-b" }), 0));
    expect(new Set([none, a, b]).size).toBe(3);
  });

  it("keeps an extraEnv TLS_CA_FILE (stored before the name was reserved) from overriding the mount's path", () => {
    const set = withCa({ name: "db-ca" });
    set.spec.evaluator.extraEnv = [{ name: "TLS_CA_FILE", value: "/elsewhere.pem" }];
    expect(env(buildShardDeployment(set, 0)).filter((e) => e.name === "TLS_CA_FILE")).toEqual([
      { name: "TLS_CA_FILE", value: TLS_CA_PATH },
    ]);
  });
});

/** The part of an OpenAPI schema these tests walk. */
interface Schema {
  properties?: Record<string, Schema>;
  items?: Schema;
  "x-kubernetes-validations"?: { rule: string; message: string }[];
}

/** The CRD's CEL rules on one spec.evaluator.extraEnv entry. */
function extraEnvRules(): { rule: string; message: string }[] {
  const crd = k8s.loadYaml<{ spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }>(
    readFileSync(new URL("../../../crds/evaluator.iot.dev_evaluatorshardsets.yaml", import.meta.url), "utf8"),
  );
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.["spec"];
  return spec?.properties?.["evaluator"]?.properties?.["extraEnv"]?.items?.["x-kubernetes-validations"] ?? [];
}

describe("RESERVED_ENV", () => {
  const reserved = new Set<string>(RESERVED_ENV);

  it("is exactly the names the builder sets, in its order", () => {
    const full = shardSet({
      evaluator: {
        image: "img:1",
        databaseSecretRef: { name: "db", key: "dsn" },
        valkeySecretRef: { name: "vk" },
        tickIntervalSeconds: 30,
        tenantBudgetMs: 2000,
        concurrency: 4,
        logLevel: "debug",
        tls: { caSecretRef: { name: "db-ca" } },
      },
    });
    expect(env(buildShardDeployment(full, 1)).map((e) => e.name)).toEqual([...RESERVED_ENV]);
    // TLS_CA_FILE only comes with a CA Secret.
    expect(env(buildShardDeployment(shardSet(), 1)).map((e) => e.name)).toEqual(
      RESERVED_ENV.filter((n) => n !== "TLS_CA_FILE"),
    );
  });

  it("is what the CRD's CEL rules on extraEnv reserve, each name once", () => {
    const lists = extraEnvRules().flatMap(({ rule, message }) => {
      const list = /^!\(self\.name in \[(.*)\]\)$/.exec(rule)?.[1];
      return list === undefined
        ? []
        : [{ message, names: [...list.matchAll(/'([^']*)'/g)].map((m) => m[1]!) }];
    });
    expect(lists.length).toBeGreaterThan(0);
    const names = lists.flatMap((l) => l.names);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...RESERVED_ENV].sort());
    // The fixed message (shown where messageExpression cannot be evaluated) names what its rule refuses.
    for (const { message, names: ruleNames } of lists)
      for (const n of ruleNames) expect(message).toContain(n);
  });

  it("never lets a name appear twice, whatever extraEnv holds", () => {
    const settings = Object.values(SETTINGS).map((s) => s.env);
    const name = fc.oneof(
      // The evaluator's own settings, reserved or not, and names nothing sets.
      fc.constantFrom(...settings, "SHARD_COUNT", "TZ", "NODE_OPTIONS"),
      fc.stringMatching(/^[-._a-zA-Z][-._a-zA-Z0-9]{0,15}$/),
    );
    const extraEnv = fc.uniqueArray(fc.record({ name, value: fc.string({ maxLength: 8 }) }), {
      selector: (e) => e.name,
      maxLength: 64,
    });
    fc.assert(
      fc.property(extraEnv, fc.nat({ max: 255 }), (extra, index) => {
        const set = shardSet();
        set.spec.evaluator.extraEnv = extra;
        const emitted = env(buildShardDeployment(set, index));
        const names = emitted.map((e) => e.name);
        // Allowed entries follow the operator's own; a reserved one (an object stored before the name
        // was reserved) is dropped, and the operator's value stays.
        expect(names).toEqual([
          ...RESERVED_ENV.filter((n) => n !== "TLS_CA_FILE"),
          ...extra.filter((e) => !reserved.has(e.name)).map((e) => e.name),
        ]);
        expect(emitted.find((e) => e.name === "SHARD_INDEX")?.value).toBe(String(index));
        expect(emitted.find((e) => e.name === "METRICS_PORT")?.value).toBe("9464");
      }),
      { numRuns: 300 },
    );
  });
});

describe("the evaluator container's resources", () => {
  const resources = (r: EvaluatorShardSet["spec"]["evaluator"]["resources"]) =>
    buildShardDeployment(shardSet({ evaluator: { ...shardSet().spec.evaluator, resources: r } }), 0).spec
      ?.template.spec?.containers[0]?.resources;

  it("defaults to requests (cpu, memory) and a memory limit, no cpu limit, when the resource sets none", () => {
    const defaults = { requests: { cpu: "100m", memory: "512Mi" }, limits: { memory: "1Gi" } };
    expect(DEFAULT_SHARD_RESOURCES).toEqual(defaults);
    // Unset, empty, or with empty maps: never a BestEffort pod.
    for (const r of [undefined, {}, { requests: {} }, { requests: {}, limits: {} }]) {
      expect(resources(r)).toEqual(defaults);
    }
    // The defaults are copied, never shared with (or changed through) a built Deployment.
    expect(resources(undefined)?.requests).not.toBe(DEFAULT_SHARD_RESOURCES.requests);
  });

  it("takes the resource's requests and limits as they are once it sets any", () => {
    const requestsOnly = { requests: { cpu: "2", memory: "4Gi" } };
    expect(resources(requestsOnly)).toEqual(requestsOnly);
    const limitsOnly = { limits: { memory: "2Gi" } };
    expect(resources(limitsOnly)).toEqual(limitsOnly);
    const both = { requests: { cpu: "250m" }, limits: { cpu: "1", memory: 2_147_483_648 } };
    expect(resources(both)).toEqual(both);
  });

  it("are documented with their values in the CRD's description of spec.evaluator.resources", () => {
    const crd = k8s.loadYaml<{ spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }>(
      readFileSync(
        new URL("../../../crds/evaluator.iot.dev_evaluatorshardsets.yaml", import.meta.url),
        "utf8",
      ),
    );
    const field = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.["spec"]?.properties?.["evaluator"]
      ?.properties?.["resources"] as (Schema & { description?: string }) | undefined;
    const text = (field?.description ?? "").replace(/\s+/g, " ");
    expect(text).toContain("cpu 100m and memory 512Mi requested, memory 1Gi limit, no cpu limit");
  });

  it("lets extraEnv set the evaluator's tenant limits (not reserved)", () => {
    const d = buildShardDeployment(
      shardSet({
        evaluator: {
          ...shardSet().spec.evaluator,
          extraEnv: [
            { name: "TENANT_MAX_PAIRS", value: "200000" },
            { name: "TENANT_MAX_READINGS", value: "500000" },
          ],
        },
      }),
      0,
    );
    expect(env(d).slice(-2)).toEqual([
      { name: "TENANT_MAX_PAIRS", value: "200000" },
      { name: "TENANT_MAX_READINGS", value: "500000" },
    ]);
  });
});
