/**
 * The autoscaler's part of a reconcile (pure): from the set, the signals just read and the
 * committed count, the shard count to converge to, the status fields to report, the conditions
 * MetricsAvailable and ScalingLimited, and the Events. planReconcile merges it into its plan.
 *
 * Modes: `Off` obeys spec.shards and reads nothing. `Recommend` obeys spec.shards and reports
 * status.recommendedShards (with an Event when it changes). `Auto` converges to the policy's
 * decision within min/max; spec.shards is ignored. The operator never writes spec.
 */
import type { AutoscalerStatus, EvaluatorShardSet, EvaluatorShardSetStatus } from "../api/types.ts";
import { DEFAULTS } from "../api/types.ts";
import { CONDITION, type ConditionInput, EVENT_REASON, REASON } from "../status/conditions.ts";
import { compileAutoscalerSpec, decideShards } from "./policy.ts";
import type { AutoscaleDecision, AutoscalerMemory, SignalReading, SignalReadings } from "./types.ts";

export interface AutoscaleEvent {
  readonly type: "Normal" | "Warning";
  readonly reason: string;
  readonly message: string;
}

export interface AutoscalePlan {
  /** The shard count the reconcile converges to. */
  readonly target: number;
  /** Status fields owned by the autoscaler (undefined values remove the field). */
  readonly status: Pick<EvaluatorShardSetStatus, "recommendedShards" | "metrics" | "autoscaler">;
  /** MetricsAvailable and ScalingLimited (none in mode Off: the autoscaler is not running). */
  readonly conditions: readonly ConditionInput[];
  readonly events: readonly AutoscaleEvent[];
  /** The policy's decision (undefined in mode Off). */
  readonly decision?: AutoscaleDecision;
}

export interface AutoscaleInput {
  readonly set: EvaluatorShardSet;
  /** The signals read for this reconcile (undefined in mode Off). */
  readonly readings: SignalReadings | undefined;
  /** The committed shard count. */
  readonly committed: number;
  /** Total tenant load of the set, from the database (undefined without one). */
  readonly totalLoad: number | undefined;
  readonly now: number;
}

/** True when the set's mode reads metrics (Recommend and Auto). */
export function readsMetrics(set: EvaluatorShardSet): boolean {
  const mode = set.spec.autoscaling?.mode ?? "Off";
  return mode !== "Off";
}

