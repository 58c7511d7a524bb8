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
