import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { statusCode } from "../../runtime/errors.ts";
import {
  createTestNamespace,
  eventually,
  installCrd,
  KUBECONFIG_PATH,
  kubectl,
  loadKubeConfig,
  toolchainBin,
} from "../support/cluster.ts";

/**
 * The Helm chart (helm/evaluator-operator): it lints, renders the least-privilege RBAC for both
 * scopes (ClusterRole, or a Role per watched namespace), refuses bad values through its schema with
 * a message naming the value, and installs on the real local apiserver, where the chart's
 * ServiceAccount can do exactly what the operator needs. kwok plays the node, so the operator pods
 * turn Running without the image being pulled.
 * The CRD is installed cluster-wide by the suites (and never deleted); installs here pass --skip-crds.
 */

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const chart = join(repo, "helm", "evaluator-operator");
const CRD_FILE = "evaluator.iot.dev_evaluatorshardsets.yaml";
/** Never pulled: kwok fakes the pods. */
const TEST_IMAGE = "registry.invalid/evaluator-operator";

const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const core = kc.makeApiClient(k8s.CoreV1Api);
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);

/** Helm's cache, config and data of this file only: no user repositories or plugins leak in. */
let helmHome: string;
beforeAll(async () => {
  helmHome = await mkdtemp(join(tmpdir(), "eo-helm-test-"));
});
afterAll(async () => {
  await rm(helmHome, { recursive: true, force: true });
});

/** Runs the toolchain's helm against the local plane; resolves with stdout, rejects with stderr. */
async function helm(args: string[]): Promise<string> {
  const { stdout } = await run(join(toolchainBin(), "helm"), ["--kubeconfig", KUBECONFIG_PATH, ...args], {
    maxBuffer: 16 * 1024 * 1024,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, "cache"),
      HELM_CONFIG_HOME: join(helmHome, "config"),
      HELM_DATA_HOME: join(helmHome, "data"),
    },
  });
  return stdout;
}

/** Runs helm expecting it to fail; resolves with what it printed on stderr. */
async function helmFailure(args: string[]): Promise<string> {
  try {
    await helm(args);
  } catch (err) {
    return String((err as { stderr?: unknown }).stderr ?? err);
  }
  throw new Error(`helm ${args.join(" ")} succeeded, expected a failure`);
}

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // The rendered objects are only read, so the fields asserted on are reached through this.
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests of many kinds
  [field: string]: any;
}

/**
 * `helm template` of the chart, parsed into plain JSON objects (the client's typed models, with the
 * fields left unset dropped), as the apiserver would receive them.
 */
async function render(args: string[] = [], namespace = "evaluator-system"): Promise<Manifest[]> {
  const out = await helm(["template", "rel", chart, "--namespace", namespace, ...args]);
  return k8s
    .loadAllYaml(out)
    .filter((o) => o !== null && o !== undefined)
    .map((o) => JSON.parse(JSON.stringify(o)) as Manifest);
}

function only(objects: Manifest[], kind: string, name?: string): Manifest {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `exactly one ${kind}${name ? ` ${name}` : ""}`).toHaveLength(1);
  return found[0]!;
}

const kinds = (objects: Manifest[]) => objects.map((o) => o.kind).sort();

/**
 * The rules the operator needs on what it manages (the RBAC table of the chart README): exactly the
 * calls it makes, which test/e2e/rbac.test.ts checks against an audit log.
 */
