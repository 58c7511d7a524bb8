import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  type Action,
  loadScenario,
  outageIntervals,
  parseScenario,
  resolvedBounds,
  ScenarioError,
} from "./scenario.ts";

const SCENARIOS = join(dirname(fileURLToPath(import.meta.url)), "scenarios");

/** A valid scenario file's content; `timeline` and any top-level key can be replaced. */
function file(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "unit",
    tenants: 10,
    devicesPerTenant: 2,
    tickSeconds: 5,
    readingSeconds: 5,
    durationSeconds: 100,
    initialShards: 2,
    maxShards: 4,
    timeline: [],
    ...overrides,
  };
}

/** The error message `parseScenario` throws for `json`. */
function problem(json: unknown): string {
  try {
    parseScenario(json, "unit.json");
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError);
    return (err as Error).message;
  }
  throw new Error("parseScenario accepted it");
}

describe("parseScenario", () => {
  it("accepts every action kind and sorts the timeline by time, stably", () => {
    const s = parseScenario(
      file({
        bounds: { maxGapSeconds: 30 },
        timeline: [
          { at: 50, kind: "roll" },
          { at: 10, kind: "scale", shards: 3 },
          { at: 20, kind: "mode", mode: "Auto" },
          { at: 20, kind: "load", tenants: 0 },
          { at: 30, kind: "kill", target: "evaluator", shard: 3, signal: "SIGKILL" },
          { at: 31, kind: "kill", target: "operator", signal: "SIGTERM", phase: "MovingTenants" },
          { at: 32, kind: "kill", target: "operator", signal: "SIGKILL" },
          { at: 40, kind: "stop", service: "postgres", seconds: 15 },
          { at: 60, kind: "pause", shard: 0, seconds: 12 },
          { at: 70, kind: "skew", shard: 1, seconds: -20 },
        ],
      }),
      "unit.json",
    );
    expect(s.name).toBe("unit");
    expect(s.bounds).toEqual({ maxGapSeconds: 30 });
    expect(s.timeline.map((a) => `${a.at} ${a.kind}`)).toEqual([
      "10 scale",
      "20 mode",
      "20 load",
      "30 kill",
      "31 kill",
      "32 kill",
      "40 stop",
      "50 roll",
      "60 pause",
      "70 skew",
    ]);
    expect(s.timeline[4]).toEqual({
      at: 31,
      kind: "kill",
      target: "operator",
      signal: "SIGTERM",
      phase: "MovingTenants",
    });
    expect(s.timeline[5]).toEqual({ at: 32, kind: "kill", target: "operator", signal: "SIGKILL" });
  });

  it.each<[string, unknown, string]>([
    ["a non-object", [], "unit.json: (top level): must be an object"],
    ["an unknown top-level key", file({ shardz: 3 }), "unit.json: shardz: unknown key"],
    ["an empty name", file({ name: " " }), "unit.json: name: must be a non-empty string"],
    ["zero tenants", file({ tenants: 0 }), "unit.json: tenants: must be an integer ≥ 1"],
    ["a fractional tick", file({ tickSeconds: 2.5 }), "unit.json: tickSeconds: must be an integer ≥ 1"],
    [
      "initialShards above maxShards",
      file({ initialShards: 5 }),
      "unit.json: initialShards: must be an integer from 1 to 4 (maxShards)",
    ],
    [
      "a bad bound",
      file({ bounds: { recoverySeconds: -1 } }),
      "unit.json: bounds.recoverySeconds: must be a number > 0",
    ],
    ["an unknown bound", file({ bounds: { latency: 3 } }), "unit.json: bounds.latency: unknown key"],
    ["no timeline", file({ timeline: undefined }), "unit.json: timeline: must be an array"],
    [
      "an unknown action kind",
      file({ timeline: [{ at: 1, kind: "explode" }] }),
      'unit.json: timeline[0].kind: must be one of scale, mode, load, stop, pause, skew, roll, kill (got "explode")',
    ],
    [
      "an unknown action key",
      file({ timeline: [{ at: 1, kind: "roll", shards: 2 }] }),
      "unit.json: timeline[0].shards: unknown key (allowed here: at, kind)",
    ],
    [
      "a shard count above maxShards",
      file({
        timeline: [
          { at: 1, kind: "roll" },
          { at: 2, kind: "scale", shards: 5 },
        ],
      }),
      "unit.json: timeline[1].shards: must be an integer from 1 to 4 (maxShards)",
    ],
    [
      "a shard index at maxShards",
      file({ timeline: [{ at: 1, kind: "pause", shard: 4, seconds: 3 }] }),
      "unit.json: timeline[0].shard: must be an integer from 0 to 3 (maxShards − 1)",
    ],
    [
      "an evaluator kill without a shard",
      file({ timeline: [{ at: 1, kind: "kill", target: "evaluator", signal: "SIGKILL" }] }),
      "unit.json: timeline[0].shard: must be an integer from 0 to 3",
    ],
    [
      "an operator kill with a shard",
      file({ timeline: [{ at: 1, kind: "kill", target: "operator", signal: "SIGKILL", shard: 0 }] }),
      "unit.json: timeline[0].shard: unknown key (allowed here: at, kind, target, signal, phase)",
    ],
    [
      "a reshard phase the status never reports",
      file({
        timeline: [{ at: 1, kind: "kill", target: "operator", signal: "SIGKILL", phase: "Resharding" }],
      }),
      'unit.json: timeline[0].phase: must be one of ScalingUp, MovingTenants, Draining (got "Resharding")',
    ],
    [
      "a mode the CRD does not have",
      file({ timeline: [{ at: 1, kind: "mode", mode: "Manual" }] }),
      'unit.json: timeline[0].mode: must be one of Off, Recommend, Auto (got "Manual")',
    ],
    [
      "a load above the seeded tenants",
      file({ timeline: [{ at: 1, kind: "load", tenants: 11 }] }),
      "unit.json: timeline[0].tenants: must be an integer from 0 to 10 (tenants)",
    ],
    [
      "an action at the end",
      file({ timeline: [{ at: 100, kind: "roll" }] }),
      "unit.json: timeline[0].at: must be a number ≥ 0 and below durationSeconds (100)",
    ],
    [
      "a negative time",
      file({ timeline: [{ at: -1, kind: "roll" }] }),
      "unit.json: timeline[0].at: must be a number ≥ 0",
    ],
    [
      "a stop that outlasts the run",
      file({ timeline: [{ at: 90, kind: "stop", service: "valkey", seconds: 15 }] }),
      "unit.json: timeline[0].seconds: must end by durationSeconds (100): at + seconds is 105",
    ],
    [
      "an unknown service",
      file({ timeline: [{ at: 1, kind: "stop", service: "nats", seconds: 5 }] }),
      'unit.json: timeline[0].service: must be one of valkey, postgres, prometheus (got "nats")',
    ],
    [
      "a zero skew",
      file({ timeline: [{ at: 1, kind: "skew", shard: 0, seconds: 0 }] }),
      "unit.json: timeline[0].seconds: must be a non-zero number",
    ],
    [
      "a skew that outlasts the run",
      file({ timeline: [{ at: 90, kind: "skew", shard: 0, seconds: -20 }] }),
      "unit.json: timeline[0].seconds: must end by durationSeconds (100): at + |seconds| is 110",
    ],
  ])("refuses %s, naming the file and the JSON path", (_, json, message) => {
    expect(problem(json)).toContain(message);
  });
});

