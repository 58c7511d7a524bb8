import { describe, expect, it } from "vitest";
import { type InstantQueryResult, PrometheusQueryError, parsePrometheusValue } from "./prometheusClient.ts";
import {
  DEFAULT_SIGNAL_QUERIES,
  interpretResult,
  readingFromError,
  readSignals,
  renderQuery,
  type ShardAggregation,
  warmingFrom,
} from "./readSignals.ts";
import type { SignalReading } from "./types.ts";

const T = 1_700_000_000_000;

function vector(...series: Array<[labels: Record<string, string>, value: number]>): InstantQueryResult {
  return {
    resultType: "vector",
    series: series.map(([labels, value]) => ({ labels, value, timestampMs: T })),
    warnings: [],
  };
}

function scalar(value: number): InstantQueryResult {
  return { resultType: "scalar", value, timestampMs: T, warnings: [] };
}

/** Per-shard series: `shards({0: 5, 1: 7})`. */
function shards(values: Record<number, number>): InstantQueryResult {
  return vector(
    ...Object.entries(values).map(([shard, v]): [Record<string, string>, number] => [{ shard }, v]),
  );
}

describe("interpretResult", () => {
  const cases: Array<{
    name: string;
    result: InstantQueryResult;
    runningShards: number;
    aggregate: ShardAggregation;
    expected: SignalReading;
  }> = [
    {
      name: "a scalar is used as is",
      result: scalar(42),
      runningShards: 3,
      aggregate: "sum",
      expected: { value: 42 },
    },
    {
      name: "one series without a shard label is used as is",
      result: vector([{ job: "evaluator" }, 17]),
      runningShards: 3,
      aggregate: "sum",
      expected: { value: 17 },
    },
    {
      name: "per shard, every running shard reporting: queue depth sums",
      result: shards({ 0: 5, 1: 7, 2: 11 }),
      runningShards: 3,
      aggregate: "sum",
      expected: { value: 23 },
    },
    {
      name: "per shard, every running shard reporting: tick latency takes the slowest",
      result: shards({ 0: 0.1, 1: 0.9, 2: 0.4 }),
      runningShards: 3,
      aggregate: "max",
      expected: { value: 0.9 },
    },
    {
      name: "per shard, one running shard missing: Stale naming it",
      result: shards({ 0: 5, 1: 7, 2: 11 }),
      runningShards: 4,
      aggregate: "sum",
      expected: { missing: "Stale", detail: "no series for shard 3 (4 running)" },
    },
    {
      name: "per shard, several missing: Stale naming them all",
      result: shards({ 1: 7 }),
      runningShards: 4,
      aggregate: "max",
      expected: { missing: "Stale", detail: "no series for shards 0, 2, 3 (4 running)" },
    },
    {
      name: "series of gone shards are ignored (and their NaN with them)",
      result: shards({ 0: 5, 1: 7, 2: Number.NaN, 3: 100 }),
      runningShards: 2,
      aggregate: "sum",
      expected: { value: 12 },
    },
    {
      name: "only gone shards with none running: Stale",
      result: shards({ 2: 5 }),
      runningShards: 0,
      aggregate: "sum",
      expected: { missing: "Stale", detail: "only shards that are gone report (0 running)" },
    },
    {
      name: "a NaN scalar: NotANumber",
      result: scalar(Number.NaN),
      runningShards: 3,
      aggregate: "sum",
      expected: { missing: "NotANumber", detail: "the scalar is NaN" },
    },
    {
      name: "NaN on a running shard: NotANumber naming it",
      result: shards({ 0: 0.2, 1: Number.NaN }),
      runningShards: 2,
      aggregate: "max",
      expected: { missing: "NotANumber", detail: "shard 1: NaN" },
    },
    {
      name: "+Inf on a running shard: NotANumber",
      result: shards({ 0: Number.POSITIVE_INFINITY, 1: 3 }),
      runningShards: 2,
      aggregate: "max",
      expected: { missing: "NotANumber", detail: "shard 0: +Inf" },
    },
    {
      name: "-Inf in a single series: NotANumber",
      result: vector([{}, Number.NEGATIVE_INFINITY]),
      runningShards: 1,
      aggregate: "sum",
      expected: { missing: "NotANumber", detail: "the series is -Inf" },
    },
    {
      name: "no series: Empty",
      result: vector(),
      runningShards: 3,
      aggregate: "sum",
      expected: { missing: "Empty", detail: "the query returned no series" },
    },
    {
      name: "several series without a shard label: Ambiguous",
      result: vector([{ pod: "a" }, 1], [{ pod: "b" }, 2]),
      runningShards: 2,
      aggregate: "sum",
      expected: {
        missing: "Ambiguous",
        detail: "2 series without a shard label: aggregate them or keep by (shard)",
      },
    },
    {
      name: "series with and without a shard label: Ambiguous",
      result: vector([{ shard: "0" }, 1], [{}, 2]),
      runningShards: 1,
      aggregate: "sum",
      expected: { missing: "Ambiguous", detail: "1 series with a shard label and 1 without" },
    },
    {
      name: "two series for one running shard: Ambiguous",
      result: vector([{ shard: "0", pod: "old" }, 1], [{ shard: "0", pod: "new" }, 2]),
      runningShards: 1,
      aggregate: "sum",
      expected: {
        missing: "Ambiguous",
        detail: "several series for shard 0: aggregate by (shard) in the query",
      },
    },
    {
      name: "a shard label that is not an index: Ambiguous",
      result: vector([{ shard: "01" }, 1]),
      runningShards: 2,
      aggregate: "sum",
      expected: { missing: "Ambiguous", detail: 'shard label "01" is not a shard index' },
    },
  ];

  it.each(cases)("$name", ({ result, runningShards, aggregate, expected }) => {
    expect(interpretResult(result, { runningShards, aggregate })).toEqual(expected);
  });
});

