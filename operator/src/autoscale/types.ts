/**
 * The autoscaler's contract: what it reads (signals), what it remembers between reconciles (kept
 * in status, never in memory) and what it decides. The policy (policy.ts) is pure; the Prometheus
 * client (prometheusClient.ts) and the readings (readSignals.ts) do the I/O.
 */

import type { AutoscalingMode } from "../api/types.ts";

export type { AutoscalingMode };

/** How fast the count may move in one direction (spec.autoscaling.scaleUp / scaleDown, defaults applied). */
export interface ScalingRules {
  readonly stabilizationWindowSeconds: number;
  readonly maxShardsChange: number;
  readonly periodSeconds: number;
}

/** spec.autoscaling compiled: every default applied, every unit explicit. */
export interface AutoscalerSpec {
  readonly mode: AutoscalingMode;
  readonly minShards: number;
  readonly maxShards: number;
  /** Relative dead band around each target (0.1 = no change while within 10%). */
  readonly tolerance: number;
  readonly targets: {
    /** Queued tenant evaluations one shard should carry. */
    readonly queueDepthPerShard: number;
    /** p95 tick duration one shard should stay under. */
    readonly tickLatencySeconds: number;
    /** Tenant load (devices × rules) one shard carries at target; undefined: no load floor. */
    readonly loadPerShard?: number | undefined;
  };
  readonly scaleUp: ScalingRules;
  readonly scaleDown: ScalingRules;
  /** No reshard starts sooner than this after the previous one finished. */
  readonly minReshardIntervalSeconds: number;
}

/** Why a signal has no value: the reading is missing, never read as zero. */
export type MissingReason =
  | "Unreachable" // transport failure or timeout
  | "QueryError" // Prometheus answered with status "error" (bad query, timeout on its side…)
  | "Empty" // no series
  | "NotANumber" // NaN or ±Inf
  | "Stale" // fewer shards reporting than are running, or only shards that are gone
  | "WarmingUp" // only shards that the last scale-up added are not reporting yet (see readSignals)
  | "Ambiguous"; // several series without a shard label: the query does not say which to use

/** One signal as read: a number, or missing with a reason and a detail for status/Events. */
export type SignalReading =
  | { readonly value: number }
  | { readonly missing: MissingReason; readonly detail: string };

/** Both signals of one set, read at `readAt` (ms since the epoch). */
export interface SignalReadings {
  /** Total queued evaluations over the running shards. */
  readonly queueDepth: SignalReading;
  /** Highest p95 tick duration among the running shards, seconds. */
  readonly tickLatencyP95Seconds: SignalReading;
  readonly readAt: number;
}

/** What the autoscaler remembers between reconciles (status.autoscaler); timestamps in ms. */
export interface AutoscalerMemory {
  /** Recommendations (before stabilization) within the longest stabilization window, oldest first. */
  readonly recommendations: readonly { readonly at: number; readonly shards: number }[];
  /** Count changes it decided within the longest period, oldest first (for maxShardsChange). */
  readonly changes: readonly { readonly at: number; readonly from: number; readonly to: number }[];
}

export interface AutoscaleInput {
  readonly spec: AutoscalerSpec;
  /** The committed shard count (what runs now). */
  readonly current: number;
  readonly readings: SignalReadings;
  /** Total tenant load of the set (devices × rules); with targets.loadPerShard it gives a floor. */
  readonly totalLoad?: number | undefined;
  /** A reshard is in flight: no new decision until it finished. */
  readonly reshardInFlight: boolean;
  /** When the last reshard finished (status.lastScaleTime), ms. */
  readonly lastScaleTime?: number | undefined;
  readonly memory: AutoscalerMemory;
  readonly now: number;
}

/** Why the decision is not the raw recommendation (ScalingLimited and the decision's reason). */
export type LimitReason =
  | "AtMinimum"
  | "AtMaximum"
  | "RateLimited" // maxShardsChange per periodSeconds
  | "Stabilizing" // the stabilization window holds a higher (down) or lower (up) recommendation
  | "Hysteresis" // removing shards would put the projected load above target × (1 − tolerance)
  | "ReshardInFlight"
  | "ReshardInterval" // minReshardIntervalSeconds since the last reshard not yet passed
  | "MissingMetrics"; // a signal is missing and the others do not ask for more shards

export interface AutoscaleDecision {
  /** What the signals ask for (tolerance, load floor and min/max applied; no stabilization): status.recommendedShards. */
  readonly recommended: number;
  /** The count to run (Auto) after stabilization, rate limits, hysteresis and holds. */
  readonly desired: number;
  /** Every limit that shaped `desired` (empty: desired = recommended). */
  readonly limits: readonly LimitReason[];
  /** One line for status, Events and logs: which signal drove it, with the numbers. */
  readonly reason: string;
  /** The memory to persist (pruned to the windows). */
  readonly memory: AutoscalerMemory;
}