const MANAGER_RULES: Rule[] = [
  { apiGroups: ["evaluator.iot.dev"], resources: ["evaluatorshardsets"], verbs: ["list", "watch"] },
  { apiGroups: ["evaluator.iot.dev"], resources: ["evaluatorshardsets/status"], verbs: ["patch"] },
  { apiGroups: ["evaluator.iot.dev"], resources: ["evaluatorshardsets/finalizers"], verbs: ["update"] },
  { apiGroups: ["apps"], resources: ["deployments"], verbs: ["list", "watch", "create", "patch", "delete"] },
  { apiGroups: [""], resources: ["secrets"], verbs: ["get"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create"] },
];

describe("the chart, rendered", () => {
  it("passes helm lint --strict", async () => {
    const out = await helm(["lint", "--strict", chart]);
    expect(out).toContain("1 chart(s) linted, 0 chart(s) failed");
  });

  it("ships a byte-identical copy of crds/ (update it with hack/sync-chart.sh)", async () => {
    const source = await readFile(join(repo, "crds", CRD_FILE), "utf8");
    const copy = await readFile(join(chart, "crds", CRD_FILE), "utf8");
    expect(
      copy === source,
      `helm/evaluator-operator/crds/${CRD_FILE} differs from crds/${CRD_FILE}: run hack/sync-chart.sh`,
    ).toBe(true);
    const withCrds = await render(["--include-crds"]);
    const crd = only(withCrds, "CustomResourceDefinition");
    expect(crd.metadata.name).toBe("evaluatorshardsets.evaluator.iot.dev");
  });

  it("renders, with default values, a ClusterRole of least privilege and a hardened, leader-elected Deployment", async () => {
    const objects = await render();
    expect(kinds(objects)).toEqual([
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "PodDisruptionBudget",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
    ]);

    const clusterRole = only(objects, "ClusterRole");
    // Cluster-scoped names carry the release namespace, so two releases never collide.
    expect(clusterRole.metadata.name).toBe("evaluator-system-rel-evaluator-operator");
    expect(clusterRole["rules"]).toEqual(MANAGER_RULES);
    const binding = only(objects, "ClusterRoleBinding");
    expect(binding["roleRef"]).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: clusterRole.metadata.name,
    });
    expect(binding["subjects"]).toEqual([
      { kind: "ServiceAccount", name: "rel-evaluator-operator", namespace: "evaluator-system" },
    ]);

    const deployment = only(objects, "Deployment");
    const spec = deployment["spec"];
    expect(spec.replicas).toBe(2);
    const pod = spec.template.spec;
    expect(pod.serviceAccountName).toBe(only(objects, "ServiceAccount").metadata.name);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const [container] = pod.containers;
    expect(container.image).toBe("ghcr.io/example/evaluator-operator:0.1.0");
    expect(container.command).toEqual(["node", "/app/operator/bin/evaluator-operator.ts"]);
    expect(container.args).toEqual([
      "run",
      "--leader-election-namespace=$(POD_NAMESPACE)",
      "--leader-election-id=rel-evaluator-operator-leader",
      "--leader-election-lease-duration=15s",
      "--leader-election-renew-deadline=10s",
      "--leader-election-retry-period=2s",
      "--metrics-bind-address=:8080",
      "--health-probe-bind-address=:8081",
      "--log-level=info",
      "--kube-api-qps=20",
      "--kube-api-burst=30",
    ]);
    expect(container.env).toEqual([
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    ]);
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    // /healthz fails past the renew deadline (10 s): the kubelet must give up on a leader whose
    // renewals hang within leaseDuration − renewDeadline (5 s), before a standby takes the Lease.
    const { periodSeconds, failureThreshold } = container.livenessProbe;
    expect(periodSeconds * failureThreshold).toBeLessThanOrEqual(15 - 10);
    expect(container.ports).toContainEqual({ name: "health", containerPort: 8081, protocol: "TCP" });
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.resources.requests).toBeDefined();
    const antiAffinity = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0];
    expect(antiAffinity.podAffinityTerm.topologyKey).toBe("kubernetes.io/hostname");
    expect(antiAffinity.podAffinityTerm.labelSelector.matchLabels).toEqual(spec.selector.matchLabels);

    // The Lease Role names exactly the Lease the operator is told to use.
    const leaseRole = only(objects, "Role");
    expect(leaseRole.metadata.namespace).toBe("evaluator-system");
    expect(leaseRole["rules"]).toEqual([
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: ["rel-evaluator-operator-leader"],
        verbs: ["get", "update"],
      },
    ]);

    expect(only(objects, "PodDisruptionBudget")["spec"]).toEqual({
      minAvailable: 1,
      selector: { matchLabels: spec.selector.matchLabels },
    });
    const service = only(objects, "Service");
    expect(service["spec"].selector).toEqual(spec.selector.matchLabels);
    expect(service["spec"].ports).toEqual([
      { name: "metrics", port: 8080, targetPort: "metrics", protocol: "TCP" },
    ]);
  });

  it("switches to a Role and RoleBinding per watched namespace when watchNamespaces is set", async () => {
    const objects = await render(["--set", "watchNamespaces={team-a,team-b}"]);
    expect(objects.filter((o) => o.kind.startsWith("Cluster"))).toEqual([]);
    for (const ns of ["team-a", "team-b"]) {
      const role = objects.find((o) => o.kind === "Role" && o.metadata.namespace === ns);
      expect(role?.["rules"], `Role in ${ns}`).toEqual(MANAGER_RULES);
      const binding = objects.find((o) => o.kind === "RoleBinding" && o.metadata.namespace === ns);
      expect(binding?.["roleRef"]).toEqual({
        apiGroup: "rbac.authorization.k8s.io",
        kind: "Role",
        name: role?.metadata.name,
      });
      expect(binding?.["subjects"]).toEqual([
        { kind: "ServiceAccount", name: "rel-evaluator-operator", namespace: "evaluator-system" },
      ]);
    }
    const args: string[] = only(objects, "Deployment")["spec"].template.spec.containers[0].args;
    expect(args).toContain("--namespaces=team-a,team-b");
  });

  it("drops Secret access with assignments.enabled=false, and the PDB with one replica", async () => {
    const objects = await render([
      "--set",
      "assignments.enabled=false",
      "--set",
      "replicaCount=1",
      "--set",
      "leaderElection.enabled=false",
    ]);
    const rules: Rule[] = only(objects, "ClusterRole")["rules"];
    expect(rules.flatMap((r) => r.resources ?? [])).not.toContain("secrets");
    const args: string[] = only(objects, "Deployment")["spec"].template.spec.containers[0].args;
    expect(args).toContain("--no-assignments");
    expect(args).toContain("--no-leader-elect");
    expect(args.some((a) => a.startsWith("--leader-election-"))).toBe(false);
    // No leader election: no Lease Role; one replica: no PDB that would block every drain.
    expect(kinds(objects)).toEqual([
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "Service",
      "ServiceAccount",
    ]);
  });

  it("passes the shard pod policy to the operator: image prefixes and the ServiceAccount passthrough", async () => {
    const argsOf = async (set: string[]) =>
      only(await render(set), "Deployment")["spec"].template.spec.containers[0].args as string[];
    const defaults = await argsOf([]);
    expect(defaults.filter((a) => a.includes("image-prefixes") || a.includes("passthrough"))).toEqual([]);
    const set = await argsOf([
      "--set",
      "shardPolicy.allowedImagePrefixes={registry.example.com/team/,ghcr.io/example/evaluator}",
      "--set",
      "shardPolicy.serviceAccountPassthrough=false",
    ]);
    expect(set).toContain("--allowed-image-prefixes=registry.example.com/team/,ghcr.io/example/evaluator");
    expect(set).toContain("--no-service-account-passthrough");
    // A prefix holding a comma or a blank would be split into others by the operator: refused.
    for (const bad of ["registry.example.com/a b", "registry.example.com/a\\,b"]) {
      const err = await helmFailure([
        "template",
        "rel",
        chart,
        "--set",
        `shardPolicy.allowedImagePrefixes={${bad}}`,
      ]);
      expect(err).toContain("/shardPolicy/allowedImagePrefixes/0");
    }
  });

  it("renders no NetworkPolicy by default; enabled, one for the operator pods and one per watched namespace for the shard pods", async () => {
    expect(kinds(await render())).not.toContain("NetworkPolicy");
    const objects = await render([
      "--set",
      "networkPolicy.enabled=true",
      "--set",
      "watchNamespaces={team-a,team-b}",
    ]);
    const policies = objects.filter((o) => o.kind === "NetworkPolicy");
    expect(policies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([
      "evaluator-system/rel-evaluator-operator",
      "team-a/rel-evaluator-operator-shards",
      "team-b/rel-evaluator-operator-shards",
    ]);
    const operator = policies[0]!["spec"];
    expect(operator.podSelector.matchLabels).toEqual(
      only(objects, "Deployment")["spec"].selector.matchLabels,
    );
    expect(operator.policyTypes).toEqual(["Ingress", "Egress"]);
    // Ingress: /metrics only (the kubelet's probes on 8081 are never subject to NetworkPolicy).
    expect(operator.ingress).toEqual([{ ports: [{ port: "metrics", protocol: "TCP" }] }]);
    expect(operator.egress).toEqual([
      {
        ports: [
          { port: 443, protocol: "TCP" },
          { port: 6443, protocol: "TCP" },
        ],
      },
      { ports: [{ port: 5432, protocol: "TCP" }] },
      { ports: [{ port: 9090, protocol: "TCP" }] },
      {
        ports: [
          { port: 53, protocol: "UDP" },
          { port: 53, protocol: "TCP" },
        ],
        to: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
            podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
          },
        ],
      },
    ]);
    for (const shards of policies.slice(1)) {
      expect(shards["spec"]).toEqual({
        podSelector: {
          matchLabels: {
            "app.kubernetes.io/managed-by": "evaluator-operator",
            "app.kubernetes.io/component": "shard",
          },
        },
        policyTypes: ["Ingress"],
        ingress: [{ ports: [{ port: "metrics", protocol: "TCP" }] }],
      });
    }
  });

  it("configures the NetworkPolicies: sources, destinations, dropped rules, shard namespaces", async () => {
    const monitoring = {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
    };
    const values = {
      networkPolicy: {
        enabled: true,
        operator: {
          metricsFrom: [monitoring],
          egress: {
            apiServer: { ports: [6443], to: [{ ipBlock: { cidr: "10.0.0.10/32" } }] },
            prometheus: { ports: [] },
            extra: [{ ports: [{ port: 8200, protocol: "TCP" }] }],
          },
        },
        shards: { namespaces: ["iot"], metricsFrom: [monitoring] },
      },
    };
    const dir = await mkdtemp(join(tmpdir(), "eo-helm-values-"));
    try {
      const file = join(dir, "values.json");
      await writeFile(file, JSON.stringify(values));
      const policies = (await render(["-f", file])).filter((o) => o.kind === "NetworkPolicy");
      expect(policies.map((p) => p.metadata.namespace)).toEqual(["evaluator-system", "iot"]);
      const operator = policies[0]!["spec"];
      // `from` is `_from` in the client's model of an ingress rule (a reserved word).
      expect(operator.ingress).toEqual([
        { ports: [{ port: "metrics", protocol: "TCP" }], _from: [monitoring] },
      ]);
      expect(operator.egress).toEqual([
        { ports: [{ port: 6443, protocol: "TCP" }], to: [{ ipBlock: { cidr: "10.0.0.10/32" } }] },
        { ports: [{ port: 5432, protocol: "TCP" }] },
        expect.objectContaining({
          ports: [
            { port: 53, protocol: "UDP" },
            { port: 53, protocol: "TCP" },
          ],
        }),
        { ports: [{ port: 8200, protocol: "TCP" }] },
      ]);
      expect(policies[1]!["spec"].ingress).toEqual([
        { ports: [{ port: "metrics", protocol: "TCP" }], _from: [monitoring] },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // Cluster-wide, the chart cannot know the sets' namespaces: the operator's policy only.
    const clusterWide = await render(["--set", "networkPolicy.enabled=true"]);
    expect(clusterWide.filter((o) => o.kind === "NetworkPolicy").map((o) => o.metadata.name)).toEqual([
      "rel-evaluator-operator",
    ]);
  });

  it("renders the ServiceMonitor only when the cluster serves monitoring.coreos.com/v1", async () => {
    const without = await render(["--set", "serviceMonitor.enabled=true"]);
    expect(kinds(without)).not.toContain("ServiceMonitor");
    const withApi = await render([
      "--set",
      "serviceMonitor.enabled=true",
      "--api-versions",
      "monitoring.coreos.com/v1/ServiceMonitor",
    ]);
    const monitor = only(withApi, "ServiceMonitor");
    expect(monitor["spec"].endpoints).toEqual([
      {
        port: "metrics",
        path: "/metrics",
        honorLabels: true,
        interval: "30s",
        scrapeTimeout: "10s",
        // The job the alerting rules select the operator by (monitoring/alerts.rules.yaml).
        relabelings: [{ targetLabel: "job", replacement: "evaluator-operator" }],
      },
    ]);
    expect(monitor["spec"].selector.matchLabels).toEqual(only(withApi, "Service")["spec"].selector);
  });

  it("renders the alerting rules as a PrometheusRule only when enabled and served: the groups of monitoring/alerts.rules.yaml", async () => {
    interface AlertRule {
      alert?: string;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    }
    const file = k8s.loadYaml<{ groups: { name: string; rules: AlertRule[] }[] }>(
      await readFile(join(repo, "monitoring", "alerts.rules.yaml"), "utf8"),
    );
    const api = ["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"];
    expect(kinds(await render(api))).not.toContain("PrometheusRule");
    expect(kinds(await render(["--set", "prometheusRule.enabled=true"]))).not.toContain("PrometheusRule");
    const rule = only(await render(["--set", "prometheusRule.enabled=true", ...api]), "PrometheusRule");
    expect(rule.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule.metadata).toMatchObject({ name: "rel-evaluator-operator", namespace: "evaluator-system" });
    expect(rule["spec"]).toEqual({ groups: file.groups });

    // Labels for the Prometheus' ruleSelector; labels for every alert, where an alert's own win;
    // the URL the runbooks are read at.
    const base = "https://git.example.com/iot/evaluator-operator/blob/main/docs/runbooks.md";
    const custom = only(
      await render([
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=kube-prometheus-stack",
        "--set",
        "prometheusRule.alertLabels.team=iot",
        "--set",
        "prometheusRule.alertLabels.severity=info",
        "--set",
        `prometheusRule.runbookBaseUrl=${base}`,
        ...api,
      ]),
      "PrometheusRule",
    );
    expect(custom.metadata.labels).toMatchObject({ release: "kube-prometheus-stack" });
    const expected = file.groups.map((g) => ({
      ...g,
      rules: g.rules.map((r) =>
        r.alert
          ? {
              ...r,
              labels: { team: "iot", ...r.labels },
              annotations: {
                ...r.annotations,
                runbook_url: r.annotations!["runbook_url"]!.replace(/^docs\/runbooks\.md/, base),
              },
            }
          : r,
      ),
    }));
    expect(custom["spec"]).toEqual({ groups: expected });
    expect(custom["spec"].groups[0].rules[0].annotations.runbook_url).toBe(`${base}#evaluatoroperatordown`);
  });

  it("renders the Grafana dashboard ConfigMap only when enabled, the dashboard byte for byte, with the sidecar's label", async () => {
    expect(kinds(await render())).not.toContain("ConfigMap");
    const source = await readFile(join(repo, "monitoring", "dashboards", "evaluator-operator.json"), "utf8");
    const cm = only(await render(["--set", "grafanaDashboard.enabled=true"]), "ConfigMap");
    expect(cm.metadata).toMatchObject({
      name: "rel-evaluator-operator-dashboards",
      namespace: "evaluator-system",
      labels: { grafana_dashboard: "1", "app.kubernetes.io/component": "dashboards" },
    });
    expect(Object.keys(cm["data"])).toEqual(["evaluator-operator.json"]);
    expect(
      cm["data"]["evaluator-operator.json"] === source,
      "the ConfigMap carries the dashboard as it is",
    ).toBe(true);

    // Another sidecar label, a folder annotation, the namespace Grafana watches.
    const custom = only(
      await render([
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "grafanaDashboard.label=example.com/dashboards",
        "--set-string",
        "grafanaDashboard.labelValue=iot",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=IoT",
      ]),
      "ConfigMap",
    );
    expect(custom.metadata.namespace).toBe("monitoring");
    expect(custom.metadata.labels).toMatchObject({ "example.com/dashboards": "iot" });
    expect(custom.metadata.labels?.["grafana_dashboard"]).toBeUndefined();
    expect(custom.metadata.annotations).toEqual({ grafana_folder: "IoT" });
    expect(
      await helmFailure(["template", "rel", chart, "--set", "grafanaDashboard.namespace=Not_A_Namespace"]),
    ).toContain("grafanaDashboard/namespace");
  });

  it("renders the migration hook Job only when enabled, with DATABASE_URL from the named Secret", async () => {
    expect(kinds(await render())).not.toContain("Job");
    const objects = await render([
      "--set",
      "migrations.enabled=true",
      "--set",
      "migrations.databaseSecretRef.name=evaluator-database",
    ]);
    const job = only(objects, "Job");
    expect(job.metadata.annotations?.["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
    const container = job["spec"].template.spec.containers[0];
    expect(container.command).toEqual(["node", "/app/operator/bin/evaluator-operator.ts"]);
    expect(container.args).toEqual(["migrate", "up"]);
    expect(container.env).toEqual([
      { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: "evaluator-database", key: "url" } } },
    ]);
    // The Job's pods must never count as operator pods (Service, PDB, anti-affinity).
    expect(job["spec"].template.metadata.labels["app.kubernetes.io/component"]).toBe("migrations");

    const err = await helmFailure(["template", "rel", chart, "--set", "migrations.enabled=true"]);
    expect(err).toContain("migrations.databaseSecretRef.name is required");
  });

  it("mounts tls.caSecret in the operator, relay and migration pods and names it TLS_CA_FILE; nothing without it", async () => {
    const all = [
      "--set",
      "migrations.enabled=true",
      "--set",
      "migrations.databaseSecretRef.name=evaluator-database",
      "--set",
      "events.relay.enabled=true",
      "--set",
      "events.relay.databaseSecretRef.name=evaluator-database",
      "--set",
      "events.relay.natsUrl=nats://nats:4222",
    ];
    const pods = (objects: Manifest[]) =>
      objects
        .filter((o) => o.kind === "Deployment" || o.kind === "Job")
        .map((o) => ({ name: `${o.kind}/${o.metadata.name}`, spec: o["spec"].template.spec }));
    const withCa = pods(await render([...all, "--set", "tls.caSecret.name=db-ca"]));
    expect(withCa.map((p) => p.name).sort()).toEqual([
      "Deployment/rel-evaluator-operator",
      "Deployment/rel-evaluator-operator-events-relay",
      "Job/rel-evaluator-operator-migrate",
    ]);
    for (const { name, spec } of withCa) {
      const container = spec.containers[0];
      expect(container.env, name).toContainEqual({ name: "TLS_CA_FILE", value: "/etc/evaluator/tls/ca.crt" });
      expect(container.volumeMounts, name).toContainEqual({
        name: "tls-ca",
        mountPath: "/etc/evaluator/tls",
        readOnly: true,
      });
      expect(spec.volumes, name).toContainEqual({
        name: "tls-ca",
        secret: { secretName: "db-ca", items: [{ key: "ca.crt", path: "ca.crt" }], defaultMode: 0o444 },
      });
    }
    const keyed = pods(
      await render([...all, "--set", "tls.caSecret.name=db-ca", "--set", "tls.caSecret.key=bundle.pem"]),
    );
    for (const { spec } of keyed) {
      expect(spec.volumes.find((v: { name: string }) => v.name === "tls-ca").secret.items).toEqual([
        { key: "bundle.pem", path: "ca.crt" },
      ]);
    }
    for (const { name, spec } of pods(await render(all))) {
      expect(JSON.stringify(spec), name).not.toMatch(/tls-ca|TLS_CA_FILE/);
    }

    expect(await helmFailure(["template", "rel", chart, "--set", "tls.caSecret.name=DB_CA"])).toContain(
      "tls.caSecret.name must be the name of a Secret in the release namespace",
    );
    expect(await helmFailure(["template", "rel", chart, "--set", "tls.caSecret.key=.."])).toContain(
      "tls.caSecret.key must be a key of that Secret",
    );
    expect(await helmFailure(["template", "rel", chart, "--set", "tls.caFile=/ca.pem"])).toContain(
      "additional properties 'caFile' not allowed",
    );
  });

  it.each([
    { field: "name", enabled: "false", value: "postgres://app:hunter2@db:5432/app" },
    { field: "name", enabled: "true", value: "host=db user=app password=hunter2" },
    { field: "key", enabled: "true", value: "postgres://app@db/app?password=hunter2" },
  ])("refuses a connection string as migrations.databaseSecretRef.$field without echoing it", async (c) => {
    // A template check, not a schema pattern (whose error would echo the value). helm lint logs a
    // template's fail without failing, so the render is what refuses it.
    const err = await helmFailure([
      "template",
      "rel",
      chart,
      "--set",
      `migrations.enabled=${c.enabled}`,
      "--set",
      "migrations.databaseSecretRef.name=evaluator-database",
      "--set-string",
      `migrations.databaseSecretRef.${c.field}=${c.value}`,
    ]);
    expect(err).toContain(`migrations.databaseSecretRef.${c.field} must be`);
    expect(err).toContain("never the URL itself");
    expect(err).not.toContain("hunter2");
  });

  it.each([
    { set: ["--set", "replicaCount=-1"], says: ["/replicaCount", "minimum"] },
    { set: ["--set", "image.tag=5"], says: ["/image/tag", "want string"] },
    { set: ["--set", "logLevel=verbose"], says: ["/logLevel", "must be one of"] },
    { set: ["--set", "watchNamespaces={Team_A}"], says: ["/watchNamespaces/0", "Team_A"] },
    { set: ["--set", "replicaKount=3"], says: ["replicaKount", "not allowed"] },
  ])("refuses $set.1 through values.schema.json, naming the value", async ({ set, says }) => {
    const err = await helmFailure(["template", "rel", chart, ...set]);
    expect(err).toContain("values don't meet the specifications of the schema");
    for (const s of says) expect(err).toContain(s);
  });

  it("renders the alert-event relay only when enabled: one Recreate replica of `events relay`, its URLs from Secrets", async () => {
    const relayName = "rel-evaluator-operator-events-relay";
    expect((await render()).filter((o) => o.metadata.name === relayName)).toEqual([]);
    const objects = await render([
      "--set",
      "events.relay.enabled=true",
      "--set",
      "events.relay.databaseSecretRef.name=evaluator-database",
      "--set",
      "events.relay.natsSecretRef.name=nats-client",
      "--set",
      "events.relay.subjectPrefix=iot.alerts",
    ]);
    const relay = only(objects, "Deployment", relayName);
    expect(relay["spec"].replicas).toBe(1);
    expect(relay["spec"].strategy).toEqual({ type: "Recreate" });
    const pod = relay["spec"].template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    // Never an operator pod (Service, PDB, NetworkPolicy select component=operator).
    expect(relay["spec"].selector.matchLabels["app.kubernetes.io/component"]).toBe("events-relay");
    const container = pod.containers[0];
    expect(container.command).toEqual(["node", "/app/operator/bin/evaluator-operator.ts"]);
    expect(container.args.slice(0, 5)).toEqual([
      "events",
      "relay",
      "--name=default",
      "--stream=ALERT_EVENTS",
      "--subject-prefix=iot.alerts",
    ]);
    expect(container.env).toEqual([
      { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: "evaluator-database", key: "url" } } },
      { name: "NATS_URL", valueFrom: { secretKeyRef: { name: "nats-client", key: "url" } } },
    ]);
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });

    const noDb = await helmFailure(["template", "rel", chart, "--set", "events.relay.enabled=true"]);
    expect(noDb).toContain("events.relay.databaseSecretRef.name is required");
    const noNats = await helmFailure([
      "template",
      "rel",
      chart,
      "--set",
      "events.relay.enabled=true",
      "--set",
      "events.relay.databaseSecretRef.name=evaluator-database",
    ]);
    expect(noNats).toContain("events.relay.natsUrl (or events.relay.natsSecretRef.name) is required");
    const badPrefix = await helmFailure([
      "template",
      "rel",
      chart,
      "--set",
      "events.relay.subjectPrefix=a.*",
    ]);
    expect(badPrefix).toContain("/events/relay/subjectPrefix");
  });

  it("refuses several replicas without leader election, saying why", async () => {
    const err = await helmFailure(["template", "rel", chart, "--set", "leaderElection.enabled=false"]);
    expect(err).toContain("replicaCount is 2 but leaderElection.enabled is false");
  });

  it.each([
    {
      release: "rel",
      set: ["leaderElection.leaseDuration=10s"],
      says: "leaderElection.leaseDuration must be greater than leaderElection.renewDeadline",
    },
    {
      release: "rel",
      set: ["leaderElection.leaseDuration=30s", "leaderElection.renewDeadline=1m"],
      says: "leaderElection.leaseDuration must be greater than leaderElection.renewDeadline",
    },
    {
      release: "rel",
      set: ["leaderElection.retryPeriod=8500ms"],
      says: "leaderElection.renewDeadline must be greater than 1.2 × leaderElection.retryPeriod",
    },
    {
      release: "rel",
      set: ["leaderElection.retryPeriod=0s"],
      says: "leaderElection.retryPeriod must be at least 100ms",
    },
    {
      release: "rel",
      set: ["fullnameOverride=1bad.name"],
      says: "fullnameOverride must be a DNS-1035 label",
    },
    { release: "rel", set: ["fullnameOverride=bad.name"], says: "fullnameOverride must be a DNS-1035 label" },
    { release: "1rel", set: [], says: "the release name (with nameOverride) must make a DNS-1035 label" },
  ])("refuses $set in release $release with a fixed message", async ({ release, set, says }) => {
    const err = await helmFailure(["template", release, chart, ...set.flatMap((v) => ["--set", v])]);
    expect(err).toContain(says);
  });

  it("accepts leader-election timings in client-go's order, short ones too", async () => {
    const objects = await render([
      "--set",
      "leaderElection.leaseDuration=4s",
      "--set",
      "leaderElection.renewDeadline=3s",
      "--set",
      "leaderElection.retryPeriod=500ms",
    ]);
    expect(only(objects, "Deployment")["spec"].template.spec.containers[0].args).toContain(
      "--leader-election-retry-period=500ms",
    );
  });

  it("keeps a 48-character release's names within their limits, the suffixes whole", async () => {
    const release = "r".repeat(48);
    const out = await helm([
      "template",
      release,
      chart,
      "--namespace",
      "evaluator-system",
      "--set",
      "migrations.enabled=true",
      "--set",
      "migrations.databaseSecretRef.name=db",
    ]);
    const objects = k8s.loadAllYaml(out).filter(Boolean) as Manifest[];
    const fullname = `${release}-evaluator-oper`; // "<release>-evaluator-operator" cut to 63
    expect(only(objects, "Deployment").metadata.name).toBe(fullname);
    expect(only(objects, "Service").metadata.name).toBe(`${release}-evalua-metrics`);
    expect(only(objects, "Job").metadata.name).toBe(`${release}-evalua-migrate`);
    for (const o of objects) {
      // DNS-1035/1123 labels (Service, a Job's job-name label, Deployment) or subdomains (the rest).
      const limit = ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"].includes(o.kind) ? 253 : 63;
      expect(o.metadata.name.length, `${o.kind} ${o.metadata.name}`).toBeLessThanOrEqual(limit);
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
  });
});