describe("readingFromError", () => {
  it.each([
    ["unreachable", "Unreachable"],
    ["timeout", "Unreachable"],
    ["http", "QueryError"],
    ["api", "QueryError"],
    ["bad-response", "QueryError"],
  ] as const)("%s → %s, with the message as detail", (kind, missing) => {
    expect(readingFromError(new PrometheusQueryError(kind, "what happened"))).toEqual({
      missing,
      detail: "what happened",
    });
  });
});

describe("parsePrometheusValue", () => {
  it.each([
    ["1.5", 1.5],
    ["1e+06", 1e6],
    ["-0.25", -0.25],
    ["NaN", Number.NaN],
    ["+Inf", Number.POSITIVE_INFINITY],
    ["-Inf", Number.NEGATIVE_INFINITY],
    ["", undefined],
    ["Infinity", undefined],
    ["abc", undefined],
  ])("%j → %s", (text, expected) => {
    expect(parsePrometheusValue(text)).toBe(expected);
  });
});

describe("renderQuery", () => {
  it("substitutes every {{namespace}} and {{name}}", () => {
    expect(renderQuery(DEFAULT_SIGNAL_QUERIES.queueDepth, { namespace: "team-a", name: "rules" })).toBe(
      'max by (shard) (max_over_time(evaluator_queue_depth_held{namespace="team-a",shardset="rules"}[2m]))',
    );
    expect(renderQuery("{{name}}/{{name}}", { namespace: "n", name: "x" })).toBe("x/x");
  });

  it("escapes quotes and backslashes for a PromQL string", () => {
    expect(renderQuery('{a="{{name}}"}', { namespace: "n", name: 'x"\\' })).toBe('{a="x\\"\\\\"}');
  });
});

describe("readSignals", () => {
  it("queries both signals at `now` with the timeout, and never throws", async () => {
    const calls: Array<{ promql: string; time: number | undefined; timeoutMs: number | undefined }> = [];
    const client = {
      async query(promql: string, opts: { time?: number; timeoutMs?: number } = {}) {
        calls.push({ promql, time: opts.time, timeoutMs: opts.timeoutMs });
        if (promql.startsWith("queue")) return shards({ 0: 4, 1: 6 });
        throw new PrometheusQueryError("timeout", "Prometheus did not answer within 500 ms");
      },
    };
    const readings = await readSignals(client, {
      queueDepthQuery: 'queue{ns="{{namespace}}",set="{{name}}"}',
      tickLatencyQuery: 'latency{set="{{name}}"}',
      namespace: "team-a",
      name: "rules",
      runningShards: 2,
      now: T,
      timeoutMs: 500,
    });
    expect(readings).toEqual({
      queueDepth: { value: 10 },
      tickLatencyP95Seconds: { missing: "Unreachable", detail: "Prometheus did not answer within 500 ms" },
      readAt: T,
    });
    expect(calls).toEqual(
      expect.arrayContaining([
        { promql: 'queue{ns="team-a",set="rules"}', time: T, timeoutMs: 500 },
        { promql: 'latency{set="rules"}', time: T, timeoutMs: 500 },
      ]),
    );
  });
});

