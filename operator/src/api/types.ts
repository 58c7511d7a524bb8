/**
 * The EvaluatorShardSet resource (group evaluator.iot.dev, version v1alpha1) as the operator sees it.
 * The CRD schema in crds/ is the source of truth for validation and defaults; these types mirror it.
 * Fields the apiserver defaults are still optional here, because a controller must tolerate objects
 * written before a default existed.
 */

export const GROUP = "evaluator.iot.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "EvaluatorShardSet";
export const PLURAL = "evaluatorshardsets";

/** `Off`: spec.shards obeyed. `Recommend`: spec.shards obeyed, status.recommendedShards computed. `Auto`: autoscaler decides. */
export type AutoscalingMode = "Off" | "Recommend" | "Auto";

export interface SecretKeyRef {
  /** Name of a Secret in the EvaluatorShardSet's namespace. */
  name: string;
  /** Key inside the Secret (default `url`). */
  key?: string;
}

export interface ScalingBehavior {
  /** How long a recommendation must hold before it is acted on. */
  stabilizationWindowSeconds?: number;
  /** At most this many shards added (scaleUp) or removed (scaleDown) per period. */
  maxShardsChange?: number;
  /** Length of the period for maxShardsChange. */
  periodSeconds?: number;
}

/** Credentials for a secured Prometheus, from one Secret in the set's namespace (every key optional). */
export interface PrometheusAuth {
  /** Name of the Secret. */
  name: string;
  /** Key holding a bearer token (sent as `Authorization: Bearer`). */
  bearerTokenKey?: string;
  /** Keys holding a basic-auth user name and password. */
  usernameKey?: string;
  passwordKey?: string;
  /** Key holding a PEM CA bundle that signs Prometheus's https certificate. */
  caKey?: string;
}

export interface PrometheusSource {
  url: string;
  /** Per-query timeout. */
  timeoutSeconds?: number;
  authSecretRef?: PrometheusAuth;
  /** PromQL; `{{namespace}}` and `{{name}}` are substituted. Result: total queued tenant evaluations. */
  queueDepthQuery?: string;
  /** PromQL; `{{namespace}}` and `{{name}}` are substituted. Result: p95 tick duration in seconds. */
  tickLatencyQuery?: string;
}

