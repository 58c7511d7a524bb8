/**
 * The evaluator's configuration, compiled once (Temporal's `compileWorkerOptions`): one function
 * validates the raw strings from flags and environment, applies defaults and units, and fails fast
 * with an error that names the setting. The rest of the evaluator only sees {@link EvaluatorConfig}.
 */

import { listenHost } from "../../../runtime/httpServer.ts";
import { DEFAULT_TENANT_LIMITS, type TenantLimits } from "../tick/tenantLimits.ts";

/** Raw settings as the CLI hands them over: flags win over env, env over defaults (all strings). */
export interface RawEvaluatorOptions {
  readonly shardIndex?: string | undefined;
  readonly shardSet?: string | undefined;
  readonly databaseUrl?: string | undefined;
  readonly valkeyUrl?: string | undefined;
  readonly tickIntervalSeconds?: string | undefined;
  readonly minIntervalSeconds?: string | undefined;
  readonly tenantBudgetMs?: string | undefined;
  readonly concurrency?: string | undefined;
  readonly logLevel?: string | undefined;
  readonly metricsPort?: string | undefined;
  readonly metricsHost?: string | undefined;
  readonly breakerFailureThreshold?: string | undefined;
  readonly breakerCooldownSeconds?: string | undefined;
  readonly valkeyCommandTimeoutMs?: string | undefined;
  readonly pgSynchronousCommit?: string | undefined;
  readonly pgPoolMode?: string | undefined;
  readonly directDatabaseUrl?: string | undefined;
  readonly tenantMaxPairs?: string | undefined;
  readonly tenantMaxReadings?: string | undefined;
  readonly alertEvents?: string | undefined;
  readonly valkeyMode?: string | undefined;
  readonly valkeySentinelMaster?: string | undefined;
  readonly tlsCaFile?: string | undefined;
}

/** The compiled, validated, read-only configuration. */
export interface EvaluatorConfig {
  readonly shardIndex: number;
  /** `namespace/name` of the EvaluatorShardSet (the `shard_sets.name` row). */
  readonly shardSet: string;
  /** The two halves of {@link shardSet}, for metric labels. */
  readonly namespace: string;
  readonly shardSetName: string;
  readonly databaseUrl: string;
  /** VALKEY_URL as given (one URL, or a comma-separated list in cluster and sentinel mode). */
  readonly valkeyUrl: string;
  /** How Valkey is reached, from VALKEY_MODE and VALKEY_URL (see {@link ValkeyTopology}). */
  readonly valkey: ValkeyTopology;
  /**
   * A PEM bundle of the certificate authorities trusted for TLS connections (`rediss://` Valkey URLs,
   * PostgreSQL URLs with an sslmode that verifies), instead of the system's; unset: the system's.
   */
  readonly tlsCaFile: string | undefined;
  readonly intervalMs: number;
  /** Minimum time between two tick starts when a NOTIFY wakes the loop early. */
  readonly minIntervalMs: number;
  readonly tenantBudgetMs: number;
  readonly concurrency: number;
  readonly logLevel: LogLevel;
  readonly metricsPort: number;
  readonly metricsHost: string;
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  readonly valkeyCommandTimeoutMs: number;
  /** `synchronous_commit` of the evaluator's alert-write transactions (set in each, so any pooler passes it). */
  readonly pgSynchronousCommit: PgSynchronousCommit;
  /**
   * How the connections of {@link databaseUrl} are pooled on the way to PostgreSQL, as PgBouncer's
   * `pool_mode` says: `session` (a direct connection, or session pooling) keeps per-connection
   * prepared statements and session settings; `transaction` and `statement` send every statement
   * unnamed and no session setting, since the next transaction may run on another server connection.
   */
  readonly pgPoolMode: PgPoolMode;
  /**
   * A connection string that reaches PostgreSQL without a transaction- or statement-pooling proxy,
   * for what needs a session of its own: the LISTEN connection. Default: {@link databaseUrl}.
   */
  readonly directDatabaseUrl: string;
  /** Bounds of one tenant's evaluation; a tenant over one is quarantined for the tick. */
  readonly tenantLimits: TenantLimits;
  /**
   * Whether each alert change is appended to the `alert_events` outbox with the commit (default
   * true). Off: no event is written (for an installation that neither relays nor prunes them).
   */
  readonly alertEvents: boolean;
}

