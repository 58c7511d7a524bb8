import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { AutoscaleDecision, SignalReadings } from "./autoscale/types.ts";
import type { QueueMetrics } from "./controller/workQueue.ts";

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
  const tenantsMoved = new Counter({
    name: "evaluator_operator_tenants_moved_total",
    help: "Tenants whose shard changed in a committed reshard.",
    labelNames: ["namespace", "shardset"] as const,
    registers: [registry],
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
    setLeader(name: string, isLeader: boolean) {
      leader.set({ name }, isLeader ? 1 : 0);
    },
    informerRestarted(resource: string) {
      informerRestarts.inc({ resource });
    },
    tenantsMoved(namespace: string, shardset: string, n: number) {
      tenantsMoved.inc({ namespace, shardset }, n);
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
