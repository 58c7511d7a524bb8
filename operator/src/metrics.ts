import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { EvaluatorShardSet } from "./api/types.ts";
import type { AutoscaleDecision, SignalReadings } from "./autoscale/types.ts";
import type { QueueMetrics } from "./controller/workQueue.ts";
import { shardSetSeries } from "./status/shardSetSeries.ts";

/**
 * The operator's own metrics, named like controller-runtime's so existing dashboards work.
 * Registered on the registry passed in (never prom-client's global default registry).
 */
export function createOperatorMetrics(registry: Registry, controller = "evaluatorshardset") {
  const reconcileTotal = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Total number of reconciliations per controller and result.",
    labelNames: ["controller", "result"] as const,
    registers: [registry],
  });
  const reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Total number of reconciliation errors per controller.",
    labelNames: ["controller"] as const,
    registers: [registry],
  });
  const reconcileTime = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Length of time per reconciliation per controller.",
    labelNames: ["controller"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const queueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Current depth of the work queue.",
    labelNames: ["name"] as const,
    registers: [registry],
  });
  const queueAdds = new Counter({
    name: "workqueue_adds_total",
    help: "Total number of adds handled by the work queue.",
    labelNames: ["name"] as const,
    registers: [registry],
  });
  const queueRetries = new Counter({
    name: "workqueue_retries_total",
    help: "Total number of retries handled by the work queue.",
    labelNames: ["name"] as const,
    registers: [registry],
  });
  const leader = new Gauge({
    name: "leader_election_master_status",
    help: "1 when this process is the leader, 0 otherwise.",
    labelNames: ["name"] as const,
    registers: [registry],
  });
  const informerRestarts = new Counter({
    name: "evaluator_operator_informer_restarts_total",
    help: "Informers restarted after a watch or list error.",
    labelNames: ["resource"] as const,
    registers: [registry],
  });
  // Every set of the cache has the two reshard counters from the first scrape, so its first reshard
  // is an increase (rate() and increase() miss the increment that creates a series).
  const tenantsMoved = new Counter({
    name: "evaluator_operator_tenants_moved_total",
    help: "Tenants whose shard changed in a committed reshard.",
    labelNames: ["namespace", "shardset"] as const,
    registers: [registry],
    collect() {
      for (const set of shardSets())
        this.inc({ namespace: set.metadata.namespace, shardset: set.metadata.name }, 0);
    },
  });
  const reshards = new Counter({
    name: "evaluator_operator_reshards_total",
    help: "Reshards committed (the tenant moves of a resize written to PostgreSQL, epoch bumped).",
    labelNames: ["namespace", "shardset"] as const,
    registers: [registry],
    collect() {
      for (const set of shardSets())
        this.inc({ namespace: set.metadata.namespace, shardset: set.metadata.name }, 0);
    },
  });

  const signal = new Gauge({
    name: "evaluator_operator_autoscaler_signal",
    help: "The autoscaler's last reading of each signal (queue_depth: total queued evaluations; tick_latency_p95_seconds); absent while missing.",
    labelNames: ["namespace", "shardset", "signal"] as const,
    registers: [registry],
  });
  const recommended = new Gauge({
    name: "evaluator_operator_autoscaler_recommended_shards",
    help: "Shard count the autoscaler recommends (status.recommendedShards).",
    labelNames: ["namespace", "shardset"] as const,
    registers: [registry],
  });
  const desired = new Gauge({
    name: "evaluator_operator_autoscaler_desired_shards",
    help: "Shard count the autoscaler decided (what mode Auto converges to).",
    labelNames: ["namespace", "shardset"] as const,
    registers: [registry],
  });
  const missingReadings = new Counter({
    name: "evaluator_operator_autoscaler_missing_readings_total",
    help: "Signal readings that were missing (Prometheus unreachable, an error, empty, NaN or stale), by signal and reason.",
    labelNames: ["namespace", "shardset", "signal", "reason"] as const,
    registers: [registry],
  });

  // Status-derived gauges, read from the sets of the leader's informer cache at every scrape
  // (status/shardSetSeries.ts): a standby, which holds no cache, exports none of them, and a
  // deleted set's series go with it. They carry what the alerting rules need and the status keeps:
  // the conditions, a reshard's start (persisted, so a new leader reports its true age) and the
  // tick interval a reshard's drain waits for.
  let shardSets: () => readonly EvaluatorShardSet[] = () => [];
  new Gauge({
    name: "evaluator_operator_shardset_condition",
    help: "Conditions of each EvaluatorShardSet's status: 1 while True, 0 while False or Unknown, labelled with the condition's reason.",
    labelNames: ["namespace", "shardset", "condition", "reason"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of shardSetSeries(shardSets()).conditions) this.set(s.labels, s.value);
    },
  });
  new Gauge({
    name: "evaluator_operator_reshard_started_timestamp_seconds",
    help: "When the reshard in flight started (status.reshard.startedAt, Unix time), labelled with its phase; absent when none is in flight.",
    labelNames: ["namespace", "shardset", "phase"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of shardSetSeries(shardSets()).reshards) this.set(s.labels, s.value);
    },
  });
  // status.shards, desiredShards and readyShards, as kube-state-metrics exports a Deployment's
  // replicas: what the dashboard's shard panel draws (absent while status lacks the field).
  for (const [name, field, help] of [
    ["evaluator_operator_shardset_shards", "shards", "status.shards: the committed shard count (what runs)."],
    [
      "evaluator_operator_shardset_desired_shards",
      "desiredShards",
      "status.desiredShards: the count the set converges to (spec.shards, or the autoscaler's decision in mode Auto).",
    ],
    [
      "evaluator_operator_shardset_ready_shards",
      "readyShards",
      "status.readyShards: shard Deployments available.",
    ],
  ] as const) {
    new Gauge({
      name,
      help,
      labelNames: ["namespace", "shardset"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const set of shardSets()) {
          const value = set.status?.[field];
          if (value !== undefined)
            this.set({ namespace: set.metadata.namespace, shardset: set.metadata.name }, value);
        }
      },
    });
  }
  new Gauge({
    name: "evaluator_operator_shardset_tick_interval_seconds",
    help: "Tick interval of each EvaluatorShardSet's evaluators (spec.evaluator.tickIntervalSeconds or its default).",
    labelNames: ["namespace", "shardset"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of shardSetSeries(shardSets()).tickIntervals) this.set(s.labels, s.value);
    },
  });

  // client-go's name and buckets (rest_client_rate_limiter_duration_seconds), so its dashboards
  // read it; labelled with the limiter's lane too (the leader Lease's requests go first).
  const limiterWait = new Histogram({
    name: "rest_client_rate_limiter_duration_seconds",
    help: "Time requests to the kube-apiserver waited for the client-side rate limiter (--kube-api-qps, --kube-api-burst); its count is the number of requests sent.",
    labelNames: ["verb", "lane"] as const,
    buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    registers: [registry],
  });
  let limiterWaiting: () => number = () => 0;
  new Gauge({
    name: "evaluator_operator_kube_rate_limiter_waiting_requests",
    help: "Requests to the kube-apiserver waiting for a token of the client-side rate limiter now.",
    registers: [registry],
    collect() {
      this.set(limiterWaiting());
    },
  });

  const queue: QueueMetrics = {
    depth: (n) => queueDepth.set({ name: controller }, n),
    added: () => queueAdds.inc({ name: controller }),
    retried: () => queueRetries.inc({ name: controller }),
  };

  return {
    queue,
    observeReconcile(result: "success" | "error" | "requeue_after", seconds: number) {
      reconcileTotal.inc({ controller, result });
      reconcileTime.observe({ controller }, seconds);
      if (result === "error") reconcileErrors.inc({ controller });
    },
    /** Where the status-derived gauges read the sets from at each scrape (the leader's cache). */
    reportShardSets(source: () => readonly EvaluatorShardSet[]) {
      shardSets = source;
    },
    /** A request to the kube-apiserver got its token after `waitedMs` (kube/rateLimitedKubeConfig.ts). */
    kubeRequestAdmitted(verb: string, lane: string, waitedMs: number) {
      limiterWait.observe({ verb, lane }, waitedMs / 1000);
    },
    /** Where the waiting-requests gauge reads from at each scrape (the limiter). */
    reportLimiterWaiting(source: () => number) {
      limiterWaiting = source;
    },
    setLeader(name: string, isLeader: boolean) {
      leader.set({ name }, isLeader ? 1 : 0);
    },
    informerRestarted(resource: string) {
      informerRestarts.inc({ resource });
    },
    /** A reshard committed, moving `moved` tenants. */
    reshardCommitted(namespace: string, shardset: string, moved: number) {
      reshards.inc({ namespace, shardset });
      tenantsMoved.inc({ namespace, shardset }, moved);
    },
    autoscaled(namespace: string, shardset: string, decision: AutoscaleDecision, readings: SignalReadings) {
      recommended.set({ namespace, shardset }, decision.recommended);
      desired.set({ namespace, shardset }, decision.desired);
      const signals = [
        ["queue_depth", readings.queueDepth],
        ["tick_latency_p95_seconds", readings.tickLatencyP95Seconds],
      ] as const;
      for (const [name, r] of signals) {
        if ("value" in r) signal.set({ namespace, shardset, signal: name }, r.value);
        else {
          signal.remove({ namespace, shardset, signal: name });
          missingReadings.inc({ namespace, shardset, signal: name, reason: r.missing });
        }
      }
    },
  };
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
