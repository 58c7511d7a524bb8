/**
 * The autoscaler's policy (pure: no I/O, no clock — `now` is an input). Modelled on the Kubernetes
 * HorizontalPodAutoscaler (pkg/controller/podautoscaler: replica_calculator.go for the per-metric
 * proposal and its tolerance, horizontal.go for the missing-metric rules, the stabilization
 * windows and the Pods scaling policies), plus what a reshard's cost calls for and HPA lacks:
 * hysteresis on scale-down, a minimum interval between reshards and no decision while one is in
 * flight.
 *
 * The pipeline, in order:
 * 1. per signal, the count it asks for (its proposal): within tolerance of the target → `current`;
 * 2. the recommendation: the highest proposal; a missing signal holds `current` unless the present
 *    ones ask for more; the tenant-load floor raises it; clamped to minShards..maxShards;
 * 3. stabilization: clamp `current` between the lowest recommendation of the scale-up window and
 *    the highest of the scale-down window (the recommendation just made included);
 * 4. scale-up: the rate limit; scale-down: the higher of the hysteresis floor and the rate limit;
 * 5. holds: a reshard in flight, or the last one finished less than minReshardIntervalSeconds ago.
 */
import { DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";
import type {
  AutoscaleDecision,
  AutoscaleInput,
  AutoscalerMemory,
  AutoscalerSpec,
  AutoscalingMode,
  LimitReason,
  MissingReason,
  ScalingRules,
  SignalReading,
} from "./types.ts";

/** Defaults of spec.autoscaling that the CRD documents and DEFAULTS (api/types.ts) does not mirror. */
export const AUTOSCALING_DEFAULTS = {
  scaleUp: { stabilizationWindowSeconds: 0, maxShardsChange: 4, periodSeconds: 60 },
  scaleDown: { stabilizationWindowSeconds: 300, maxShardsChange: 1, periodSeconds: 300 },
  /** spec.autoscaling.minReshardIntervalSeconds. */
  minReshardIntervalSeconds: 120,
} as const satisfies {
  scaleUp: ScalingRules;
  scaleDown: ScalingRules;
  minReshardIntervalSeconds: number;
};

/**
 * Floating-point slack: `ceil(3 × 21 / 30 …)` must not become 8 for 7.000000000000001, and a ratio
 * of exactly 1 + tolerance (33 s against 30 s, tolerance 0.1) is within the tolerance.
 */
const EPSILON = 1e-9;

/**
 * spec.autoscaling as read: every field `unknown`, so one of the wrong kind (an object written
 * around the schema, or before a field existed) falls back to its default instead of leaking in.
 */
interface LooseAutoscaling {
  mode?: unknown;
  minShards?: unknown;
  maxShards?: unknown;
  tolerance?: unknown;
  targets?: { queueDepthPerShard?: unknown; tickLatencySeconds?: unknown; loadPerShard?: unknown };
  scaleUp?: { stabilizationWindowSeconds?: unknown; maxShardsChange?: unknown; periodSeconds?: unknown };
  scaleDown?: { stabilizationWindowSeconds?: unknown; maxShardsChange?: unknown; periodSeconds?: unknown };
  minReshardIntervalSeconds?: unknown;
}

/**
 * spec.autoscaling with every default applied (the CRD's: `minReshardIntervalSeconds` 120,
 * `targets.loadPerShard` undefined = no load floor). The apiserver validates the fields; an object
 * written before a default existed, or a value of the wrong kind, falls back to the default rather
 * than failing the reconcile.
 */
export function compileAutoscalerSpec(set: EvaluatorShardSet): AutoscalerSpec {
  const a = (set.spec.autoscaling ?? {}) as unknown as LooseAutoscaling;
  const minShards = integerOr(a.minShards, DEFAULTS.minShards, 1);
  // The schema's CEL rule rejects min > max; an object that slipped past it runs at minShards.
  const maxShards = Math.max(minShards, integerOr(a.maxShards, DEFAULTS.maxShards, 1));
  const loadPerShard = a.targets?.loadPerShard;
  return {
    mode: a.mode === "Recommend" || a.mode === "Auto" ? (a.mode as AutoscalingMode) : "Off",
    minShards,
    maxShards,
    tolerance: Math.min(1, numberOr(a.tolerance, DEFAULTS.tolerance, 0)),
    targets: {
      queueDepthPerShard: positiveOr(a.targets?.queueDepthPerShard, DEFAULTS.queueDepthPerShard),
      tickLatencySeconds: positiveOr(a.targets?.tickLatencySeconds, DEFAULTS.tickLatencySeconds),
      loadPerShard: isPositive(loadPerShard) ? loadPerShard : undefined,
    },
    scaleUp: scalingRules(a.scaleUp, AUTOSCALING_DEFAULTS.scaleUp),
    scaleDown: scalingRules(a.scaleDown, AUTOSCALING_DEFAULTS.scaleDown),
    minReshardIntervalSeconds: numberOr(
      a.minReshardIntervalSeconds,
      AUTOSCALING_DEFAULTS.minReshardIntervalSeconds,
      0,
    ),
  };
}

function scalingRules(raw: LooseAutoscaling["scaleUp"], defaults: ScalingRules): ScalingRules {
  return {
    stabilizationWindowSeconds: numberOr(
      raw?.stabilizationWindowSeconds,
      defaults.stabilizationWindowSeconds,
      0,
    ),
    maxShardsChange: integerOr(raw?.maxShardsChange, defaults.maxShardsChange, 1),
    periodSeconds: positiveOr(raw?.periodSeconds, defaults.periodSeconds),
  };
}

function isPositive(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x) && x > 0;
}

