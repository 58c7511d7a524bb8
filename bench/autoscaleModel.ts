/**
 * A model of one EvaluatorShardSet under load, for replaying autoscaling policies on synthetic
 * traces (bench/autoscale.ts). Deterministic: the traces' noise comes from a seeded PRNG and the
 * clock is the step counter.
 *
 * The model, in one place:
 * - load L(t) in shards' worth of work: 1 = what one shard evaluates in exactly one tick interval;
 * - with n shards, the slowest shard carries SKEW × L / n of that (the tenant planner keeps
 *   max/avg load ≤ 1 + ε), so its tick p95 ≈ tickInterval × SKEW × L / n;
 * - queue depth (the default query: each shard's backlog of its last tick, summed): the tenant
 *   evaluations not finished within the interval, TENANTS × max(0, 1 − n / (SKEW × L));
 * - readings go through Prometheus: the tick p95 is a rate over 5 minutes (modelled as the mean of
 *   the last 5 minutes), the queue a max_over_time over 2 minutes; in a gap both are empty;
 * - a reshard takes RESHARD_SECONDS, during which the old count carries the load while
 *   max(old, new) shards run; it moves |Δn| / max(old, new) of the tenants; reshards never
 *   overlap: a new target waits for the one in flight.
 */
import type { SignalReading, SignalReadings } from "../operator/src/autoscale/types.ts";

export const STEP_SECONDS = 15;
export const TICK_INTERVAL_SECONDS = 60;
export const TARGET_TICK_SECONDS = 30;
export const TOLERANCE = 0.1;
export const SKEW = 1.05;
export const TENANTS = 1000;
export const RESHARD_SECONDS = 90;
export const MAX_SHARDS = 16;
const P95_WINDOW_STEPS = (5 * 60) / STEP_SECONDS;
const QUEUE_WINDOW_STEPS = (2 * 60) / STEP_SECONDS;
/** 2026-01-01T00:00:00Z: the traces' t = 0. */
export const T0 = Date.UTC(2026, 0, 1);

/** mulberry32: a small, fast, seeded PRNG; uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A trace sampled every STEP_SECONDS: the load and whether Prometheus has data. */
export interface Trace {
  readonly name: string;
  readonly description: string;
  /** Shards' worth of work at each step. */
  readonly load: readonly number[];
  /** True where Prometheus returns no sample (both queries empty). */
  readonly gap: readonly boolean[];
}

function sample(
  name: string,
  description: string,
  hours: number,
  load: (tSeconds: number) => number,
  random: () => number,
  gap: (tSeconds: number) => boolean = () => false,
): Trace {
  const steps = Math.round((hours * 3600) / STEP_SECONDS);
  const loads: number[] = [];
  const gaps: boolean[] = [];
  for (let i = 0; i < steps; i++) {
    const t = i * STEP_SECONDS;
    // ±4% noise around the trace: what tenants' devices really send is never flat.
    loads.push(load(t) * (1 + 0.08 * (random() - 0.5)));
    gaps.push(gap(t));
  }
  return { name, description, load: loads, gap: gaps };
}

const HOUR = 3600;
const MINUTE = 60;

/** The six traces, each with its own seeded noise so adding one does not change the others. */
export function buildTraces(seed: number): Trace[] {
  return [
    sample(
      "diurnal",
      "one day, load 1.5 → 6 → 1.5 shards' worth (cosine, peak at noon)",
      24,
      (t) => 1.5 + 4.5 * ((1 - Math.cos((2 * Math.PI * t) / (24 * HOUR))) / 2),
      seededRandom(seed + 1),
    ),
    sample("step", "3 h, load 2 → 5 at 1 h", 3, (t) => (t < HOUR ? 2 : 5), seededRandom(seed + 2)),
    sample(
      "spike",
      "3 h, load 2 with a 4-minute spike to 6 at 1 h",
      3,
      (t) => (t >= HOUR && t < HOUR + 4 * MINUTE ? 6 : 2),
      seededRandom(seed + 3),
    ),
    sample(
      "ramp",
      "8 h, load 1 → 6 linearly over 6 h, then flat",
      8,
      (t) => 1 + 5 * Math.min(1, t / (6 * HOUR)),
      seededRandom(seed + 4),
    ),
    sample(
      "square",
      "3 h, load 3 ↔ 4 every 4 min (half-period 240 s < the 300 s scale-down window)",
      3,
      (t) => (Math.floor(t / (4 * MINUTE)) % 2 === 0 ? 4 : 3),
      seededRandom(seed + 5),
    ),
    sample(
      "prom-gap",
      "4 h, load 4, Prometheus returns nothing from 1 h to 1 h 30",
      4,
      () => 4,
      seededRandom(seed + 6),
      (t) => t >= HOUR && t < HOUR + 30 * MINUTE,
    ),
  ];
}