/** `kubectl auth can-i` as the chart's ServiceAccount: "yes" or "no". */
async function canI(sa: { namespace: string; name: string }, args: string[]): Promise<string> {
  const as = `--as=system:serviceaccount:${sa.namespace}:${sa.name}`;
  try {
    return (await kubectl(["auth", "can-i", ...args, as])).trim();
  } catch (err) {
    // can-i exits 1 when the answer is "no".
    const stdout = String((err as { stdout?: unknown }).stdout ?? "").trim();
    if (stdout === "no") return stdout;
    throw err;
  }
}

describe("the chart, installed on the local apiserver", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  beforeAll(async () => {
    // Idempotent, shared with the other suites, never deleted.
    await installCrd();
  });

  /** A fresh namespace and a release name nobody else uses; removed (with the release) afterwards. */
  async function fresh(label: string): Promise<{ ns: string; release: string }> {
    const ns = await createTestNamespace(kc, label);
    const release = `eo-${randomBytes(3).toString("hex")}`;
    cleanups.push(() => ns.remove());
    cleanups.push(() =>
      // If the test failed before uninstalling, cluster-scoped leftovers would outlive the namespace.
      kubectl(["delete", "clusterrole,clusterrolebinding", "-l", `app.kubernetes.io/instance=${release}`]),
    );
    cleanups.push(() => helm(["uninstall", release, "--namespace", ns.name, "--wait", "--timeout", "60s"]));
    return { ns: ns.name, release };
  }

  async function install(release: string, ns: string, extra: string[] = []): Promise<void> {
    await helm([
      "install",
      release,
      chart,
      "--namespace",
      ns,
      "--skip-crds",
      "--wait=watcher",
      "--timeout",
      "120s",
      "--set",
      `image.repository=${TEST_IMAGE}`,
      ...extra,
    ]);
  }

  async function runningPods(ns: string, release: string): Promise<k8s.V1Pod[]> {
    const selector = `app.kubernetes.io/instance=${release},app.kubernetes.io/component=operator`;
    return eventually(
      async () => {
        const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: selector })).items;
        const running = pods.filter(
          (p) =>
            p.status?.phase === "Running" &&
            p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return running.length === 2 ? running : undefined;
      },
      { what: `2 Running operator pods of ${release}` },
    );
  }

  async function gone(probe: () => Promise<unknown>, what: string): Promise<void> {
    await eventually(
      async () => {
        try {
          await probe();
          return undefined;
        } catch (err) {
          if (statusCode(err) === 404) return true;
          throw err;
        }
      },
      { what: `${what} to be deleted` },
    );
  }

  it("refuses bad values at helm install and installs nothing", async () => {
    const { ns, release } = await fresh("helm-bad");
    const err = await helmFailure([
      "install",
      release,
      chart,
      "--namespace",
      ns,
      "--skip-crds",
      "--set",
      "replicaCount=-1",
    ]);
    expect(err).toContain("at '/replicaCount'");
    expect(await helmFailure(["status", release, "--namespace", ns])).toContain("not found");
  });

  it("renders, for a 48-character release name, objects the apiserver accepts (server-side dry run)", async () => {
    const ns = await createTestNamespace(kc, "helm-long");
    cleanups.push(() => ns.remove());
    const out = await helm([
      "template",
      "r".repeat(48),
      chart,
      "--namespace",
      ns.name,
      "--set",
      "migrations.enabled=true",
      "--set",
      "migrations.databaseSecretRef.name=db",
    ]);
    // Nothing is created: the apiserver validates every object (names, labels) and discards it.
    const applied = await kubectl(["apply", "--dry-run=server", "-n", ns.name, "-f", "-"], out);
    for (const kind of ["service", "job.batch", "deployment.apps", "role.rbac.authorization.k8s.io"]) {
      expect(applied).toMatch(
        new RegExp(`^${kind.replace(/\./g, "\\.")}/\\S+ created \\(server dry run\\)$`, "m"),
      );
    }
  });

  it("renders NetworkPolicies the apiserver accepts (server-side dry run)", async () => {
    const release = await createTestNamespace(kc, "helm-np");
    const watched = await createTestNamespace(kc, "helm-np-watched");
    cleanups.push(
      () => release.remove(),
      () => watched.remove(),
    );
    const out = await helm([
      "template",
      "rel",
      chart,
      "--namespace",
      release.name,
      "--set",
      "networkPolicy.enabled=true",
      "--set",
      `watchNamespaces={${watched.name}}`,
      "--set",
      "networkPolicy.operator.egress.apiServer.to[0].ipBlock.cidr=10.0.0.10/32",
      "--set",
      "networkPolicy.operator.metricsFrom[0].podSelector.matchLabels.app=prometheus",
      "--show-only",
      "templates/networkpolicy.yaml",
    ]);
    const applied = await kubectl(["apply", "--dry-run=server", "-f", "-"], out);
    expect(applied.trim().split("\n").sort()).toEqual([
      "networkpolicy.networking.k8s.io/rel-evaluator-operator created (server dry run)",
      "networkpolicy.networking.k8s.io/rel-evaluator-operator-shards created (server dry run)",
    ]);
  });

  it("installs cluster-wide: the operator runs, its ServiceAccount can do exactly its job, uninstall removes it", async () => {
    const { ns, release } = await fresh("helm-cluster");
    await install(release, ns);
    const fullname = `${release}-evaluator-operator`;
    const sa = { namespace: ns, name: fullname };

    await core.readNamespacedServiceAccount({ name: fullname, namespace: ns });
    const clusterRole = await rbac.readClusterRole({ name: `${ns}-${fullname}` });
    expect(clusterRole.rules?.map((r) => r.resources?.[0])).toContain("evaluatorshardsets/status");
    const binding = await rbac.readClusterRoleBinding({ name: `${ns}-${fullname}` });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: fullname, namespace: ns }]);
    await rbac.readNamespacedRole({ name: `${fullname}-leader-election`, namespace: ns });

    const deployment = await apps.readNamespacedDeployment({ name: fullname, namespace: ns });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(`${TEST_IMAGE}:0.1.0`);
    const pods = await runningPods(ns, release);
    for (const p of pods) expect(p.spec?.nodeName, `pod ${p.metadata?.name} scheduled`).toBeTruthy();
    const service = await core.readNamespacedService({ name: `${fullname}-metrics`, namespace: ns });
    expect(service.spec?.ports?.[0]?.port).toBe(8080);

    // Any namespace: the operator watches them all.
    for (const where of [ns, "default"]) {
      expect(
        await canI(sa, [
          "patch",
          "evaluatorshardsets.evaluator.iot.dev",
          "--subresource=status",
          "-n",
          where,
        ]),
      ).toBe("yes");
      expect(await canI(sa, ["watch", "evaluatorshardsets.evaluator.iot.dev", "-n", where])).toBe("yes");
      expect(
        await canI(sa, [
          "update",
          "evaluatorshardsets.evaluator.iot.dev",
          "--subresource=finalizers",
          "-n",
          where,
        ]),
      ).toBe("yes");
      expect(await canI(sa, ["create", "deployments.apps", "-n", where])).toBe("yes");
      expect(await canI(sa, ["delete", "deployments.apps", "-n", where])).toBe("yes");
      expect(await canI(sa, ["create", "events", "-n", where])).toBe("yes");
      expect(await canI(sa, ["get", "secrets", "-n", where])).toBe("yes");
      // Least privilege: never the spec, never listing or changing Secrets, nothing else.
      expect(await canI(sa, ["delete", "secrets", "-n", where])).toBe("no");
      // Nor the verbs the operator never uses (test/e2e/rbac.test.ts).
      expect(await canI(sa, ["get", "evaluatorshardsets.evaluator.iot.dev", "-n", where])).toBe("no");
      expect(await canI(sa, ["update", "deployments.apps", "-n", where])).toBe("no");
      expect(await canI(sa, ["patch", "events", "-n", where])).toBe("no");
      expect(await canI(sa, ["list", "secrets", "-n", where])).toBe("no");
      expect(await canI(sa, ["update", "evaluatorshardsets.evaluator.iot.dev", "-n", where])).toBe("no");
      expect(await canI(sa, ["create", "pods", "-n", where])).toBe("no");
    }
    // Leases: its own, in the release namespace only.
    expect(await canI(sa, ["create", "leases.coordination.k8s.io", "-n", ns])).toBe("yes");
    expect(await canI(sa, ["update", `leases.coordination.k8s.io/${fullname}-leader`, "-n", ns])).toBe("yes");
    expect(await canI(sa, ["update", "leases.coordination.k8s.io/someone-else", "-n", ns])).toBe("no");
    expect(await canI(sa, ["create", "leases.coordination.k8s.io", "-n", "default"])).toBe("no");

    await helm(["uninstall", release, "--namespace", ns, "--wait", "--timeout", "60s"]);
    await gone(() => rbac.readClusterRole({ name: `${ns}-${fullname}` }), "the ClusterRole");
    await gone(() => rbac.readClusterRoleBinding({ name: `${ns}-${fullname}` }), "the ClusterRoleBinding");
    await gone(() => apps.readNamespacedDeployment({ name: fullname, namespace: ns }), "the Deployment");
    await gone(
      () => core.readNamespacedServiceAccount({ name: fullname, namespace: ns }),
      "the ServiceAccount",
    );
    expect(await helmFailure(["status", release, "--namespace", ns])).toContain("not found");
  });

  it("installs for watched namespaces only: Roles there, nothing cluster-wide", async () => {
    const { ns, release } = await fresh("helm-ns");
    const watched = await createTestNamespace(kc, "helm-watched");
    cleanups.push(() => watched.remove());
    await install(release, ns, ["--set", `watchNamespaces={${watched.name}}`]);
    const fullname = `${release}-evaluator-operator`;
    const sa = { namespace: ns, name: fullname };

    await runningPods(ns, release);
    const clusterRoles = await rbac.listClusterRole({
      labelSelector: `app.kubernetes.io/instance=${release}`,
    });
    expect(clusterRoles.items).toEqual([]);
    const role = await rbac.readNamespacedRole({ name: fullname, namespace: watched.name });
    expect(role.rules?.find((r) => r.resources?.includes("deployments"))?.verbs).toContain("create");

    expect(
      await canI(sa, [
        "patch",
        "evaluatorshardsets.evaluator.iot.dev",
        "--subresource=status",
        "-n",
        watched.name,
      ]),
    ).toBe("yes");
    expect(await canI(sa, ["create", "deployments.apps", "-n", watched.name])).toBe("yes");
    expect(await canI(sa, ["delete", "secrets", "-n", watched.name])).toBe("no");
    // Outside the watched namespace: nothing.
    for (const other of ["default", ns]) {
      expect(await canI(sa, ["list", "evaluatorshardsets.evaluator.iot.dev", "-n", other])).toBe("no");
      expect(await canI(sa, ["create", "deployments.apps", "-n", other])).toBe("no");
      expect(await canI(sa, ["get", "secrets", "-n", other])).toBe("no");
    }

    await helm(["uninstall", release, "--namespace", ns, "--wait", "--timeout", "60s"]);
    await gone(
      () => rbac.readNamespacedRole({ name: fullname, namespace: watched.name }),
      "the watched Role",
    );
    await gone(() => apps.readNamespacedDeployment({ name: fullname, namespace: ns }), "the Deployment");
  });
});
