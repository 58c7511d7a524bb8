/**
 * The autoscalers the simulator compares, behind one Policy interface (bench/autoscaleModel.ts):
 * - ours: decideShards with the CRD's defaults (its memory carried as status would carry it);
 * - HPA: the HorizontalPodAutoscaler's algorithm with its default behavior (tolerance 0.1;
 *   scale-up window 0 s, policies 100% and 4 pods per 15 s, selectPolicy Max; scale-down window
 *   300 s, policy 100% per 15 s) on the same two metrics as External metrics (queue depth as
 *   AverageValue, tick p95 as Value), a failed metric holding the count as HPA does; driving
 *   spec.shards through the scale subresource, so its "current" is the last count it wrote and it
 *   keeps deciding while a reshard is in flight;
 * - KEDA: the same HPA underneath a Prometheus scaler with its defaults (ignoreNullValues: true),
 *   so an empty query result reads as 0 rather than as a missing metric.
 */

import type { EvaluatorShardSet } from "../operator/src/api/types.ts";
import { compileAutoscalerSpec, decideShards } from "../operator/src/autoscale/policy.ts";
import type {
  AutoscalerMemory,
  AutoscalerSpec,
  SignalReading,
  SignalReadings,
} from "../operator/src/autoscale/types.ts";
import type { Observation, Policy } from "./autoscaleModel.ts";

/** Our policy with spec.autoscaling = { mode: Auto } (every other field defaulted). */
export function oursPolicy(maxShards: number): Policy {
  const set = { spec: { autoscaling: { mode: "Auto", maxShards } } } as unknown as EvaluatorShardSet;
  const spec = compileAutoscalerSpec(set);
  let memory: AutoscalerMemory = { recommendations: [], changes: [] };
  return {
    decide(obs: Observation) {
      const d = decideShards({
        spec,
        current: obs.running,
        readings: obs.readings,
        reshardInFlight: obs.reshardInFlight,
        lastScaleTime: obs.lastScaleTime,
        memory,
        now: obs.now,
      });
      memory = d.memory;
      return { current: obs.running, target: d.desired };
    },
  };
}

interface HpaScalingPolicy {
  readonly type: "Pods" | "Percent";
  readonly value: number;
  readonly periodSeconds: number;
}

interface HpaRules {
  readonly stabilizationWindowSeconds: number;
  /** selectPolicy Max: the policy allowing the largest change wins. */
  readonly policies: readonly HpaScalingPolicy[];
}

/** autoscaling/v2 defaults (k8s.io/kubernetes pkg/apis/autoscaling/v2/defaults.go). */
export const HPA_DEFAULT_BEHAVIOR: { readonly scaleUp: HpaRules; readonly scaleDown: HpaRules } = {
  scaleUp: {
    stabilizationWindowSeconds: 0,
    policies: [
      { type: "Percent", value: 100, periodSeconds: 15 },
      { type: "Pods", value: 4, periodSeconds: 15 },
    ],
  },
  scaleDown: {
    stabilizationWindowSeconds: 300,
    policies: [{ type: "Percent", value: 100, periodSeconds: 15 }],
  },
};
const HPA_TOLERANCE = 0.1;

/**
 * HPA's reconcile (horizontal.go, replica_calculator.go) for two External metrics, on the same
 * targets as ours (compiled CRD defaults). `view` maps the readings as the metrics adapter
 * delivers them (KEDA turns an empty result into 0).
 */