describe("loadScenario", () => {
  it("reads a file and names it in errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eo-chaos-scenario-"));
    try {
      const good = join(dir, "good.json");
      await writeFile(good, JSON.stringify(file({ timeline: [{ at: 3, kind: "roll" }] })));
      expect((await loadScenario(good)).timeline).toEqual([{ at: 3, kind: "roll" }]);
      const bad = join(dir, "bad.json");
      await writeFile(bad, JSON.stringify(file({ tenants: "many" })));
      await expect(loadScenario(bad)).rejects.toThrow(`${bad}: tenants: must be an integer ≥ 1`);
      const broken = join(dir, "broken.json");
      await writeFile(broken, "{");
      await expect(loadScenario(broken)).rejects.toThrow(`${broken}: not valid JSON`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("resolvedBounds", () => {
  it("derives defaults from the tick and reading intervals, and keeps what the file gives", () => {
    const s = parseScenario(file({ tickSeconds: 5, readingSeconds: 10 }), "unit.json");
    expect(resolvedBounds(s)).toEqual({ maxGapSeconds: 20, alertLatencySeconds: 30, recoverySeconds: 30 });
    const given = parseScenario(file({ bounds: { alertLatencySeconds: 12 } }), "unit.json");
    expect(resolvedBounds(given)).toEqual({
      maxGapSeconds: 20,
      alertLatencySeconds: 12,
      recoverySeconds: 30,
    });
  });
});

describe("outageIntervals", () => {
  it("lists stops, pauses, evaluator kills and skews, each extended by the recovery time", () => {
    const s = parseScenario(
      file({
        bounds: { recoverySeconds: 10 },
        timeline: [
          { at: 5, kind: "scale", shards: 3 },
          { at: 6, kind: "kill", target: "operator", signal: "SIGKILL" },
          { at: 7, kind: "mode", mode: "Auto" },
          { at: 8, kind: "load", tenants: 5 },
          { at: 9, kind: "roll" },
          { at: 30, kind: "skew", shard: 1, seconds: -4 },
          { at: 10, kind: "stop", service: "prometheus", seconds: 20 },
          { at: 12, kind: "stop", service: "valkey", seconds: 15 },
          { at: 20, kind: "kill", target: "evaluator", shard: 0, signal: "SIGTERM" },
          { at: 25, kind: "pause", shard: 2, seconds: 3 },
        ],
      }),
      "unit.json",
    );
    expect(outageIntervals(s)).toEqual([
      { kind: "prometheus", fromMs: 10_000, toMs: 40_000 },
      { kind: "valkey", fromMs: 12_000, toMs: 37_000 },
      { kind: "kill", fromMs: 20_000, toMs: 30_000, shard: 0 },
      { kind: "pause", fromMs: 25_000, toMs: 38_000, shard: 2 },
      { kind: "skew", fromMs: 30_000, toMs: 44_000, shard: 1 },
    ]);
  });
});

describe("the shipped scenarios", () => {
  const kinds = (timeline: readonly Action[]) =>
    new Set(
      timeline.map((a) => {
        if (a.kind === "kill") return `kill ${a.target}`;
        if (a.kind === "stop") return `stop ${a.service}`;
        return a.kind;
      }),
    );
  const everything = [
    "scale",
    "mode",
    "load",
    "kill evaluator",
    "kill operator",
    "stop valkey",
    "stop postgres",
    "stop prometheus",
    "pause",
    "skew",
    "roll",
  ];

  it("ci.json: 200 tenants × 4 devices for 180 s, every action, the last 40 s before the end", async () => {
    const s = await loadScenario(join(SCENARIOS, "ci.json"));
    expect(s).toMatchObject({
      tenants: 200,
      devicesPerTenant: 4,
      tickSeconds: 5,
      readingSeconds: 5,
      durationSeconds: 180,
      initialShards: 3,
      maxShards: 5,
    });
    expect([...kinds(s.timeline)].sort()).toEqual([...everything].sort());
    expect(s.timeline.at(-1)!.at).toBeLessThanOrEqual(140);
    // Both signals on evaluators, the operator killed mid-reshard right after a scale.
    const kills = s.timeline.filter((a) => a.kind === "kill");
    expect(new Set(kills.filter((a) => a.target === "evaluator").map((a) => a.signal))).toEqual(
      new Set(["SIGKILL", "SIGTERM"]),
    );
    const operatorKill = s.timeline.findIndex((a) => a.kind === "kill" && a.target === "operator");
    expect(s.timeline[operatorKill]).toMatchObject({ signal: "SIGKILL", phase: "ScalingUp" });
    expect(s.timeline[operatorKill - 1]?.kind).toBe("scale");
    // Scaled up, then down; Auto, then back; load dropped, then raised.
    expect(s.timeline.filter((a) => a.kind === "scale").map((a) => a.shards)).toEqual([4, 2]);
    expect(s.timeline.filter((a) => a.kind === "mode").map((a) => a.mode)).toEqual(["Auto", "Off"]);
    expect(s.timeline.filter((a) => a.kind === "load").map((a) => a.tenants)).toEqual([150, 200]);
  });

  it("full.json: 1000 tenants × 200 devices for 25 min, 3 → 5 → 2 shards, every action", async () => {
    const s = await loadScenario(join(SCENARIOS, "full.json"));
    expect(s).toMatchObject({
      tenants: 1000,
      devicesPerTenant: 200,
      tickSeconds: 60,
      readingSeconds: 60,
      durationSeconds: 1500,
      initialShards: 3,
      maxShards: 6,
    });
    expect([...kinds(s.timeline)].sort()).toEqual([...everything].sort());
    expect(s.timeline.filter((a) => a.kind === "scale").map((a) => a.shards)).toEqual([5, 2]);
  });
});
