import type * as k8s from "@kubernetes/client-node";
import {
  ANNOTATIONS,
  API_VERSION,
  DEFAULTS,
  type EvaluatorShardSet,
  KIND,
  LABELS,
  MANAGED_BY,
  TLS_CA_PATH,
} from "../api/types.ts";
import { inputHash } from "./hash.ts";
import { shardDeploymentName } from "./names.ts";

/** Settings of the operator (not of the resource) that shape every shard Deployment. */
export interface ShardDeploymentConfig {
  /** Port of the evaluator's /metrics, /healthz and /readyz. */
  readonly metricsPort: number;
  /**
   * Whether the shard pods run as spec.evaluator.serviceAccountName (default true). False
   * (`--no-service-account-passthrough`): they run as the namespace's `default` ServiceAccount,
   * whatever the set says.
   */
  readonly serviceAccountPassthrough?: boolean;
}

export const DEFAULT_SHARD_DEPLOYMENT_CONFIG: ShardDeploymentConfig = { metricsPort: 9464 };

/** What the operator's own environment variables of a shard are computed from. */
interface OperatorEnvInput {
  readonly set: EvaluatorShardSet;
  readonly index: number;
  readonly cfg: ShardDeploymentConfig;
}

const secretKeyRef = (ref: { name: string; key?: string }): k8s.V1EnvVarSource => ({
  secretKeyRef: { name: ref.name, key: ref.key ?? DEFAULTS.secretKey },
});

/** The volume of spec.evaluator.tls.caSecretRef in a shard pod. */
const TLS_CA_VOLUME = "tls-ca";

/**
 * Every environment variable the operator sets on a shard's container, in order, each from the
 * resource or the operator's settings; one whose function returns undefined is not set on that
 * shard (and stays reserved). Its names are {@link RESERVED_ENV}.
 */
const OPERATOR_ENV = {
  SHARD_INDEX: ({ index }) => ({ value: String(index) }),
  SHARD_SET: ({ set }) => ({ value: `${set.metadata.namespace}/${set.metadata.name}` }),
  DATABASE_URL: ({ set }) => ({ valueFrom: secretKeyRef(set.spec.evaluator.databaseSecretRef) }),
  VALKEY_URL: ({ set }) => ({ valueFrom: secretKeyRef(set.spec.evaluator.valkeySecretRef) }),
  TICK_INTERVAL_SECONDS: ({ set }) => ({
    value: String(set.spec.evaluator.tickIntervalSeconds ?? DEFAULTS.tickIntervalSeconds),
  }),
  TENANT_BUDGET_MS: ({ set }) => ({
    value: String(set.spec.evaluator.tenantBudgetMs ?? DEFAULTS.tenantBudgetMs),
  }),
  CONCURRENCY: ({ set }) => ({ value: String(set.spec.evaluator.concurrency ?? DEFAULTS.concurrency) }),
  LOG_LEVEL: ({ set }) => ({ value: set.spec.evaluator.logLevel ?? "info" }),
  METRICS_PORT: ({ cfg }) => ({ value: String(cfg.metricsPort) }),
  // Only with a CA Secret: sets without one keep the pod template they had before the field existed.
  TLS_CA_FILE: ({ set }) => (set.spec.evaluator.tls?.caSecretRef ? { value: TLS_CA_PATH } : undefined),
} satisfies Record<string, (input: OperatorEnvInput) => Omit<k8s.V1EnvVar, "name"> | undefined>;

/** A name of {@link RESERVED_ENV}. */
export type ReservedEnvName = keyof typeof OPERATOR_ENV;

/**
 * The environment variables the operator sets itself, exactly: extraEnv may not name them (a second
 * entry of a name makes server-side apply refuse the Deployment). The CRD's CEL rules on
 * spec.evaluator.extraEnv list the same names; a unit test keeps the two equal.
 */
export const RESERVED_ENV: readonly ReservedEnvName[] = Object.freeze(
  Object.keys(OPERATOR_ENV) as ReservedEnvName[],
);

