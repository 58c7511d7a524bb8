import { describe, expect, it } from "vitest";
import {
  ConfigError,
  compileEvaluatorConfig,
  describeValkey,
  type RawEvaluatorOptions,
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
      pgPoolMode: "session",
      directDatabaseUrl: valid.databaseUrl,
      tenantLimits: { maxPairs: 50_000, maxReadings: 200_000 },
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("takes the pool mode from PG_POOL_MODE and the LISTEN connection from DIRECT_DATABASE_URL", () => {
    const direct = "postgresql://evaluator@db-primary:5432/iot";
    for (const mode of ["session", "transaction", "statement"] as const) {
      const c = compileEvaluatorConfig({ ...valid, pgPoolMode: mode, directDatabaseUrl: direct });
      expect(c).toMatchObject({
        pgPoolMode: mode,
        databaseUrl: valid.databaseUrl,
        directDatabaseUrl: direct,
      });
    }
    // An empty variable is no setting: the database URL is the direct one.
    expect(compileEvaluatorConfig({ ...valid, directDatabaseUrl: " " }).directDatabaseUrl).toBe(
      valid.databaseUrl,
    );
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

  it("takes the tenant limits from TENANT_MAX_PAIRS and TENANT_MAX_READINGS", () => {
    const c = compileEvaluatorConfig({ ...valid, tenantMaxPairs: "20", tenantMaxReadings: "40" });
    expect(c.tenantLimits).toEqual({ maxPairs: 20, maxReadings: 40 });
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
    [{ metricsHost: "bad host" }, "METRICS_HOST", /IP address or a host name, got "bad host"/],
    [{ metricsHost: "http://0.0.0.0" }, "METRICS_HOST", /IP address or a host name/],
    [{ pgSynchronousCommit: "maybe" }, "PG_SYNCHRONOUS_COMMIT", /one of off, local, on/],
    [{ pgPoolMode: "pgbouncer" }, "PG_POOL_MODE", /one of session, transaction, statement, got "pgbouncer"/],
    [{ directDatabaseUrl: "redis://db/x" }, "DIRECT_DATABASE_URL", /scheme/],
    [{ tenantMaxPairs: "0" }, "TENANT_MAX_PAIRS", /integer/],
    [{ tenantMaxReadings: "1e5" }, "TENANT_MAX_READINGS", /integer/],
    [{ valkeyMode: "replicated" }, "VALKEY_MODE", /one of standalone, cluster, sentinel, got "replicated"/],
    [{ valkeyUrl: "redis://a:6379,redis://b:6379" }, "VALKEY_URL", /list of 2 URLs: set VALKEY_MODE/],
    [
      { valkeyMode: "cluster", valkeyUrl: "redis://a:7000,,redis://b:7001" },
      "VALKEY_URL",
      /entry 2 .* empty/,
    ],
    [{ valkeyMode: "cluster", valkeyUrl: "redis://a:7000,rediss://b:7001" }, "VALKEY_URL", /same scheme/],
    [{ valkeyMode: "cluster", valkeyUrl: "redis://a:7000/2" }, "VALKEY_URL", /only database 0/],
    [{ valkeyUrl: "redis://a:6379/x" }, "VALKEY_URL", /database number/],
    [{ valkeyMode: "sentinel", valkeyUrl: "redis://s1:26379" }, "VALKEY_SENTINEL_MASTER", /required/],
    [{ valkeySentinelMaster: "main" }, "VALKEY_SENTINEL_MASTER", /VALKEY_MODE is standalone/],
  ] as const)("rejects %j naming %s", (overrides, setting, problem) => {
    const message = compileError(overrides);
    expect(message.startsWith(setting)).toBe(true);
    expect(message).toMatch(problem);
  });

  it("reads the Valkey topology from VALKEY_MODE and VALKEY_URL", () => {
    expect(compileEvaluatorConfig(valid).valkey).toEqual({
      mode: "standalone",
      endpoints: [{ host: "valkey", port: 6379 }],
      tls: false,
      username: undefined,
      password: undefined,
      db: 0,
      sentinelMaster: undefined,
    });
    const cluster = compileEvaluatorConfig({
      ...valid,
      valkeyMode: "cluster",
      valkeyUrl: "rediss://evaluator:p%40ss@n1:7000, rediss://n2,rediss://[::1]:7002",
    }).valkey;
    expect(cluster).toMatchObject({
      mode: "cluster",
      endpoints: [
        { host: "n1", port: 7000 },
        { host: "n2", port: 6379 },
        { host: "::1", port: 7002 },
      ],
      tls: true,
      username: "evaluator",
      password: "p@ss",
    });
    const sentinel = compileEvaluatorConfig({
      ...valid,
      valkeyMode: "sentinel",
      valkeySentinelMaster: "main",
      valkeyUrl: "redis://:secret@s1,redis://s2:26380/3",
    });
    expect(sentinel.valkey).toMatchObject({
      mode: "sentinel",
      // The sentinels' default port, and the database of the first URL.
      endpoints: [
        { host: "s1", port: 26_379 },
        { host: "s2", port: 26_380 },
      ],
      password: "secret",
      db: 0,
      sentinelMaster: "main",
    });
    // ?password= as ioredis reads it; the user info wins.
    expect(
      compileEvaluatorConfig({ ...valid, valkeyUrl: "redis://v:6379/0?password=q%26w" }).valkey.password,
    ).toBe("q&w");
    expect(
      compileEvaluatorConfig({ ...valid, valkeyUrl: "redis://:u@v:6379/0?password=q" }).valkey.password,
    ).toBe("u");
    expect(describeValkey(sentinel.valkey)).toBe("sentinel redis://s1:26379,s2:26380/0 master main");
    expect(describeValkey(cluster)).not.toContain("p@ss");
    expect(compileEvaluatorConfig({ ...valid, tlsCaFile: "/etc/evaluator/tls/ca.crt" }).tlsCaFile).toBe(
      "/etc/evaluator/tls/ca.crt",
    );
  });

  it("accepts an IP address or a host name as the metrics host (IPv6 with or without brackets)", () => {
    for (const [host, expected] of [
      ["127.0.0.1", "127.0.0.1"],
      ["::", "::"],
      ["[::1]", "::1"],
      ["localhost", "localhost"],
    ]) {
      expect(compileEvaluatorConfig({ ...valid, metricsHost: host }).metricsHost).toBe(expected);
    }
  });

  it("never echoes a connection string in an error", () => {
    expect(compileError({ databaseUrl: "postgres://u:hunter2@db:bad-port/x" })).not.toContain("hunter2");
    expect(compileError({ directDatabaseUrl: "postgres://u:hunter2@db:bad-port/x" })).not.toContain(
      "hunter2",
    );
    // A bare password with a colon parses as a URL whose "scheme" is part of the secret.
    expect(compileError({ valkeyUrl: "hunter2:more" })).not.toContain("hunter2");
    expect(compileError({ valkeyUrl: "http://valkey:6379" })).toContain('unsupported scheme "http:"');
    expect(
      compileError({ valkeyMode: "cluster", valkeyUrl: "redis://u:hunter2@a:7000,redis://u:hunter2@b:x" }),
    ).not.toContain("hunter2");
  });
});