function positiveOr(x: unknown, fallback: number): number {
  return isPositive(x) ? x : fallback;
}

function numberOr(x: unknown, fallback: number, min: number): number {
  return typeof x === "number" && Number.isFinite(x) && x >= min ? x : fallback;
}

function integerOr(x: unknown, fallback: number, min: number): number {
  return typeof x === "number" && Number.isInteger(x) && x >= min ? x : fallback;
}

/** What one signal says: the count it asks for and how its load would spread over n shards. */
type SignalView =
  | {
      readonly name: string;
      /** The count this signal asks for (`current` within tolerance). */
      readonly shards: number;
      /** Reading / target with `current` shards (1 = on target). */
      readonly ratio: number;
      /** Reading / target if the same total ran on n shards (the hysteresis projection). */
      readonly ratioAt: (n: number) => number;
      readonly text: string;
    }
  | { readonly name: string; readonly missing: MissingReason; readonly text: string };

type PresentView = Extract<SignalView, { shards: number }>;

/** Ceiling that ignores float noise below EPSILON (7.000000000000001 → 7). */
function ceil(x: number): number {
  return Math.ceil(x - EPSILON);
}

function withinTolerance(ratio: number, tolerance: number): boolean {
  return Math.abs(ratio - 1) <= tolerance + EPSILON;
}

/** A negative or non-finite value is no reading (the reader maps NaN/±Inf to NotANumber already). */
function usable(r: SignalReading): number | { missing: MissingReason; detail: string } {
  if ("missing" in r) return { missing: r.missing, detail: r.detail };
  if (!Number.isFinite(r.value) || r.value < 0) return { missing: "NotANumber", detail: String(r.value) };
  return r.value;
}

/**
 * Queue depth (the total over the running shards) as HPA's AverageValue external metric: the
 * per-shard average total/current against queueDepthPerShard, and desired = ceil(total / target)
 * (HPA's ceil(current × average / target), the same number).
 */
function queueView(reading: SignalReading, current: number, spec: AutoscalerSpec): SignalView {
  const name = "queue depth";
  const v = usable(reading);
  if (typeof v !== "number")
    return { name, missing: v.missing, text: `${name} missing (${v.missing}: ${v.detail})` };
  const target = spec.targets.queueDepthPerShard;
  const perShard = v / Math.max(1, current);
  const ratio = perShard / target;
  const numbers = `${name} ${fmt(v)} (${perShard.toFixed(1)}/shard)`;
  if (withinTolerance(ratio, spec.tolerance)) {
    return {
      name,
      shards: current,
      ratio,
      ratioAt: (n) => v / n / target,
      text: `${numbers} within ${pct(spec.tolerance)} of target ${fmt(target)}/shard`,
    };
  }
  return {
    name,
    shards: ceil(v / target),
    ratio,
    ratioAt: (n) => v / n / target,
    text: `${numbers} ${ratio > 1 ? ">" : "<"} target ${fmt(target)}/shard (×${ratio.toFixed(2)})`,
  };
}

