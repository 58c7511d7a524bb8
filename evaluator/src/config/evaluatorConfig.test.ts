import { describe, expect, it } from "vitest";
import {
  ConfigError,
  compileEvaluatorConfig,
  type RawEvaluatorOptions,
  redactUrl,
} from "./evaluatorConfig.ts";

const valid: RawEvaluatorOptions = {
  shardIndex: "2",
  shardSet: "iot/alerts",
  databaseUrl: "postgres://evaluator:secret@db:5432/iot",
  valkeyUrl: "redis://valkey:6379/0",
};

function compileError(overrides: Partial<Record<keyof RawEvaluatorOptions, string | undefined>>): string {
  try {
    compileEvaluatorConfig({ ...valid, ...overrides });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("compileEvaluatorConfig", () => {
  it("applies the documented defaults", () => {
    const c = compileEvaluatorConfig(valid);
    expect(c).toMatchObject({
      shardIndex: 2,
      shardSet: "iot/alerts",
      namespace: "iot",
      shardSetName: "alerts",
      intervalMs: 60_000,
      minIntervalMs: 15_000,
      tenantBudgetMs: 5000,
      concurrency: 8,
      logLevel: "info",
      metricsPort: 9464,
      metricsHost: "0.0.0.0",
      breaker: { failureThreshold: 3, cooldownMs: 5000 },
      valkeyCommandTimeoutMs: 2000,
      pgSynchronousCommit: "off",
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("converts units and accepts fractional seconds", () => {
    const c = compileEvaluatorConfig({
      ...valid,
      tickIntervalSeconds: "1.5",
      minIntervalSeconds: "0.5",
      tenantBudgetMs: "700",
      metricsPort: "0",
    });
    expect(c.intervalMs).toBe(1500);
    expect(c.minIntervalMs).toBe(500);
    expect(c.tenantBudgetMs).toBe(700);
    expect(c.metricsPort).toBe(0);
  });

  it("caps the default budget at a short interval, but rejects an explicit longer one", () => {
    expect(compileEvaluatorConfig({ ...valid, tickIntervalSeconds: "2" }).tenantBudgetMs).toBe(2000);
    expect(compileError({ tickIntervalSeconds: "2", tenantBudgetMs: "2500" })).toMatch(/^TENANT_BUDGET_MS/);
  });

  it.each([
    [{ shardIndex: undefined }, "SHARD_INDEX", /required/],
    [{ shardIndex: "-1" }, "SHARD_INDEX", /integer/],
    [{ shardIndex: "1.5" }, "SHARD_INDEX", /integer/],
    [{ shardSet: "" }, "SHARD_SET", /required/],
    [{ shardSet: "alerts" }, "SHARD_SET", /namespace\/name/],
    [{ databaseUrl: undefined }, "DATABASE_URL", /required/],
    [{ databaseUrl: "mysql://x/y" }, "DATABASE_URL", /scheme/],
    [{ valkeyUrl: "not a url" }, "VALKEY_URL", /valid URL/],
    [{ tickIntervalSeconds: "0" }, "TICK_INTERVAL_SECONDS", /number/],
    [{ tickIntervalSeconds: "abc" }, "TICK_INTERVAL_SECONDS", /number/],
    [{ minIntervalSeconds: "120" }, "MIN_INTERVAL_SECONDS", /number/],
    [{ concurrency: "0" }, "CONCURRENCY", /integer/],
    [{ logLevel: "verbose" }, "LOG_LEVEL", /one of/],
    [{ metricsPort: "70000" }, "METRICS_PORT", /integer/],
    [{ pgSynchronousCommit: "maybe" }, "PG_SYNCHRONOUS_COMMIT", /one of off, local, on/],
  ] as const)("rejects %j naming %s", (overrides, setting, problem) => {
    const message = compileError(overrides);
    expect(message.startsWith(setting)).toBe(true);
    expect(message).toMatch(problem);
  });

  it("never echoes a connection string in an error", () => {
    expect(compileError({ databaseUrl: "postgres://u:hunter2@db:bad-port/x" })).not.toContain("hunter2");
  });
});

describe("redactUrl", () => {
  it("hides the password only", () => {
    expect(redactUrl("postgres://u:secret@h:5432/d")).toBe("postgres://u:***@h:5432/d");
    expect(redactUrl("redis://h:6379/0")).toBe("redis://h:6379/0");
  });
});