/** See the module comment. */
export function planAutoscale(input: AutoscaleInput): AutoscalePlan {
  const { set, readings, committed, now } = input;
  const fixed = set.spec.shards ?? DEFAULTS.shards;
  const inFlight = set.status?.reshard;
  if (!readsMetrics(set) || !readings) {
    return {
      target: fixed,
      status: { recommendedShards: undefined, metrics: undefined, autoscaler: undefined },
      conditions: [],
      events: [],
    };
  }
  const spec = compileAutoscalerSpec(set);
  const previous = set.status;
  const decision = decideShards({
    spec,
    current: committed,
    readings,
    totalLoad: input.totalLoad,
    reshardInFlight: inFlight !== undefined,
    lastScaleTime: previous?.lastScaleTime ? Date.parse(previous.lastScaleTime) : undefined,
    memory: memoryOf(previous?.autoscaler),
    now,
  });
  // Auto converges to the decision; a reshard in flight keeps its own target until it finished.
  const target = spec.mode === "Auto" ? (inFlight ? inFlight.to : decision.desired) : fixed;

  const missing = missingSignals(readings);
  const warmingUp = [readings.queueDepth, readings.tickLatencyP95Seconds].every(
    (r) => !("missing" in r) || r.missing === "WarmingUp",
  );
  const metricsCondition: ConditionInput =
    missing.length > 0 && warmingUp
      ? {
          // New shards not scraped yet: Prometheus works, nothing to warn about; the count holds.
          type: CONDITION.metricsAvailable,
          status: "True",
          reason: REASON.metricsWarmingUp,
          message: `${missing.join("; ")}: holding the shard count until they report`,
        }
      : missing.length === 0
        ? {
            type: CONDITION.metricsAvailable,
            status: "True",
            reason: REASON.metricsOk,
            message: `queue depth ${fmt(readings.queueDepth)}, tick p95 ${fmt(readings.tickLatencyP95Seconds)}s`,
          }
        : {
            type: CONDITION.metricsAvailable,
            status: "False",
            reason: REASON.metricsUnavailable,
            message: `${missing.join("; ")}: holding the shard count (never scaling down on missing data)`,
          };
  const bound = decision.limits.find((l) => l === "AtMaximum" || l === "AtMinimum" || l === "RateLimited");
  const limitedCondition: ConditionInput = bound
    ? {
        type: CONDITION.scalingLimited,
        status: "True",
        reason:
          bound === "AtMaximum"
            ? REASON.atMaximum
            : bound === "AtMinimum"
              ? REASON.atMinimum
              : REASON.rateLimited,
        message: decision.reason,
      }
    : {
        type: CONDITION.scalingLimited,
        status: "False",
        reason: REASON.withinBounds,
        message: decision.reason,
      };

  const events: AutoscaleEvent[] = [];
  const wasAvailable = previous?.conditions?.find((c) => c.type === CONDITION.metricsAvailable)?.status;
  if (metricsCondition.status === "False" && wasAvailable !== "False") {
    events.push({
      type: "Warning",
      reason: EVENT_REASON.metricsUnavailable,
      message: metricsCondition.message,
    });
  } else if (metricsCondition.status === "True" && wasAvailable === "False") {
    events.push({ type: "Normal", reason: EVENT_REASON.metricsAvailable, message: metricsCondition.message });
  }
  if (spec.mode === "Recommend" && previous?.recommendedShards !== decision.recommended) {
    events.push({
      type: "Normal",
      reason: EVENT_REASON.recommendedShards,
      message: `Recommending ${decision.recommended} shards (spec.shards is ${fixed}): ${decision.reason}`,
    });
  }

  return {
    target,
    status: {
      recommendedShards: decision.recommended,
      metrics: {
        ...readingField("queueDepth", readings.queueDepth),
        ...readingField("tickLatencyP95Seconds", readings.tickLatencyP95Seconds),
        readAt: new Date(readings.readAt).toISOString(),
      },
      autoscaler: statusOf(decision),
    },
    conditions: [metricsCondition, limitedCondition],
    events,
    decision,
  };
}

function missingSignals(r: SignalReadings): string[] {
  const out: string[] = [];
  if ("missing" in r.queueDepth) out.push(`queue depth ${r.queueDepth.missing} (${r.queueDepth.detail})`);
  if ("missing" in r.tickLatencyP95Seconds) {
    out.push(`tick p95 ${r.tickLatencyP95Seconds.missing} (${r.tickLatencyP95Seconds.detail})`);
  }
  return out;
}

function readingField<K extends string>(key: K, r: SignalReading): Partial<Record<K, number>> {
  return "value" in r ? ({ [key]: round(r.value) } as Record<K, number>) : {};
}

function fmt(r: SignalReading): string {
  return "value" in r ? String(round(r.value)) : "missing";
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The memory as kept in status (ISO timestamps) → as the policy takes it (ms). */
export function memoryOf(s: AutoscalerStatus | undefined): AutoscalerMemory {
  return {
    recommendations: (s?.recommendations ?? []).map((r) => ({ at: Date.parse(r.at), shards: r.shards })),
    changes: (s?.changes ?? []).map((c) => ({ at: Date.parse(c.at), from: c.from, to: c.to })),
  };
}

function statusOf(d: AutoscaleDecision): AutoscalerStatus {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    reason: d.reason.slice(0, 1024),
    limits: [...d.limits],
    recommendations: d.memory.recommendations.map((r) => ({ at: iso(r.at), shards: r.shards })),
    changes: d.memory.changes.map((c) => ({ at: iso(c.at), from: c.from, to: c.to })),
  };
}