/**
 * Tick p95 (of the slowest shard) as HPA's utilization: ratio = p95 / target and desired =
 * ceil(current × p95 / target), since a shard's tick time scales with its share of the load.
 */
function latencyView(reading: SignalReading, current: number, spec: AutoscalerSpec): SignalView {
  const name = "tick p95";
  const v = usable(reading);
  if (typeof v !== "number")
    return { name, missing: v.missing, text: `${name} missing (${v.missing}: ${v.detail})` };
  const target = spec.targets.tickLatencySeconds;
  const ratio = v / target;
  const ratioAt = (n: number) => (v * current) / n / target;
  if (withinTolerance(ratio, spec.tolerance)) {
    return {
      name,
      shards: current,
      ratio,
      ratioAt,
      text: `${name} ${v.toFixed(1)}s within ${pct(spec.tolerance)} of target ${fmt(target)}s`,
    };
  }
  return {
    name,
    shards: ceil((current * v) / target),
    ratio,
    ratioAt,
    text: `${name} ${v.toFixed(1)}s ${ratio > 1 ? ">" : "<"} target ${fmt(target)}s (×${ratio.toFixed(2)})`,
  };
}

function isPresent(s: SignalView): s is PresentView {
  return "shards" in s;
}

/** See the module comment; every rule is table-tested in policy.test.ts. */
export function decideShards(input: AutoscaleInput): AutoscaleDecision {
  const { spec, current, now } = input;
  const { minShards, maxShards } = spec;
  const clamp = (n: number) => Math.min(maxShards, Math.max(minShards, n));

  // 1–2. The recommendation.
  const signals = [
    queueView(input.readings.queueDepth, current, spec),
    latencyView(input.readings.tickLatencyP95Seconds, current, spec),
  ];
  const present = signals.filter(isPresent);
  const anyMissing = present.length < signals.length;
  const top = present.reduce<PresentView | undefined>(
    (a, s) => (a && a.shards >= s.shards ? a : s),
    undefined,
  );
  // HPA: with every metric missing nothing moves; with some missing, only a scale-up the present
  // ones ask for goes ahead — never a scale-down (the missing one might have asked for more).
  const missingHold = anyMissing && (top === undefined || top.shards <= current);
  const signalAsk = missingHold || top === undefined ? current : top.shards;
  const floor =
    spec.targets.loadPerShard !== undefined &&
    input.totalLoad !== undefined &&
    Number.isFinite(input.totalLoad)
      ? ceil(Math.max(0, input.totalLoad) / spec.targets.loadPerShard)
      : undefined;
  const floorDrives = floor !== undefined && floor > signalAsk;
  const raw = floorDrives ? floor : signalAsk;
  const recommended = clamp(raw);

  const limits: LimitReason[] = [];
  const notes: string[] = [];
  if (raw > maxShards) {
    limits.push("AtMaximum");
    notes.push(`capped at maxShards ${maxShards} (asked for ${raw})`);
  } else if (raw < minShards) {
    limits.push("AtMinimum");
    notes.push(`raised to minShards ${minShards} (asked for ${raw})`);
  }
  if (missingHold && !floorDrives) limits.push("MissingMetrics");

  // 3–4. Stabilization, hysteresis, rate limits: what would run now if no hold applied.
  const changes = pendingChange(input.memory, current)
    ? input.memory.changes.slice(0, -1)
    : input.memory.changes;
  const steps: LimitReason[] = [];
  const notesBeforeSteps = notes.length;
  let candidate: number;
  if (current < minShards || current > maxShards) {
    // The range moved under the running count (spec edit): HPA brings it into range at once.
    candidate = clamp(current);
    const bound: LimitReason = current > maxShards ? "AtMaximum" : "AtMinimum";
    if (!limits.includes(bound)) limits.push(bound);
    notes.push(`${current} shards is outside minShards..maxShards ${minShards}..${maxShards}`);
  } else {
    candidate = stabilize(input, recommended, steps, notes);
    if (candidate > current) {
      const limit = upLimit(changes, current, now, spec.scaleUp);
      if (candidate > limit) {
        candidate = limit;
        steps.push("RateLimited");
        notes.push(`at most +${spec.scaleUp.maxShardsChange} shards per ${fmt(spec.scaleUp.periodSeconds)}s`);
      }
    } else if (candidate < current) {
      // Both only raise a scale-down; the one that binds (the higher) is the limit reported.
      const kept = hysteresis(present, candidate, current, spec.tolerance);
      const limit = downLimit(changes, current, now, spec.scaleDown);
      const bound = Math.max(kept.shards, limit);
      if (bound > candidate) {
        if (kept.shards === bound) {
          steps.push("Hysteresis");
          notes.push(kept.note);
        }
        if (limit === bound) {
          steps.push("RateLimited");
          notes.push(
            `at most −${spec.scaleDown.maxShardsChange} shards per ${fmt(spec.scaleDown.periodSeconds)}s`,
          );
        }
        candidate = bound;
      }
    }
  }

  // 5. Holds: a reshard is a multi-minute operation; never start one over another or right after.
  let desired = candidate;
  if (desired !== current) {
    const sinceLast = now - (input.lastScaleTime ?? Number.NEGATIVE_INFINITY);
    const interval = spec.minReshardIntervalSeconds * 1000;
    if (input.reshardInFlight) {
      desired = current;
      steps.length = 0;
      notes.length = notesBeforeSteps;
      steps.push("ReshardInFlight");
      notes.push(`a reshard is in flight (would go to ${candidate})`);
    } else if (sinceLast < interval) {
      desired = current;
      steps.length = 0;
      notes.length = notesBeforeSteps;
      steps.push("ReshardInterval");
      notes.push(
        `last reshard ${fmt(sinceLast / 1000)}s ago, next allowed in ${fmt((interval - sinceLast) / 1000)}s (would go to ${candidate})`,
      );
    }
  }
  limits.push(...steps);

  const memory = nextMemory(input, recommended, desired, changes);
  const floorText =
    floor === undefined
      ? undefined
      : `tenant load ${fmt(input.totalLoad ?? 0)} at ${fmt(spec.targets.loadPerShard ?? 0)}/shard needs ${floor}`;
  let reason: string;
  if (desired !== current) {
    const driver = floorDrives
      ? `${floorText}${
          anyMissing
            ? ` (${signals
                .filter((s) => !isPresent(s))
                .map((s) => s.text)
                .join(", ")})`
            : ""
        }`
      : (top?.text ?? (current === 0 ? "no shard running yet" : `${current} shards`));
    reason = `${driver}: ${current} → ${desired} shards`;
  } else {
    reason = `holding ${current} shards: ${[...signals.map((s) => s.text), ...(floorText ? [floorText] : [])].join(", ")}`;
  }
  if (desired !== recommended || notes.length > 0) {
    reason += ` (recommended ${recommended}${notes.length > 0 ? `; ${notes.join("; ")}` : ""})`;
  }
  return { recommended, desired, limits, reason, memory };
}

