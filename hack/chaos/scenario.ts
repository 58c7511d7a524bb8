/**
 * A chaos scenario: the size of the system a chaos run brings up, the telemetry it inserts, and a
 * timeline of resizes, mode switches, load changes and faults (`scenarios/*.json`). This module
 * parses and validates a scenario file, gives the verdict's default bounds, and lists the outages
 * the timeline causes, during which missed evaluations and late alerts are excused.
 *
 * Pure apart from {@link loadScenario}, which reads the file.
 */
import { readFile } from "node:fs/promises";
import type { AutoscalingMode, ReshardProgress } from "../../operator/src/api/types.ts";

/** Optional overrides of the verdict's bounds, in seconds (defaults: {@link resolvedBounds}). */
export interface ScenarioBounds {
  /** The longest a tenant may go without an evaluation outside outages. */
  readonly maxGapSeconds?: number;
  /** The longest from the first reading of a high episode to its alert (and from the first low reading to the resolve). */
  readonly alertLatencySeconds?: number;
  /** How long after a fault ends its effects are still excused (restarts, backoff, catch-up). */
  readonly recoverySeconds?: number;
}

/** The services a `stop` action may stop. */
export type StoppableService = "valkey" | "postgres" | "prometheus";

/** A signal a `kill` action sends. */
export type KillSignal = "SIGKILL" | "SIGTERM";

/** A reshard phase as the set's `status.reshard.phase` reports it. */
export type ReshardPhase = ReshardProgress["phase"];

/** One step of the timeline. `at`: seconds from the run's start, in [0, durationSeconds). */
export type Action = { readonly at: number } & ActionBody;

/** What an {@link Action} does. */
export type ActionBody =
  /** `kubectl scale` the set to `shards`. */
  | { readonly kind: "scale"; readonly shards: number }
  /** Switch `spec.autoscaling.mode`. */
  | { readonly kind: "mode"; readonly mode: AutoscalingMode }
  /** From now on, the first `tenants` seeded tenants receive telemetry (a raise or a drop). */
  | { readonly kind: "load"; readonly tenants: number }
  /** Kill one evaluator process; the shard runner restarts it with backoff. */
  | {
      readonly kind: "kill";
      readonly target: "evaluator";
      readonly shard: number;
      readonly signal: KillSignal;
    }
  /**
   * Kill the operator; with `phase`, first wait until the set's status reports a reshard in that
   * phase (so the kill lands in the middle of a reshard).
   */
  | {
      readonly kind: "kill";
      readonly target: "operator";
      readonly signal: KillSignal;
      readonly phase?: ReshardPhase;
    }
  /** Stop a service now and start it again `seconds` later. */
  | { readonly kind: "stop"; readonly service: StoppableService; readonly seconds: number }
  /** SIGSTOP one evaluator, SIGCONT it `seconds` later. */
  | { readonly kind: "pause"; readonly shard: number; readonly seconds: number }
  /**
   * Restart one evaluator with its clock off by `seconds` (negative: behind), and `|seconds|` later
   * restart it with the right clock.
   */
  | { readonly kind: "skew"; readonly shard: number; readonly seconds: number }
  /** Change the evaluator pod template: a rollout of every shard. */
  | { readonly kind: "roll" };

/** The kinds of {@link Action}. */
export type ActionKind = Action["kind"];

/** A parsed, validated scenario. */
export interface Scenario {
  readonly name: string;
  /** Tenants seeded (ids `chaos-t0000`…). */
  readonly tenants: number;
  readonly devicesPerTenant: number;
  /** The evaluators' TICK_INTERVAL_SECONDS. */
  readonly tickSeconds: number;
  /** One reading per device every `readingSeconds`. */
  readonly readingSeconds: number;
  /** Length of the timeline; every action has `at` below it. */
  readonly durationSeconds: number;
  readonly initialShards: number;
  /** The autoscaler's maximum (its minimum is 1); shard indices in the timeline are below it. */
  readonly maxShards: number;
  readonly bounds?: ScenarioBounds;
  /** Sorted by `at`; actions at the same second keep the file's order. */
  readonly timeline: readonly Action[];
}

/** A scenario file that does not parse or validate; the message names the file and the JSON path. */
export class ScenarioError extends Error {
  override readonly name = "ScenarioError";
}

