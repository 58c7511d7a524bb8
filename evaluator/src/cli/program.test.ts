import { describe, expect, it } from "vitest";
import { ConfigError, type EvaluatorConfig } from "../config/evaluatorConfig.ts";
import { createProgram } from "./program.ts";

const env = {
  SHARD_INDEX: "1",
  SHARD_SET: "iot/alerts",
  DATABASE_URL: "postgres://db/iot",
  VALKEY_URL: "redis://valkey:6379",
  CONCURRENCY: "4",
};

class Stop extends Error {}

/** Parses argv and returns the compiled config the run command would start with (no clients built). */
async function compiled(argv: string[], e: Record<string, string> = env): Promise<EvaluatorConfig> {
  let config: EvaluatorConfig | undefined;
  const program = createProgram({
    env: e,
    shutdownSignal: new AbortController().signal,
    connect: (c) => {
      config = c;
      throw new Stop();
    },
  });
  await expect(program.parseAsync(["node", "evaluator", "run", ...argv])).rejects.toBeInstanceOf(Stop);
  return config!;
}

describe("createProgram", () => {
  it("reads the environment, and a flag wins over its variable", async () => {
    expect((await compiled([])).concurrency).toBe(4);
    const c = await compiled(["--concurrency", "16", "--shard-index", "3", "--tick-interval-seconds", "30"]);
    expect(c).toMatchObject({ concurrency: 16, shardIndex: 3, intervalMs: 30_000, minIntervalMs: 7500 });
  });

  it("reads no test fault from the environment (they come from the test entry point)", async () => {
    const withFaultVars = { ...env, EVALUATOR_TEST_POISON_RULE: "r9", EVALUATOR_TEST_DELAY_TENANT: "t1:5" };
    expect(await compiled([], withFaultVars)).toEqual(await compiled([]));
  });

  it("refuses a metrics host that is neither an IP address nor a host name, naming the setting", async () => {
    const program = createProgram({
      env,
      shutdownSignal: new AbortController().signal,
      connect: () => {
        throw new Stop();
      },
    });
    const run = program.parseAsync(["node", "evaluator", "run", "--metrics-host", "bad host"]);
    await expect(run).rejects.toBeInstanceOf(ConfigError);
    await expect(run).rejects.toThrow(
      'METRICS_HOST (--metrics-host): expected an IP address or a host name, got "bad host"',
    );
  });

  it("tells to give the connection strings in the environment, not as flags seen in ps", async () => {
    let out = "";
    const program = createProgram({
      env,
      shutdownSignal: new AbortController().signal,
      connect: () => {
        throw new Stop();
      },
    });
    const run = program.commands.find((c) => c.name() === "run")!;
    run.configureOutput({ writeOut: (t) => (out += t), writeErr: (t) => (out += t) });
    await expect(program.parseAsync(["node", "evaluator", "run", "--help"])).rejects.toMatchObject({
      exitCode: 0,
    });
    expect(out).toContain(
      "give DATABASE_URL, DIRECT_DATABASE_URL and VALKEY_URL in the\nenvironment (from a Secret), not as flags",
    );
    expect(out.replace(/\s+/g, " ")).toContain(
      "--database-url <url> PostgreSQL connection string (required; prefer the variable: a flag shows in ps)",
    );
  });

  it("refuses an invalid configuration before building any client", async () => {
    let connected = false;
    const program = createProgram({
      env: { ...env, SHARD_INDEX: "x" },
      shutdownSignal: new AbortController().signal,
      connect: () => {
        connected = true;
        throw new Stop();
      },
    });
    await expect(program.parseAsync(["node", "evaluator", "run"])).rejects.toBeInstanceOf(ConfigError);
    expect(connected).toBe(false);
  });
});