/**
 * Resources of the evaluator container when spec.evaluator.resources sets neither a request nor a
 * limit (a pod without any is BestEffort: evicted first, and free to take all of a node's memory).
 * Sized on the benchmark (evaluator README: 1,000 tenants × 200 devices × 2 rules, 400,000 pairs a
 * 60 s tick): 1.65–2.1 CPU-seconds a tick, about 30m on average, in bursts of a few seconds, and a
 * peak RSS of 580–750 MiB (benchmark harness included).
 * - cpu request 100m: several times that average, so the scheduler spreads shards; a tick's burst
 *   runs on the node's idle CPU above it.
 * - no cpu limit: CFS throttling would stretch every tick's burst, and tick latency is what the
 *   autoscaler reads as load.
 * - memory limit 1Gi: above that peak, with room for the largest tenants the default tenant limits
 *   let through (a 50,000-pair plan takes 15–25 MB, 200,000 readings about 70 MB of heap, up to
 *   CONCURRENCY of them at once), so only a leak or a far larger shard reaches it.
 * - memory request 512Mi: half the limit (Burstable), so a node is not reserved for peaks that the
 *   shards on it seldom reach together.
 * Any request or limit set in the resource replaces all of these: a partial merge could put a
 * default limit below a request the resource sets, which the apiserver refuses.
 */
export const DEFAULT_SHARD_RESOURCES: Readonly<k8s.V1ResourceRequirements> = Object.freeze({
  requests: Object.freeze({ cpu: "100m", memory: "512Mi" }),
  limits: Object.freeze({ memory: "1Gi" }),
});

/** The evaluator container's resources: the resource's, or {@link DEFAULT_SHARD_RESOURCES} when it sets none. */
function shardResources(
  resources: EvaluatorShardSet["spec"]["evaluator"]["resources"],
): k8s.V1ResourceRequirements {
  const given = (m: Record<string, unknown> | undefined) => m !== undefined && Object.keys(m).length > 0;
  if (resources && (given(resources.requests) || given(resources.limits))) {
    return resources as k8s.V1ResourceRequirements;
  }
  return {
    requests: { ...DEFAULT_SHARD_RESOURCES.requests },
    limits: { ...DEFAULT_SHARD_RESOURCES.limits },
  };
}

/**
 * The whole desired Deployment of shard `index`: labels, owner reference, pod template and an
 * input-hash annotation. Pure: no I/O, no clock.
 *
 * The pod template depends on the set's evaluator spec and the shard index only, never on the
 * shard count or epoch: the evaluator reads those from `shard_sets` at run time, so a resize
 * leaves the pod templates of the shards that stay byte-identical and restarts none of them.
 */
