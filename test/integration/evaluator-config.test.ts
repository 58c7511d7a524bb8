/**
 * The evaluator refuses an invalid configuration at start: non-zero exit, and stderr names the
 * setting. No database or Valkey is touched, so these run without a world of their own.
 */
import { describe, expect, it } from "vitest";
import { runEvaluatorToExit } from "../support/evaluatorProcess.ts";

const valid = {
  SHARD_INDEX: "0",
  SHARD_SET: "iot/alerts",
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/never_used",
  VALKEY_URL: "redis://127.0.0.1:6379/0",
};

describe("evaluator configuration", () => {
  it.each([
    ["SHARD_INDEX", { SHARD_INDEX: undefined }],
    ["SHARD_INDEX", { SHARD_INDEX: "-3" }],
    ["SHARD_SET", { SHARD_SET: "no-namespace" }],
    ["DATABASE_URL", { DATABASE_URL: undefined }],
    ["VALKEY_URL", { VALKEY_URL: "http://127.0.0.1:6379" }],
    ["TICK_INTERVAL_SECONDS", { TICK_INTERVAL_SECONDS: "soon" }],
    ["TENANT_BUDGET_MS", { TICK_INTERVAL_SECONDS: "1", TENANT_BUDGET_MS: "5000" }],
    ["CONCURRENCY", { CONCURRENCY: "0" }],
    ["LOG_LEVEL", { LOG_LEVEL: "loud" }],
    ["METRICS_PORT", { METRICS_PORT: "99999" }],
    ["MIN_INTERVAL_SECONDS", { TICK_INTERVAL_SECONDS: "10", MIN_INTERVAL_SECONDS: "11" }],
    ["METRICS_HOST", { METRICS_HOST: "bad host" }],
  ] as const)("fails fast naming %s (%j)", async (setting, overrides) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...valid, ...overrides })) if (v !== undefined) env[k] = v;
    const result = await runEvaluatorToExit(env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(setting);
    // One line naming the setting, no stack trace.
    expect(result.stderr).not.toMatch(/^\s+at /m);
    // It failed before starting anything.
    expect(result.stdout).not.toContain("evaluator_starting");
  });

  it("a flag wins over its environment variable, and is validated the same way", async () => {
    const result = await runEvaluatorToExit({ ...valid, CONCURRENCY: "4" }, ["--concurrency", "zero"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--concurrency");
  });

  it("an unknown flag is a usage error (exit code 2, as the operator's)", async () => {
    const result = await runEvaluatorToExit(valid, ["--shards", "3"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown option/);
  });

  it("a metrics host that does not resolve fails naming the address, without a stack trace", async () => {
    const result = await runEvaluatorToExit({
      ...valid,
      METRICS_HOST: "no-such-host.invalid",
      METRICS_PORT: "0",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("evaluator: cannot listen on no-such-host.invalid:0: ");
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });
});