export const VALKEY_MODES = ["standalone", "cluster", "sentinel"] as const;
export type ValkeyMode = (typeof VALKEY_MODES)[number];

/** One Valkey endpoint of VALKEY_URL. */
export interface ValkeyEndpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * How the evaluator reaches Valkey:
 * - `standalone`: one server (VALKEY_URL, `redis://` or `rediss://`);
 * - `cluster`: Valkey Cluster, VALKEY_URL a comma-separated list of seed nodes (any of them; the
 *   client learns the rest from the cluster and follows slot moves and failovers);
 * - `sentinel`: a primary watched by Sentinel, VALKEY_URL a comma-separated list of the sentinels
 *   and VALKEY_SENTINEL_MASTER the name they know the primary by; the client asks them for the
 *   primary and again after a failover.
 * `tls` for `rediss://` (every URL of the list must use the same scheme); the user name and
 * password of the first URL (user info, else `?username=` and `?password=`) authenticate to the servers (in sentinel mode: to the primary, not to
 * the sentinels); the database number of a standalone or sentinel URL selects the database.
 */
export interface ValkeyTopology {
  readonly mode: ValkeyMode;
  readonly endpoints: readonly ValkeyEndpoint[];
  readonly tls: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
  /** Sentinel mode: the primary's name (VALKEY_SENTINEL_MASTER). */
  readonly sentinelMaster: string | undefined;
}

/** The topology as logs show it, without credentials: `cluster rediss://h1:6379,h2:6379`. */
export function describeValkey(topology: ValkeyTopology): string {
  const scheme = topology.tls ? "rediss" : "redis";
  const hosts = topology.endpoints.map((e) => `${e.host.includes(":") ? `[${e.host}]` : e.host}:${e.port}`);
  const master = topology.sentinelMaster === undefined ? "" : ` master ${topology.sentinelMaster}`;
  return `${topology.mode} ${scheme}://${hosts.join(",")}/${topology.db}${master}`;
}

export const PG_SYNCHRONOUS_COMMIT = ["off", "local", "on", "remote_write", "remote_apply"] as const;
export type PgSynchronousCommit = (typeof PG_SYNCHRONOUS_COMMIT)[number];

export const PG_POOL_MODES = ["session", "transaction", "statement"] as const;
export type PgPoolMode = (typeof PG_POOL_MODES)[number];

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Raised for an invalid setting; the message starts with the setting's name. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Flag and environment variable of every setting, for error messages and `--help`. */
export const SETTINGS = {
  shardIndex: { flag: "--shard-index", env: "SHARD_INDEX" },
  shardSet: { flag: "--shard-set", env: "SHARD_SET" },
  databaseUrl: { flag: "--database-url", env: "DATABASE_URL" },
  valkeyUrl: { flag: "--valkey-url", env: "VALKEY_URL" },
  tickIntervalSeconds: { flag: "--tick-interval-seconds", env: "TICK_INTERVAL_SECONDS" },
  minIntervalSeconds: { flag: "--min-interval-seconds", env: "MIN_INTERVAL_SECONDS" },
  tenantBudgetMs: { flag: "--tenant-budget-ms", env: "TENANT_BUDGET_MS" },
  concurrency: { flag: "--concurrency", env: "CONCURRENCY" },
  logLevel: { flag: "--log-level", env: "LOG_LEVEL" },
  metricsPort: { flag: "--metrics-port", env: "METRICS_PORT" },
  metricsHost: { flag: "--metrics-host", env: "METRICS_HOST" },
  breakerFailureThreshold: { flag: "--breaker-failure-threshold", env: "BREAKER_FAILURE_THRESHOLD" },
  breakerCooldownSeconds: { flag: "--breaker-cooldown-seconds", env: "BREAKER_COOLDOWN_SECONDS" },
  valkeyCommandTimeoutMs: { flag: "--valkey-command-timeout-ms", env: "VALKEY_COMMAND_TIMEOUT_MS" },
  pgSynchronousCommit: { flag: "--pg-synchronous-commit", env: "PG_SYNCHRONOUS_COMMIT" },
  pgPoolMode: { flag: "--pg-pool-mode", env: "PG_POOL_MODE" },
  directDatabaseUrl: { flag: "--direct-database-url", env: "DIRECT_DATABASE_URL" },
  tenantMaxPairs: { flag: "--tenant-max-pairs", env: "TENANT_MAX_PAIRS" },
  tenantMaxReadings: { flag: "--tenant-max-readings", env: "TENANT_MAX_READINGS" },
  alertEvents: { flag: "--alert-events", env: "ALERT_EVENTS" },
  valkeyMode: { flag: "--valkey-mode", env: "VALKEY_MODE" },
  valkeySentinelMaster: { flag: "--valkey-sentinel-master", env: "VALKEY_SENTINEL_MASTER" },
  tlsCaFile: { flag: "--tls-ca-file", env: "TLS_CA_FILE" },
} as const satisfies Record<keyof RawEvaluatorOptions, { flag: string; env: string }>;

