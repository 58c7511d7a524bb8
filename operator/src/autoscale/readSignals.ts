/**
 * Reads the autoscaler's two signals from Prometheus and turns each answer into a
 * {@link SignalReading}: a number, or missing with a reason. Never throws — a signal that cannot be
 * read is reported, never read as zero. {@link interpretResult} is the pure part.
 */
import { DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";
import {
  type InstantQueryResult,
  type PrometheusClient,
  PrometheusQueryError,
  type PrometheusSeries,
} from "./prometheusClient.ts";
import type { SignalReading, SignalReadings } from "./types.ts";

/**
 * The default per-shard queries (spec.autoscaling.prometheus.*Query), one place to change them.
 * They assume the evaluator exposes, labelled `{namespace, shardset, shard}`:
 *  - `evaluator_queue_depth_held`, a gauge holding the backlog of the last tick until the next one
 *    (`max_over_time` over 2m so a scrape between ticks still sees the last backlog);
 *  - `evaluator_tick_duration_seconds`, a histogram of tick durations.
 * Both keep `shard`, so readSignals can tell a shard that stopped reporting from an idle one.
 */
export const DEFAULT_SIGNAL_QUERIES = {
  queueDepth: DEFAULTS.queueDepthQuery,
  tickLatency: DEFAULTS.tickLatencyQuery,
} as const;

/** The label that says which shard a series is about. */
export const SHARD_LABEL = "shard";

/** How per-shard values become the signal: queue depth adds up, tick latency is the slowest shard's. */
export type ShardAggregation = "sum" | "max";

export interface ReadSignalsOptions {
  /** PromQL with `{{namespace}}` and `{{name}}` placeholders. */
  readonly queueDepthQuery: string;
  readonly tickLatencyQuery: string;
  /** The EvaluatorShardSet's namespace and name. */
  readonly namespace: string;
  readonly name: string;
  /** Shards running now: indexes [0, runningShards) must report, higher ones are gone. */
  readonly runningShards: number;
  /** Shards at or above this index were added by a scale-up that just finished (see {@link warmingFrom}). */
  readonly warmingFrom?: number | undefined;
  /** Evaluation time of both queries and `readAt`, ms since the epoch. */
  readonly now: number;
  /** Per query; both run at once, so this bounds the whole read. */
  readonly timeoutMs: number;
}

/** Both signals of one set at `opts.now`. Never throws: every failure is a missing reading. */
export async function readSignals(
  client: Pick<PrometheusClient, "query">,
  opts: ReadSignalsOptions,
): Promise<SignalReadings> {
  const read = async (template: string, aggregate: ShardAggregation): Promise<SignalReading> => {
    try {
      const result = await client.query(renderQuery(template, opts), {
        time: opts.now,
        timeoutMs: opts.timeoutMs,
      });
      return interpretResult(result, {
        runningShards: opts.runningShards,
        warmingFrom: opts.warmingFrom,
        aggregate,
      });
    } catch (err) {
      return readingFromError(err);
    }
  };
  const [queueDepth, tickLatencyP95Seconds] = await Promise.all([
    read(opts.queueDepthQuery, "sum"),
    read(opts.tickLatencyQuery, "max"),
  ]);
  return { queueDepth, tickLatencyP95Seconds, readAt: opts.now };
}

/**
 * Warm-up after a scale-up: a new shard's series appear only once its process has started, been
 * discovered and scraped, and (for a rate) ticked twice. For two tick intervals plus a minute after
 * a scale-up N → N′ finished, shards N..N′−1 not reporting yet make a reading `WarmingUp` rather than
 * `Stale`: still missing (the count holds), but not an outage to warn about. The same holds for
 * every shard of a set created that recently (0). Undefined when neither is that recent.
 */
export function warmingFrom(set: EvaluatorShardSet, now: number): number | undefined {
  const tickMs = (set.spec.evaluator.tickIntervalSeconds ?? DEFAULTS.tickIntervalSeconds) * 1000;
  const recent = (at: string | Date | undefined) =>
    at !== undefined && now - new Date(at).getTime() <= 2 * tickMs + 60_000;
  // A set just created: every shard is new.
  if (recent(set.metadata.creationTimestamp)) return 0;
  const last = set.status?.lastReshard;
  if (!last?.finishedAt || last.to <= last.from) return undefined;
  return recent(last.finishedAt) ? last.from : undefined;
}

/**
 * Substitutes `{{namespace}}` and `{{name}}`. The values are escaped for a PromQL double-quoted
 * string, where the default queries put them (Kubernetes names hold neither `"` nor `\`, so this
 * only guards against a query that is not what it seems).
 */
export function renderQuery(template: string, set: { namespace: string; name: string }): string {
  const quote = (s: string) => s.replace(/[\\"]/g, (c) => `\\${c}`);
  return template.replaceAll("{{namespace}}", quote(set.namespace)).replaceAll("{{name}}", quote(set.name));
}

/**
 * One answer → one reading:
 *  - a scalar, or a single series without a `shard` label: the value as is;
 *  - series labelled `shard`: every running shard (index < runningShards) must have exactly one,
 *    else Stale (WarmingUp when only shards at or above `warmingFrom` lack one, or read NaN);
 *    series of gone shards are ignored; the rest aggregate (`sum` or `max`);
 *  - several series without `shard` (or a mix, or a shard label that is not an index): Ambiguous;
 *  - no series: Empty; NaN or ±Inf in a value used: NotANumber.
 */
export function interpretResult(result: InstantQueryResult, opts: ShardOptions): SignalReading {
  if (result.resultType === "scalar") return finite(result.value, "the scalar");
  const { series } = result;
  if (series.length === 0) {
    return opts.warmingFrom === 0
      ? { missing: "WarmingUp", detail: "no series yet: every shard has just started" }
      : { missing: "Empty", detail: "the query returned no series" };
  }

  const unlabelled = series.filter((s) => s.labels[SHARD_LABEL] === undefined);
  if (unlabelled.length === series.length) {
    if (series.length === 1) return finite(series[0]!.value, "the series");
    return {
      missing: "Ambiguous",
      detail: `${series.length} series without a ${SHARD_LABEL} label: aggregate them or keep by (${SHARD_LABEL})`,
    };
  }
  if (unlabelled.length > 0) {
    return {
      missing: "Ambiguous",
      detail: `${series.length - unlabelled.length} series with a ${SHARD_LABEL} label and ${unlabelled.length} without`,
    };
  }
  return interpretPerShard(series, opts);
}

interface ShardOptions {
  readonly runningShards: number;
  readonly warmingFrom?: number | undefined;
  readonly aggregate: ShardAggregation;
}

function interpretPerShard(series: readonly PrometheusSeries[], opts: ShardOptions): SignalReading {
  // Shards at or above runningShards are gone (a scale-down): their series linger until they go stale.
  const running = new Map<number, number>();
  for (const s of series) {
    const label = s.labels[SHARD_LABEL]!;
    if (!/^(0|[1-9][0-9]*)$/.test(label)) {
      return {
        missing: "Ambiguous",
        detail: `${SHARD_LABEL} label ${JSON.stringify(label)} is not a shard index`,
      };
    }
    const shard = Number(label);
    if (shard >= opts.runningShards) continue;
    // Two series for one shard (the query kept a pod label across a restart): which one is current is unknown.
    if (running.has(shard)) {
      return {
        missing: "Ambiguous",
        detail: `several series for shard ${shard}: aggregate by (${SHARD_LABEL}) in the query`,
      };
    }
    running.set(shard, s.value);
  }

  const missing: number[] = [];
  for (let shard = 0; shard < opts.runningShards; shard++) if (!running.has(shard)) missing.push(shard);
  const warming = (shard: number) => opts.warmingFrom !== undefined && shard >= opts.warmingFrom;
  if (missing.length > 0 && missing.every(warming)) {
    return {
      missing: "WarmingUp",
      detail: `no series yet for new ${missing.length === 1 ? "shard" : "shards"} ${listShards(missing)} (${opts.runningShards} running)`,
    };
  }
  if (missing.length > 0) {
    return {
      missing: "Stale",
      detail: `no series for ${missing.length === 1 ? "shard" : "shards"} ${listShards(missing)} (${opts.runningShards} running)`,
    };
  }
  // Only with no shard running: every series is of a gone shard.
  if (running.size === 0) {
    return { missing: "Stale", detail: `only shards that are gone report (${opts.runningShards} running)` };
  }
  const used = [...running].sort(([a], [b]) => a - b);
  for (const [shard, value] of used) {
    if (Number.isFinite(value)) continue;
    // A new shard's first rate() over too few samples reads NaN.
    if (warming(shard)) return { missing: "WarmingUp", detail: `new shard ${shard}: ${formatValue(value)}` };
    return { missing: "NotANumber", detail: `shard ${shard}: ${formatValue(value)}` };
  }
  const values = used.map(([, value]) => value);
  return { value: opts.aggregate === "sum" ? values.reduce((a, b) => a + b, 0) : Math.max(...values) };
}

/** A client failure → Unreachable (no answer) or QueryError (an answer that is not a result). */
export function readingFromError(err: unknown): SignalReading {
  if (err instanceof PrometheusQueryError) {
    const unreachable = err.kind === "unreachable" || err.kind === "timeout";
    return { missing: unreachable ? "Unreachable" : "QueryError", detail: err.message };
  }
  // Not the client's error (a bug): report it rather than throw into the reconcile.
  return { missing: "QueryError", detail: err instanceof Error ? err.message : String(err) };
}

function finite(value: number, what: string): SignalReading {
  return Number.isFinite(value)
    ? { value }
    : { missing: "NotANumber", detail: `${what} is ${formatValue(value)}` };
}

/** As Prometheus writes it. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  return value > 0 ? "+Inf" : "-Inf";
}

/** `3, 4, 5` — at most 10, so a detail stays one readable line. */
function listShards(shards: readonly number[]): string {
  const shown = shards.slice(0, 10).join(", ");
  return shards.length > 10 ? `${shown} and ${shards.length - 10} more` : shown;
}