/** What a policy sees at one step. */
export interface Observation {
  readonly now: number;
  /** The committed count (what carries the load). */
  readonly running: number;
  readonly reshardInFlight: boolean;
  /** When the last reshard finished. */
  readonly lastScaleTime: number | undefined;
  readonly readings: SignalReadings;
  readonly minShards: number;
  readonly maxShards: number;
}

/** One autoscaler under test: stateful across steps of one run, fresh per run. */
export interface Policy {
  /** `current`: the count it considered current; `target`: the count it asks the set to run. */
  decide(obs: Observation): { readonly current: number; readonly target: number };
}

export interface Outcome {
  readonly reshards: number;
  /** Fraction of all tenants moved, summed over reshards. */
  readonly tenantsMoved: number;
  /** Shard-minutes while the slowest shard's true tick p95 was above the target. */
  readonly shardMinutesAboveTarget: number;
  /** The same above target × (1 + tolerance): beyond the dead band the policies leave alone. */
  readonly shardMinutesAboveBand: number;
  /** Shard-minutes of running shards (both old and new during a reshard). */
  readonly shardMinutes: number;
  /** Count changes a policy decided while Prometheus had no data. */
  readonly decisionsOnMissingData: number;
}

/** The slowest shard's tick p95 and the summed backlog with `n` shards carrying `load`. */
export function truth(load: number, n: number): { p95: number; queue: number } {
  const perShard = (SKEW * load) / n;
  return { p95: TICK_INTERVAL_SECONDS * perShard, queue: TENANTS * Math.max(0, 1 - 1 / perShard) };
}

/** The smallest count that keeps the slowest shard's p95 below 90% of the target. */
export function comfortableCount(load: number): number {
  const n = Math.ceil((TICK_INTERVAL_SECONDS * SKEW * load) / (0.9 * TARGET_TICK_SECONDS));
  return Math.min(MAX_SHARDS, Math.max(1, n));
}

const EMPTY: SignalReading = { missing: "Empty", detail: "query returned no series" };

/** Replays `trace` through `policy` and the set model, starting at the comfortable count. */
export function simulate(trace: Trace, policy: Policy): Outcome {
  const dtMinutes = STEP_SECONDS / 60;
  let running = comfortableCount(trace.load[0]!);
  let reshard: { from: number; to: number; endsAt: number } | undefined;
  let lastScaleTime: number | undefined;
  const out = {
    reshards: 0,
    tenantsMoved: 0,
    shardMinutesAboveTarget: 0,
    shardMinutesAboveBand: 0,
    shardMinutes: 0,
    decisionsOnMissingData: 0,
  };
  // Prometheus' history (true values per step, undefined in a gap), pre-filled with the start state.
  const warm = truth(trace.load[0]!, running);
  const p95History: (number | undefined)[] = new Array(P95_WINDOW_STEPS).fill(warm.p95);
  const queueHistory: (number | undefined)[] = new Array(QUEUE_WINDOW_STEPS).fill(warm.queue);

  for (let i = 0; i < trace.load.length; i++) {
    const now = T0 + i * STEP_SECONDS * 1000;
    if (reshard && now >= reshard.endsAt) {
      running = reshard.to;
      lastScaleTime = reshard.endsAt;
      reshard = undefined;
    }
    const load = trace.load[i]!;
    const gap = trace.gap[i]!;
    const actual = truth(load, running);
    p95History.push(gap ? undefined : actual.p95);
    queueHistory.push(gap ? undefined : actual.queue);
    if (actual.p95 > TARGET_TICK_SECONDS) out.shardMinutesAboveTarget += running * dtMinutes;
    if (actual.p95 > TARGET_TICK_SECONDS * (1 + TOLERANCE)) out.shardMinutesAboveBand += running * dtMinutes;
    out.shardMinutes += (reshard ? Math.max(reshard.from, reshard.to) : running) * dtMinutes;

    const p95Window = present(p95History.slice(-P95_WINDOW_STEPS));
    const queueWindow = present(queueHistory.slice(-QUEUE_WINDOW_STEPS));
    const readings: SignalReadings = {
      queueDepth: gap || queueWindow.length === 0 ? EMPTY : { value: Math.max(...queueWindow) },
      tickLatencyP95Seconds:
        gap || p95Window.length === 0
          ? EMPTY
          : { value: p95Window.reduce((a, b) => a + b, 0) / p95Window.length },
      readAt: now,
    };
    const { current, target } = policy.decide({
      now,
      running,
      reshardInFlight: reshard !== undefined,
      lastScaleTime,
      readings,
      minShards: 1,
      maxShards: MAX_SHARDS,
    });
    if (gap && target !== current) out.decisionsOnMissingData++;
    if (!reshard && target !== running) {
      out.reshards++;
      out.tenantsMoved += Math.abs(target - running) / Math.max(target, running);
      reshard = { from: running, to: target, endsAt: now + RESHARD_SECONDS * 1000 };
    }
  }
  return out;
}

function present(values: readonly (number | undefined)[]): number[] {
  return values.filter((v): v is number => v !== undefined);
}