/** The autoscaling modes, as the CRD spells them. */
const MODES: Record<AutoscalingMode, true> = { Off: true, Recommend: true, Auto: true };
/** The reshard phases the status reports; a phase it never reports would make a kill wait forever. */
const RESHARD_PHASES: Record<ReshardPhase, true> = { ScalingUp: true, MovingTenants: true, Draining: true };
const SERVICES: Record<StoppableService, true> = { valkey: true, postgres: true, prometheus: true };
const SIGNALS: Record<KillSignal, true> = { SIGKILL: true, SIGTERM: true };

const TOP_KEYS = [
  "name",
  "tenants",
  "devicesPerTenant",
  "tickSeconds",
  "readingSeconds",
  "durationSeconds",
  "initialShards",
  "maxShards",
  "bounds",
  "timeline",
];
const BOUND_KEYS = ["maxGapSeconds", "alertLatencySeconds", "recoverySeconds"];
/** The keys each action kind takes besides `at` and `kind` (a kill's depend on its target). */
const ACTION_KEYS: Record<Exclude<ActionKind, "kill">, readonly string[]> = {
  scale: ["shards"],
  mode: ["mode"],
  load: ["tenants"],
  stop: ["service", "seconds"],
  pause: ["shard", "seconds"],
  skew: ["shard", "seconds"],
  roll: [],
};
const KILL_KEYS = { evaluator: ["target", "shard", "signal"], operator: ["target", "signal", "phase"] };
const ACTION_KINDS: readonly ActionKind[] = [...Object.keys(ACTION_KEYS), "kill"] as ActionKind[];

type Fail = (path: string, problem: string) => never;
type Fields = Readonly<Record<string, unknown>>;

/**
 * Validates a parsed scenario file. Throws a {@link ScenarioError} naming `source` and the JSON path
 * of the first problem, e.g. `ci.json: timeline[3].shards: must be an integer from 1 to 5`. Unknown
 * keys and action kinds are refused, so a typo never silently drops a fault.
 */
export function parseScenario(json: unknown, source: string): Scenario {
  const fail: Fail = (path, problem) => {
    throw new ScenarioError(`${source}: ${path}: ${problem}`);
  };
  const root = object(json, "(top level)", fail);
  onlyKeys(root, TOP_KEYS, "", fail);
  const name = root["name"];
  if (typeof name !== "string" || name.trim() === "") fail("name", "must be a non-empty string");
  const tenants = integer(root, "tenants", "", 1, Number.MAX_SAFE_INTEGER, fail);
  const devicesPerTenant = integer(root, "devicesPerTenant", "", 1, Number.MAX_SAFE_INTEGER, fail);
  const tickSeconds = integer(root, "tickSeconds", "", 1, Number.MAX_SAFE_INTEGER, fail);
  const readingSeconds = integer(root, "readingSeconds", "", 1, Number.MAX_SAFE_INTEGER, fail);
  const durationSeconds = positive(root, "durationSeconds", "", fail);
  const maxShards = integer(root, "maxShards", "", 1, Number.MAX_SAFE_INTEGER, fail);
  const initialShards = integer(root, "initialShards", "", 1, maxShards, fail, "maxShards");

  let bounds: ScenarioBounds | undefined;
  if (root["bounds"] !== undefined) {
    const b = object(root["bounds"], "bounds", fail);
    onlyKeys(b, BOUND_KEYS, "bounds.", fail);
    const read = (key: string) => (b[key] === undefined ? {} : { [key]: positive(b, key, "bounds.", fail) });
    bounds = { ...read("maxGapSeconds"), ...read("alertLatencySeconds"), ...read("recoverySeconds") };
  }

  const rawTimeline = root["timeline"];
  if (!Array.isArray(rawTimeline)) fail("timeline", "must be an array");
  const limits = { tenants, maxShards, durationSeconds };
  const timeline = (rawTimeline as unknown[]).map((raw, i) =>
    parseAction(raw, `timeline[${i}]`, limits, fail),
  );
  // Array.prototype.sort is stable: actions at the same second keep the file's order.
  timeline.sort((a, b) => a.at - b.at);

  return {
    name: (name as string).trim(),
    tenants,
    devicesPerTenant,
    tickSeconds,
    readingSeconds,
    durationSeconds,
    initialShards,
    maxShards,
    ...(bounds === undefined ? {} : { bounds }),
    timeline,
  };
}