export function buildShardDeployment(
  set: EvaluatorShardSet,
  index: number,
  cfg: ShardDeploymentConfig = DEFAULT_SHARD_DEPLOYMENT_CONFIG,
): k8s.V1Deployment {
  const { name, namespace, uid } = set.metadata;
  const ev = set.spec.evaluator;
  const tenantBudgetMs = ev.tenantBudgetMs ?? DEFAULTS.tenantBudgetMs;

  const selectorLabels = { [LABELS.shardSet]: name, [LABELS.shard]: String(index) };
  const labels = {
    [LABELS.name]: "evaluator",
    [LABELS.instance]: name,
    [LABELS.component]: "shard",
    [LABELS.managedBy]: MANAGED_BY,
    ...selectorLabels,
  };

  const reserved = new Set<string>(RESERVED_ENV);
  const env: k8s.V1EnvVar[] = [
    ...RESERVED_ENV.flatMap((envName) => {
      const value = OPERATOR_ENV[envName]({ set, index, cfg });
      return value === undefined ? [] : [{ name: envName, ...value }];
    }),
    // The schema refuses reserved names; filtering again keeps an object stored before a name was
    // reserved from overriding it (or from doubling it, which server-side apply refuses).
    ...(ev.extraEnv ?? []).filter((e) => !reserved.has(e.name)).map((e) => ({ ...e }) as k8s.V1EnvVar),
  ];

  const probe = (path: string, periodSeconds: number, failureThreshold: number): k8s.V1Probe => ({
    httpGet: { path, port: "metrics" as unknown as k8s.IntOrString },
    periodSeconds,
    timeoutSeconds: 2,
    failureThreshold,
  });

  const podSpec: k8s.V1PodSpec = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    // A shard finishes its running tenant on SIGTERM: allow one tenant budget plus slack.
    terminationGracePeriodSeconds: Math.ceil(tenantBudgetMs / 1000) + 15,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    },
    containers: [
      {
        name: "evaluator",
        image: ev.image,
        imagePullPolicy: ev.imagePullPolicy ?? "IfNotPresent",
        args: ["run"],
        env,
        ports: [{ name: "metrics", containerPort: cfg.metricsPort, protocol: "TCP" }],
        startupProbe: probe("/healthz", 2, 30),
        livenessProbe: probe("/healthz", 10, 3),
        readinessProbe: probe("/readyz", 5, 2),
        resources: shardResources(ev.resources),
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          privileged: false,
          capabilities: { drop: ["ALL"] },
        },
        volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
      },
    ],
    volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" as unknown as string } }],
  };
  const caRef = ev.tls?.caSecretRef;
  if (caRef) {
    // The kubelet mounts the one key as TLS_CA_PATH: the operator itself never reads this Secret.
    // Not optional: a missing Secret or key keeps the pod from starting (an event on the pod says
    // which), rather than an evaluator starting without the CA its URLs ask for.
    const dir = TLS_CA_PATH.slice(0, TLS_CA_PATH.lastIndexOf("/"));
    const file = TLS_CA_PATH.slice(dir.length + 1);
    podSpec.containers[0]!.volumeMounts!.push({ name: TLS_CA_VOLUME, mountPath: dir, readOnly: true });
    podSpec.volumes!.push({
      name: TLS_CA_VOLUME,
      secret: {
        secretName: caRef.name,
        items: [{ key: caRef.key ?? DEFAULTS.caSecretKey, path: file }],
        defaultMode: 0o444,
      },
    });
  }
  if (ev.nodeSelector) podSpec.nodeSelector = { ...ev.nodeSelector };
  if (ev.tolerations) podSpec.tolerations = ev.tolerations as k8s.V1Toleration[];
  if (ev.affinity) podSpec.affinity = ev.affinity as k8s.V1Affinity;
  if (ev.priorityClassName) podSpec.priorityClassName = ev.priorityClassName;
  // Always named, `default` when the set names none or passthrough is off: a name applied earlier
  // would otherwise linger in the template's deprecated `serviceAccount` alias, which the apiserver
  // reads when serviceAccountName is empty (removing it from the set would change nothing).
  podSpec.serviceAccountName =
    cfg.serviceAccountPassthrough !== false && ev.serviceAccountName ? ev.serviceAccountName : "default";

  const deployment: k8s.V1Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: shardDeploymentName(name, index),
      namespace,
      labels,
      ownerReferences: [
        { apiVersion: API_VERSION, kind: KIND, name, uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      replicas: 1,
      revisionHistoryLimit: 3,
      selector: { matchLabels: selectorLabels },
      // The tick lease makes two pods of one shard safe, so roll with a surge and no gap.
      strategy: {
        type: "RollingUpdate",
        rollingUpdate: { maxSurge: 1 as never, maxUnavailable: 0 as never },
      },
      template: {
        metadata: {
          labels,
          annotations: {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(cfg.metricsPort),
            ...(ev.podAnnotations ?? {}),
          },
        },
        spec: podSpec,
      },
    },
  };
  deployment.metadata!.annotations = { [ANNOTATIONS.inputHash]: inputHash(deployment) };
  return deployment;
}