describe("warm-up after a scale-up", () => {
  const opts = { runningShards: 3, aggregate: "sum" as const };
  it("only new shards without a series: WarmingUp, not Stale", () => {
    expect(interpretResult(shards({ 0: 4 }), { ...opts, warmingFrom: 1 })).toEqual({
      missing: "WarmingUp",
      detail: "no series yet for new shards 1, 2 (3 running)",
    });
  });
  it("an old shard without a series is Stale, whatever the new ones do", () => {
    expect(interpretResult(shards({ 1: 4, 2: 1 }), { ...opts, warmingFrom: 1 })).toMatchObject({
      missing: "Stale",
    });
  });
  it("a new shard's NaN (rate over too few samples) is WarmingUp; an old shard's is NotANumber", () => {
    expect(interpretResult(shards({ 0: 4, 1: 1, 2: Number.NaN }), { ...opts, warmingFrom: 1 })).toMatchObject(
      {
        missing: "WarmingUp",
      },
    );
    expect(interpretResult(shards({ 0: Number.NaN, 1: 1, 2: 2 }), { ...opts, warmingFrom: 1 })).toMatchObject(
      {
        missing: "NotANumber",
      },
    );
  });
  it("every shard new (the first placement): no series is WarmingUp, not Empty", () => {
    expect(interpretResult(shards({}), { ...opts, warmingFrom: 0 })).toMatchObject({ missing: "WarmingUp" });
    expect(interpretResult(shards({}), opts)).toMatchObject({ missing: "Empty" });
  });
  it("once every shard reports, the warm-up changes nothing", () => {
    expect(interpretResult(shards({ 0: 4, 1: 1, 2: 2 }), { ...opts, warmingFrom: 1 })).toEqual({ value: 7 });
  });
});

describe("warmingFrom", () => {
  const finishedAt = "2026-01-01T00:00:00.000Z";
  const at = (s: number) => Date.parse(finishedAt) + s * 1000;
  const set = (from: number, to: number, tickIntervalSeconds = 60) =>
    ({
      metadata: { name: "alerts", namespace: "iot" },
      spec: {
        evaluator: {
          image: "e",
          tickIntervalSeconds,
          databaseSecretRef: { name: "d" },
          valkeySecretRef: { name: "v" },
        },
        database: { secretRef: { name: "o" } },
      },
      status: { lastReshard: { from, to, finishedAt, moved: 0 } },
    }) as unknown as Parameters<typeof warmingFrom>[0];
  it("excuses the shards a scale-up added for two ticks and a minute after it finished", () => {
    expect(warmingFrom(set(2, 4), at(10))).toBe(2);
    expect(warmingFrom(set(2, 4), at(180))).toBe(2); // 2 × 60 s + 60 s
    expect(warmingFrom(set(2, 4), at(181))).toBeUndefined();
    expect(warmingFrom(set(2, 4, 5), at(71))).toBeUndefined(); // 2 × 5 s + 60 s
  });
  it("a scale-down adds no shard to excuse", () => {
    expect(warmingFrom(set(4, 2), at(10))).toBeUndefined();
  });
  it("every shard of a set created within the warm-up is new", () => {
    const created = {
      ...set(4, 2),
      // The raw string, as a custom object carries it.
      metadata: {
        name: "alerts",
        namespace: "iot",
        uid: "u",
        creationTimestamp: finishedAt as unknown as Date,
      },
    };
    expect(warmingFrom(created, at(30))).toBe(0);
    expect(warmingFrom(created, at(181))).toBeUndefined();
  });
});