export interface AutoscalingSpec {
  mode?: AutoscalingMode;
  minShards?: number;
  maxShards?: number;
  targets?: {
    queueDepthPerShard?: number;
    tickLatencySeconds?: number;
    /** Tenant load (devices × rules) one shard carries at target: a floor sized before metrics exist. */
    loadPerShard?: number;
  };
  /** No reshard starts sooner than this after the previous one finished. */
  minReshardIntervalSeconds?: number;
  tolerance?: number;
  scaleUp?: ScalingBehavior;
  scaleDown?: ScalingBehavior;
  prometheus?: PrometheusSource;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

export interface EvaluatorSpec {
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  resources?: {
    limits?: Record<string, string | number>;
    requests?: Record<string, string | number>;
  };
  tickIntervalSeconds?: number;
  tenantBudgetMs?: number;
  concurrency?: number;
  logLevel?: "trace" | "debug" | "info" | "warn" | "error";
  nodeSelector?: Record<string, string>;
  tolerations?: Record<string, unknown>[];
  affinity?: Record<string, unknown>;
  priorityClassName?: string;
  serviceAccountName?: string;
  podAnnotations?: Record<string, string>;
  extraEnv?: EnvVar[];
  databaseSecretRef: SecretKeyRef;
  valkeySecretRef: SecretKeyRef;
  /** TLS trust of the evaluators' connections (PostgreSQL with sslmode in its URL, Valkey with rediss://). */
  tls?: EvaluatorTls;
}

export interface EvaluatorTls {
  /**
   * A key of a Secret holding a PEM bundle of CA certificates (default key `ca.crt`), mounted in
   * every shard pod as {@link TLS_CA_PATH} and named by env `TLS_CA_FILE`.
   */
  caSecretRef?: SecretKeyRef;
}

/** Where a shard pod finds spec.evaluator.tls.caSecretRef's CA bundle (env `TLS_CA_FILE`). */
export const TLS_CA_PATH = "/etc/evaluator/tls/ca.crt";

export interface EvaluatorShardSetSpec {
  /** Shard count when autoscaling is off or only recommending (the GitOps knob, and what `kubectl scale` sets). */
  shards?: number;
  paused?: boolean;
  autoscaling?: AutoscalingSpec;
  evaluator: EvaluatorSpec;
  database: { secretRef: SecretKeyRef };
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** A reshard that is in flight; persisted so a restarted operator resumes it (see reconcile/reshard). */
export interface ReshardProgress {
  phase: "ScalingUp" | "MovingTenants" | "Draining";
  from: number;
  to: number;
  startedAt: string;
  /** Epoch written by the commit (set once MovingTenants is done). */
  epoch?: number;
  /** When tenants were committed to the new shards; removed shards are deleted one tick interval later. */
  committedAt?: string;
  moved?: number;
  movedLoad?: number;
  minimumMovedLoad?: number;
}

export interface LastReshard {
  from: number;
  to: number;
  moved: number;
  movedLoad: number;
  minimumMovedLoad?: number;
  durationSeconds: number;
  finishedAt: string;
}

export interface AutoscalerStatus {
  /** The last decision, with the numbers that drove it. */
  reason?: string;
  /** What held the decision back from the recommendation (AtMaximum, Stabilizing, Hysteresis…). */
  limits?: string[];
  /** Recommendations within the longest stabilization window, oldest first. */
  recommendations?: { at: string; shards: number }[];
  /** Count changes within the longest scaling period, oldest first. */
  changes?: { at: string; from: number; to: number }[];
}

export interface EvaluatorShardSetStatus {
  observedGeneration?: number;
  shards?: number;
  desiredShards?: number;
  recommendedShards?: number;
  readyShards?: number;
  tenants?: number;
  epoch?: number;
  selector?: string;
  lastScaleTime?: string;
  reshard?: ReshardProgress;
  lastReshard?: LastReshard;
  metrics?: {
    queueDepth?: number;
    tickLatencyP95Seconds?: number;
    readAt?: string;
  };
  /** The autoscaler's last decision and what it remembers between reconciles (its windows). */
  autoscaler?: AutoscalerStatus;
  conditions?: Condition[];
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  /** Typed as client-node types it; custom objects carry the raw RFC 3339 string (read with `new Date(…)`). */
  creationTimestamp?: Date;
  /** Set once deletion started (custom objects carry the raw RFC 3339 string; only presence matters). */
  deletionTimestamp?: Date;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface EvaluatorShardSet {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: EvaluatorShardSetSpec;
  status?: EvaluatorShardSetStatus;
}

/** Defaults, mirrored from the CRD schema (the apiserver applies them; the operator falls back to them). */
export const DEFAULTS = {
  shards: 1,
  tickIntervalSeconds: 60,
  tenantBudgetMs: 5000,
  concurrency: 8,
  secretKey: "url",
  /** Key of spec.evaluator.tls.caSecretRef when it names none (cert-manager's and kubernetes.io/tls's name). */
  caSecretKey: "ca.crt",
  minShards: 1,
  maxShards: 16,
  tolerance: 0.1,
  queueDepthPerShard: 10,
  tickLatencySeconds: 30,
  queueDepthQuery:
    'max by (shard) (max_over_time(evaluator_queue_depth_held{namespace="{{namespace}}",shardset="{{name}}"}[2m]))',
  tickLatencyQuery:
    'histogram_quantile(0.95, sum by (shard, le) (rate(evaluator_tick_duration_seconds_bucket{namespace="{{namespace}}",shardset="{{name}}"}[5m])))',
} as const;

/** Labels on every object the operator creates for a shard set. */
export const LABELS = {
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  component: "app.kubernetes.io/component",
  managedBy: "app.kubernetes.io/managed-by",
  shardSet: "evaluator.iot.dev/shardset",
  shard: "evaluator.iot.dev/shard",
} as const;

export const ANNOTATIONS = {
  /** Hash of everything the Deployment builder consumed; equal hash means nothing to apply. */
  inputHash: "evaluator.iot.dev/input-hash",
} as const;

export const MANAGED_BY = "evaluator-operator";
/** The one server-side-apply field manager of the operator. */
export const FIELD_MANAGER = "evaluator-operator";