/**
 * HPA's stabilization: the lowest recommendation of the scale-up window and the highest of the
 * scale-down window (entries strictly newer than the window's start, plus the one just made)
 * bound what `current` may move to.
 */
function stabilize(
  input: AutoscaleInput,
  recommended: number,
  steps: LimitReason[],
  notes: string[],
): number {
  const { spec, current, now } = input;
  const upWindow = spec.scaleUp.stabilizationWindowSeconds;
  const downWindow = spec.scaleDown.stabilizationWindowSeconds;
  let upRecommendation = recommended;
  let downRecommendation = recommended;
  for (const r of input.memory.recommendations) {
    if (r.at > now - upWindow * 1000) upRecommendation = Math.min(upRecommendation, r.shards);
    if (r.at > now - downWindow * 1000) downRecommendation = Math.max(downRecommendation, r.shards);
  }
  const stabilized = Math.min(Math.max(current, upRecommendation), downRecommendation);
  if (stabilized !== recommended) {
    steps.push("Stabilizing");
    notes.push(
      recommended < current
        ? `highest recommendation in the last ${fmt(downWindow)}s is ${downRecommendation}`
        : `lowest recommendation in the last ${fmt(upWindow)}s is ${upRecommendation}`,
    );
  }
  return stabilized;
}