export function hpaPolicy(maxShards: number, view: (r: SignalReading) => SignalReading = (r) => r): Policy {
  const targets = compileAutoscalerSpec({
    spec: { autoscaling: {} },
  } as unknown as EvaluatorShardSet).targets;
  const recommendations: { at: number; replicas: number }[] = [];
  const upEvents: { at: number; change: number }[] = [];
  const downEvents: { at: number; change: number }[] = [];
  let specReplicas: number | undefined;

  return {
    decide(obs: Observation) {
      specReplicas ??= obs.running;
      const current = specReplicas;
      const min = obs.minShards;
      let desired: number;
      if (current > maxShards) desired = maxShards;
      else if (current < min) desired = min;
      else {
        const metric = metricReplicas(current, obs.readings, view, targets);
        // Every metric failed, or some failed and the rest would scale down: HPA returns early.
        if (metric === undefined) return { current, target: current };
        desired = normalize(obs.now, current, metric, min, maxShards);
      }
      if (desired !== current) {
        (desired > current ? upEvents : downEvents).push({
          at: obs.now,
          change: Math.abs(desired - current),
        });
        specReplicas = desired;
      }
      return { current, target: desired };
    },
  };

  function normalize(now: number, current: number, metric: number, min: number, max: number): number {
    const { scaleUp, scaleDown } = HPA_DEFAULT_BEHAVIOR;
    // stabilizeRecommendationWithBehaviors
    let up = metric;
    let down = metric;
    for (const r of recommendations) {
      if (r.at > now - scaleUp.stabilizationWindowSeconds * 1000) up = Math.min(up, r.replicas);
      if (r.at > now - scaleDown.stabilizationWindowSeconds * 1000) down = Math.max(down, r.replicas);
    }
    recommendations.push({ at: now, replicas: metric });
    const keep = Math.max(scaleUp.stabilizationWindowSeconds, scaleDown.stabilizationWindowSeconds) * 1000;
    while (recommendations.length > 0 && recommendations[0]!.at <= now - keep) recommendations.shift();
    const stabilized = Math.min(Math.max(current, up), down);
    // convertDesiredReplicasWithBehaviorRate
    if (stabilized > current) {
      let limit = Number.NEGATIVE_INFINITY;
      for (const p of scaleUp.policies) {
        const start = current - changed(upEvents, now, p) + changed(downEvents, now, p);
        limit = Math.max(limit, p.type === "Pods" ? start + p.value : Math.ceil(start * (1 + p.value / 100)));
      }
      return Math.min(stabilized, Math.max(current, limit), max);
    }
    if (stabilized < current) {
      let limit = Number.POSITIVE_INFINITY;
      for (const p of scaleDown.policies) {
        const start = current - changed(upEvents, now, p) + changed(downEvents, now, p);
        limit = Math.min(
          limit,
          p.type === "Pods" ? start - p.value : Math.floor(start * (1 - p.value / 100)),
        );
      }
      return Math.max(stabilized, Math.min(current, limit), min);
    }
    return stabilized;
  }
}

/** KEDA's Prometheus scaler with ignoreNullValues: true (the default): no series reads as 0. */
export function kedaPolicy(maxShards: number): Policy {
  return hpaPolicy(maxShards, (r) => ("missing" in r && r.missing === "Empty" ? { value: 0 } : r));
}

function changed(
  events: readonly { at: number; change: number }[],
  now: number,
  p: HpaScalingPolicy,
): number {
  return events.filter((e) => e.at > now - p.periodSeconds * 1000).reduce((a, e) => a + e.change, 0);
}

/**
 * computeReplicasForMetrics: the highest proposal; undefined when every metric failed, or when
 * some failed and the others ask for fewer than `current`.
 */
function metricReplicas(
  current: number,
  readings: SignalReadings,
  view: (r: SignalReading) => SignalReading,
  targets: AutoscalerSpec["targets"],
): number | undefined {
  const proposals: number[] = [];
  let invalid = 0;
  const queue = view(readings.queueDepth);
  if ("value" in queue) {
    // AverageValue: usage ratio = total / (target × current); replicas = ceil(total / target).
    const ratio = queue.value / (targets.queueDepthPerShard * current);
    proposals.push(
      Math.abs(1 - ratio) <= HPA_TOLERANCE ? current : Math.ceil(queue.value / targets.queueDepthPerShard),
    );
  } else invalid++;
  const p95 = view(readings.tickLatencyP95Seconds);
  if ("value" in p95) {
    // Value: usage ratio = value / target; replicas = ceil(ratio × current).
    const ratio = p95.value / targets.tickLatencySeconds;
    proposals.push(Math.abs(1 - ratio) <= HPA_TOLERANCE ? current : Math.ceil(ratio * current));
  } else invalid++;
  if (proposals.length === 0) return undefined;
  const replicas = Math.max(...proposals);
  return invalid > 0 && replicas < current ? undefined : replicas;
}