/** Reads and parses a scenario file (see {@link parseScenario}); errors name `path`. */
export async function loadScenario(path: string): Promise<Scenario> {
  const text = await readFile(path, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScenarioError(`${path}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseScenario(json, path);
}

interface Limits {
  readonly tenants: number;
  readonly maxShards: number;
  readonly durationSeconds: number;
}

function parseAction(raw: unknown, path: string, limits: Limits, fail: Fail): Action {
  const a = object(raw, path, fail);
  const kind = a["kind"];
  if (typeof kind !== "string" || !(ACTION_KINDS as readonly string[]).includes(kind)) {
    fail(`${path}.kind`, `must be one of ${ACTION_KINDS.join(", ")} (got ${JSON.stringify(kind)})`);
  }
  const p = `${path}.`;
  const at = a["at"];
  if (typeof at !== "number" || !Number.isFinite(at) || at < 0 || at >= limits.durationSeconds) {
    fail(`${p}at`, `must be a number ≥ 0 and below durationSeconds (${limits.durationSeconds})`);
  }
  const shard = () => integer(a, "shard", p, 0, limits.maxShards - 1, fail, "maxShards − 1");
  /** A fault that lasts `seconds` must be over before the run ends, so the end state is judged healthy. */
  const duration = () => {
    const seconds = positive(a, "seconds", p, fail);
    if ((at as number) + seconds > limits.durationSeconds) {
      fail(
        `${p}seconds`,
        `must end by durationSeconds (${limits.durationSeconds}): at + seconds is ${(at as number) + seconds}`,
      );
    }
    return seconds;
  };

  switch (kind as ActionKind) {
    case "scale":
      onlyKeys(a, ["at", "kind", ...ACTION_KEYS.scale], p, fail);
      return {
        at: at as number,
        kind: "scale",
        shards: integer(a, "shards", p, 1, limits.maxShards, fail, "maxShards"),
      };
    case "mode":
      onlyKeys(a, ["at", "kind", ...ACTION_KEYS.mode], p, fail);
      return { at: at as number, kind: "mode", mode: oneOf(a, "mode", p, MODES, fail) };
    case "load":
      onlyKeys(a, ["at", "kind", ...ACTION_KEYS.load], p, fail);
      return {
        at: at as number,
        kind: "load",
        tenants: integer(a, "tenants", p, 0, limits.tenants, fail, "tenants"),
      };
    case "kill": {
      const target = oneOf(a, "target", p, { evaluator: true, operator: true }, fail);
      onlyKeys(a, ["at", "kind", ...KILL_KEYS[target]], p, fail);
      const signal = oneOf(a, "signal", p, SIGNALS, fail);
      if (target === "evaluator") return { at: at as number, kind: "kill", target, shard: shard(), signal };
      if (a["phase"] === undefined) return { at: at as number, kind: "kill", target, signal };
      return {
        at: at as number,
        kind: "kill",
        target,
        signal,
        phase: oneOf(a, "phase", p, RESHARD_PHASES, fail),
      };
    }
    case "stop": {
      onlyKeys(a, ["at", "kind", ...ACTION_KEYS.stop], p, fail);
      const service = oneOf(a, "service", p, SERVICES, fail);
      return { at: at as number, kind: "stop", service, seconds: duration() };
    }
    case "pause": {
      onlyKeys(a, ["at", "kind", ...ACTION_KEYS.pause], p, fail);
      const index = shard();
      return { at: at as number, kind: "pause", shard: index, seconds: duration() };
    }
    case "skew": {
      onlyKeys(a, ["at", "kind", ...ACTION_KEYS.skew], p, fail);
      const index = shard();
      const seconds = a["seconds"];
      if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds === 0) {
        fail(`${p}seconds`, "must be a non-zero number (negative: the clock runs behind)");
      }
      const end = (at as number) + Math.abs(seconds as number);
      if (end > limits.durationSeconds) {
        fail(
          `${p}seconds`,
          `must end by durationSeconds (${limits.durationSeconds}): at + |seconds| is ${end}`,
        );
      }
      return { at: at as number, kind: "skew", shard: index, seconds: seconds as number };
    }
    case "roll":
      onlyKeys(a, ["at", "kind"], p, fail);
      return { at: at as number, kind: "roll" };
  }
}

function object(value: unknown, path: string, fail: Fail): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, "must be an object");
  return value as Fields;
}

function onlyKeys(o: Fields, allowed: readonly string[], prefix: string, fail: Fail): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) fail(`${prefix}${key}`, `unknown key (allowed here: ${allowed.join(", ")})`);
  }
}

/** An integer in [min, max]; `maxName` says where the maximum comes from. */
function integer(
  o: Fields,
  key: string,
  prefix: string,
  min: number,
  max: number,
  fail: Fail,
  maxName?: string,
): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(
      `${prefix}${key}`,
      maxName === undefined
        ? `must be an integer ≥ ${min}`
        : `must be an integer from ${min} to ${max} (${maxName})`,
    );
  }
  return v as number;
}

function positive(o: Fields, key: string, prefix: string, fail: Fail): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(`${prefix}${key}`, "must be a number > 0");
  return v as number;
}

function oneOf<T extends string>(
  o: Fields,
  key: string,
  prefix: string,
  values: Record<T, true>,
  fail: Fail,
): T {
  const v = o[key];
  if (typeof v !== "string" || !Object.hasOwn(values, v)) {
    fail(`${prefix}${key}`, `must be one of ${Object.keys(values).join(", ")} (got ${JSON.stringify(v)})`);
  }
  return v as T;
}

/** The verdict's bounds in seconds, every one given. */
export interface ResolvedBounds {
  readonly maxGapSeconds: number;
  readonly alertLatencySeconds: number;
  readonly recoverySeconds: number;
}

/**
 * The scenario's bounds with defaults: an evaluation gap of two ticks plus 10 s; an alert within
 * two ticks plus one reading interval plus 10 s of its first reading; 2 ticks plus 20 s to recover
 * from a fault.
 */
export function resolvedBounds(s: Scenario): ResolvedBounds {
  return {
    maxGapSeconds: s.bounds?.maxGapSeconds ?? 2 * s.tickSeconds + 10,
    alertLatencySeconds: s.bounds?.alertLatencySeconds ?? 2 * s.tickSeconds + s.readingSeconds + 10,
    recoverySeconds: s.bounds?.recoverySeconds ?? 2 * s.tickSeconds + 20,
  };
}

/** What an outage is: a stopped service, or a paused, killed or clock-skewed evaluator. */
export type OutageKind = StoppableService | "pause" | "kill" | "skew";

/** A time during which evaluations may legitimately stall, in ms from the run's start. */
export interface Outage {
  readonly kind: OutageKind;
  readonly fromMs: number;
  readonly toMs: number;
  /** A killed, paused or skewed evaluator's shard: only its tenants are excused. */
  readonly shard?: number;
}

/**
 * The outages the timeline causes, sorted by start, each extended at its end by `recoverySeconds`:
 * - a stopped service, for as long as it is stopped;
 * - a paused evaluator, for as long as it is paused;
 * - a killed evaluator, from the kill (the shard runner restarts it with backoff);
 * - a skewed evaluator, for the `|seconds|` it runs with its clock off: its tick times are off
 *   (ahead: the fence then refuses other evaluators' commits of its tenants as stale until the real
 *   time catches up; behind: the fence refuses its own).
 * Prometheus stops are listed too (kind `prometheus`): they only blind the autoscaler, so the verdict
 * does not excuse evaluation gaps with them. Resizes, mode switches, load changes, rollouts and
 * operator kills are no outages: a reshard must be seamless.
 */
export function outageIntervals(s: Scenario): Outage[] {
  const recoveryMs = resolvedBounds(s).recoverySeconds * 1000;
  const outages: Outage[] = [];
  const add = (kind: OutageKind, at: number, lastsSeconds: number, shard?: number) =>
    outages.push({
      kind,
      fromMs: at * 1000,
      toMs: (at + lastsSeconds) * 1000 + recoveryMs,
      ...(shard === undefined ? {} : { shard }),
    });
  for (const a of s.timeline) {
    if (a.kind === "stop") add(a.service, a.at, a.seconds);
    else if (a.kind === "pause") add("pause", a.at, a.seconds, a.shard);
    else if (a.kind === "kill" && a.target === "evaluator") add("kill", a.at, 0, a.shard);
    else if (a.kind === "skew") add("skew", a.at, Math.abs(a.seconds), a.shard);
  }
  return outages.sort((a, b) => a.fromMs - b.fromMs);
}