/**
 * The newest change if it is a decision not carried out (its `from` is still the running count:
 * mode Recommend, or a reconcile that did not start the reshard). It is replaced by this decision
 * rather than counted as shards already moved — counting it would rate-limit the same decision
 * away on the next reconcile and make it flap.
 */
function pendingChange(memory: AutoscalerMemory, current: number): boolean {
  const last = memory.changes.at(-1);
  return last !== undefined && last.from === current && last.to !== current;
}

/** Shards added and removed by the changes strictly newer than now − period (HPA's getReplicasChangePerPeriod). */
function changedWithin(changes: AutoscalerMemory["changes"], now: number, periodSeconds: number) {
  let added = 0;
  let removed = 0;
  for (const c of changes) {
    if (c.at <= now - periodSeconds * 1000) continue;
    if (c.to > c.from) added += c.to - c.from;
    else removed += c.from - c.to;
  }
  return { added, removed };
}

/** HPA's Pods policy for scale-up: the count at the period's start plus maxShardsChange, never below current. */
function upLimit(
  changes: AutoscalerMemory["changes"],
  current: number,
  now: number,
  rules: ScalingRules,
): number {
  const { added, removed } = changedWithin(changes, now, rules.periodSeconds);
  return Math.max(current, current - added + removed + rules.maxShardsChange);
}

/** HPA's Pods policy for scale-down: the count at the period's start minus maxShardsChange, never above current. */
function downLimit(
  changes: AutoscalerMemory["changes"],
  current: number,
  now: number,
  rules: ScalingRules,
): number {
  const { added, removed } = changedWithin(changes, now, rules.periodSeconds);
  return Math.min(current, current - added + removed - rules.maxShardsChange);
}

/**
 * The lowest count in candidate..current−1 at which every present signal, projected onto that
 * count, stays strictly below target × (1 − tolerance); `current` if none does. A scale-down that
 * lands inside the dead band would be undone by the next upward blip: two reshards for nothing.
 */
function hysteresis(
  present: readonly PresentView[],
  candidate: number,
  current: number,
  tolerance: number,
): { shards: number; note: string } {
  const ceiling = 1 - tolerance;
  let worst = "";
  for (let n = candidate; n < current; n++) {
    const over = present.find((s) => s.ratioAt(n) >= ceiling - EPSILON);
    if (!over) {
      return { shards: n, note: worst };
    }
    if (n === candidate) {
      worst = `at ${n} shards ${over.name} would be ×${over.ratioAt(n).toFixed(2)} of target (must stay < ×${ceiling.toFixed(2)})`;
    }
  }
  return { shards: current, note: worst };
}

/** The memory to persist: this recommendation added, this decision's change (if any) recorded, both pruned. */
function nextMemory(
  input: AutoscaleInput,
  recommended: number,
  desired: number,
  withoutPending: AutoscalerMemory["changes"],
): AutoscalerMemory {
  const { spec, now, current } = input;
  const keepRecommendations =
    Math.max(spec.scaleUp.stabilizationWindowSeconds, spec.scaleDown.stabilizationWindowSeconds) * 1000;
  const keepChanges = Math.max(spec.scaleUp.periodSeconds, spec.scaleDown.periodSeconds) * 1000;
  // While a reshard is in flight the changes stay as they are: the newest is the one in flight,
  // not a decision to replace (and desired is current, so nothing is added).
  const nextChanges = input.reshardInFlight
    ? input.memory.changes
    : desired !== current
      ? [...withoutPending, { at: now, from: current, to: desired }]
      : withoutPending;
  const recommendations = [...input.memory.recommendations, { at: now, shards: recommended }].filter(
    (r) => r.at > now - keepRecommendations,
  );
  return {
    // An entry with a newer one of the same count never decides a window's min or max again (the
    // newer one stays in every window longer): dropping it bounds the list by the distinct counts
    // (≤ 257, under the status schema's maxItems) however often the reconcile runs.
    recommendations: recommendations.filter(
      (r, i) => !recommendations.slice(i + 1).some((n) => n.shards === r.shards),
    ),
    changes: nextChanges.filter((c) => c.at > now - keepChanges),
  };
}

function fmt(x: number): string {
  return String(Math.round(x * 100) / 100);
}

function pct(fraction: number): string {
  return `${fmt(fraction * 100)}%`;
}