type Setting = keyof typeof SETTINGS;

function label(setting: Setting): string {
  const s = SETTINGS[setting];
  return `${s.env} (${s.flag})`;
}

function fail(setting: Setting, problem: string): never {
  throw new ConfigError(`${label(setting)}: ${problem}`);
}

function present(raw: RawEvaluatorOptions, setting: Setting): string | undefined {
  const v = raw[setting];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function required(raw: RawEvaluatorOptions, setting: Setting): string {
  return present(raw, setting) ?? fail(setting, "is required");
}

function integer(raw: RawEvaluatorOptions, setting: Setting, dflt: number, min: number, max: number): number {
  const v = present(raw, setting);
  if (v === undefined) return dflt;
  const n = /^-?\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    fail(setting, `expected an integer in [${min}, ${max}], got "${v}"`);
  }
  return n;
}

function decimal(raw: RawEvaluatorOptions, setting: Setting, dflt: number, min: number, max: number): number {
  const v = present(raw, setting);
  if (v === undefined) return dflt;
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    fail(setting, `expected a number of seconds in [${min}, ${max}], got "${v}"`);
  }
  return n;
}

function url(
  raw: RawEvaluatorOptions,
  setting: Setting,
  protocols: readonly string[],
  dflt?: string,
): string {
  const v = dflt === undefined ? required(raw, setting) : (present(raw, setting) ?? dflt);
  let parsed: URL;
  try {
    parsed = new URL(v);
  } catch {
    // Never echo the value: it may carry a password.
    fail(setting, `not a valid URL (expected ${protocols.map((p) => `${p}//…`).join(" or ")})`);
  }
  if (!protocols.includes(parsed.protocol)) {
    // The scheme is named only in the `scheme://` form: in "hunter2:more" it is part of a secret.
    const named = v.toLowerCase().startsWith(`${parsed.protocol}//`) ? ` "${parsed.protocol}"` : "";
    fail(setting, `unsupported scheme${named} (expected ${protocols.join(" or ")})`);
  }
  return v;
}

/** A URL's user-info part (percent-encoded), else its query parameter; undefined when neither. */
function credential(userInfo: string, param: string | null): string | undefined {
  if (userInfo !== "") return decodeURIComponent(userInfo);
  return param === null || param === "" ? undefined : param;
}

/**
 * VALKEY_URL in the given mode: one URL (standalone), or a comma-separated list of them (cluster:
 * seed nodes; sentinel: the sentinels). Never echoes a URL (it may carry a password).
 */
function valkeyTopology(raw: RawEvaluatorOptions): ValkeyTopology {
  const mode = present(raw, "valkeyMode") ?? "standalone";
  if (!(VALKEY_MODES as readonly string[]).includes(mode)) {
    fail("valkeyMode", `expected one of ${VALKEY_MODES.join(", ")}, got "${mode}"`);
  }
  const list = required(raw, "valkeyUrl")
    .split(",")
    .map((u) => u.trim());
  if (list.length > 1 && mode === "standalone") {
    fail(
      "valkeyUrl",
      `is a list of ${list.length} URLs: set VALKEY_MODE to cluster or sentinel, or give one URL`,
    );
  }
  const urls = list.map((u, i) => {
    if (u === "") fail("valkeyUrl", `entry ${i + 1} of the list is empty`);
    return new URL(url({ valkeyUrl: u }, "valkeyUrl", ["redis:", "rediss:"]));
  });
  const first = urls[0]!;
  if (urls.some((u) => u.protocol !== first.protocol)) {
    fail("valkeyUrl", "mixes redis:// and rediss:// (every URL of the list must use the same scheme)");
  }
  const dbPath = first.pathname.replace(/^\//, "");
  const db = dbPath === "" ? 0 : /^\d+$/.test(dbPath) ? Number(dbPath) : Number.NaN;
  if (!Number.isSafeInteger(db) || db > 65_535) fail("valkeyUrl", "the path must be a database number (/0)");
  if (mode === "cluster" && db !== 0) fail("valkeyUrl", "Valkey Cluster has only database 0");
  const sentinelMaster = present(raw, "valkeySentinelMaster");
  if (mode === "sentinel" && sentinelMaster === undefined) {
    fail(
      "valkeySentinelMaster",
      "is required with VALKEY_MODE=sentinel (the name the sentinels know the primary by)",
    );
  }
  if (mode !== "sentinel" && sentinelMaster !== undefined) {
    fail("valkeySentinelMaster", `is set, but VALKEY_MODE is ${mode}, not sentinel`);
  }
  return Object.freeze({
    mode: mode as ValkeyMode,
    endpoints: Object.freeze(
      urls.map((u) => ({
        host: u.hostname.replace(/^\[|\]$/g, ""),
        port: u.port === "" ? (mode === "sentinel" ? 26_379 : 6379) : Number(u.port),
      })),
    ),
    tls: first.protocol === "rediss:",
    // The user info, else `?username=` / `?password=` (which ioredis reads from a URL too).
    username: credential(first.username, first.searchParams.get("username")),
    password: credential(first.password, first.searchParams.get("password")),
    db,
    sentinelMaster,
  });
}

// Same rule as the shard_sets.name CHECK constraint, so a typo fails here and not as "no tenants".
const SHARD_SET_FORMAT = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * Validates raw options into the readonly {@link EvaluatorConfig}.
 * Defaults: tick interval 60 s; minimum interval a quarter of the tick interval; tenant budget
 * 5000 ms (capped at the interval); concurrency 8; log level info; metrics on 0.0.0.0:9464 (port 0 picks a free one);
 * allowed lateness 5 s; circuit breakers open after 3 consecutive failures for 5 s; Valkey
 * commands time out after 2000 ms; a tenant of more than 50,000 (rule, device) pairs or 200,000
 * new readings is quarantined for the tick; alert writes commit asynchronously (`synchronous_commit` off:
 * a database crash can lose the last fraction of a second of them, which the next tick writes
 * again, see the evaluator README); connections are sessions of their own (pool mode `session`), and
 * the LISTEN connection uses the database URL.
 *
 * @throws ConfigError naming the first invalid setting (environment variable and flag)
 */
export function compileEvaluatorConfig(raw: RawEvaluatorOptions): EvaluatorConfig {
  const shardIndex = integer(raw, "shardIndex", Number.NaN, 0, 100_000);
  if (Number.isNaN(shardIndex)) fail("shardIndex", "is required");
  const shardSet = required(raw, "shardSet");
  if (!SHARD_SET_FORMAT.test(shardSet)) fail("shardSet", `expected "namespace/name", got "${shardSet}"`);
  const [namespace = "", shardSetName = ""] = shardSet.split("/");
  const databaseUrl = url(raw, "databaseUrl", ["postgres:", "postgresql:"]);
  const directDatabaseUrl = url(raw, "directDatabaseUrl", ["postgres:", "postgresql:"], databaseUrl);
  const valkey = valkeyTopology(raw);
  const valkeyUrl = required(raw, "valkeyUrl");
  const tlsCaFile = present(raw, "tlsCaFile");

  const intervalSeconds = decimal(raw, "tickIntervalSeconds", 60, 0.1, 86_400);
  const intervalMs = Math.round(intervalSeconds * 1000);
  // A quarter of the interval: an early (NOTIFY) tick can come at most that soon after the last one,
  // so even a constant stream of NOTIFYs never runs more than one tick per slot plus one early one.
  const minIntervalMs = Math.round(
    decimal(raw, "minIntervalSeconds", intervalSeconds / 4, 0.05, intervalSeconds) * 1000,
  );
  // Default 5000 ms, or the whole interval when that is shorter (short test intervals).
  const tenantBudgetMs = integer(raw, "tenantBudgetMs", Math.min(5000, intervalMs), 1, 3_600_000);
  // A tenant allowed to run longer than a slot would overlap the next tick's lease of itself.
  if (tenantBudgetMs > intervalMs) {
    fail("tenantBudgetMs", `must not exceed the tick interval (${intervalMs} ms), got ${tenantBudgetMs}`);
  }
  const concurrency = integer(raw, "concurrency", 8, 1, 1024);
  const logLevel = present(raw, "logLevel") ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    fail("logLevel", `expected one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const metricsPort = integer(raw, "metricsPort", 9464, 0, 65_535);
  const metricsHostRaw = present(raw, "metricsHost") ?? "0.0.0.0";
  const metricsHost = listenHost(metricsHostRaw);
  if (metricsHost === undefined) {
    fail("metricsHost", `expected an IP address or a host name, got "${metricsHostRaw}"`);
  }
  const failureThreshold = integer(raw, "breakerFailureThreshold", 3, 1, 1000);
  const cooldownMs = Math.round(decimal(raw, "breakerCooldownSeconds", 5, 0.1, 3600) * 1000);
  const valkeyCommandTimeoutMs = integer(raw, "valkeyCommandTimeoutMs", 2000, 10, 600_000);
  const pgSynchronousCommit = present(raw, "pgSynchronousCommit") ?? "off";
  if (!(PG_SYNCHRONOUS_COMMIT as readonly string[]).includes(pgSynchronousCommit)) {
    fail(
      "pgSynchronousCommit",
      `expected one of ${PG_SYNCHRONOUS_COMMIT.join(", ")}, got "${pgSynchronousCommit}"`,
    );
  }
  const pgPoolMode = present(raw, "pgPoolMode") ?? "session";
  if (!(PG_POOL_MODES as readonly string[]).includes(pgPoolMode)) {
    fail("pgPoolMode", `expected one of ${PG_POOL_MODES.join(", ")}, got "${pgPoolMode}"`);
  }
  const alertEvents = present(raw, "alertEvents") ?? "on";
  if (alertEvents !== "on" && alertEvents !== "off") {
    fail("alertEvents", `expected on or off, got "${alertEvents}"`);
  }
  // Sized on the largest tenant the product runs (see DEFAULT_TENANT_LIMITS).
  const tenantLimits = Object.freeze({
    maxPairs: integer(raw, "tenantMaxPairs", DEFAULT_TENANT_LIMITS.maxPairs, 1, 100_000_000),
    maxReadings: integer(raw, "tenantMaxReadings", DEFAULT_TENANT_LIMITS.maxReadings, 1, 100_000_000),
  });

  return Object.freeze({
    shardIndex,
    shardSet,
    namespace,
    shardSetName,
    databaseUrl,
    valkeyUrl,
    valkey,
    tlsCaFile,
    intervalMs,
    minIntervalMs,
    tenantBudgetMs,
    concurrency,
    logLevel: logLevel as LogLevel,
    metricsPort,
    metricsHost,
    breaker: Object.freeze({ failureThreshold, cooldownMs }),
    valkeyCommandTimeoutMs,
    pgSynchronousCommit: pgSynchronousCommit as PgSynchronousCommit,
    pgPoolMode: pgPoolMode as PgPoolMode,
    directDatabaseUrl,
    tenantLimits,
    alertEvents: alertEvents === "on",
  });
}
