import { type ListenAddress, parseAddress } from "../../../runtime/httpServer.ts";
import type { PgConnectionConfig } from "../../../runtime/pgTls.ts";
import { ConfigError } from "../config/configError.ts";
import { requirePostgresUrl } from "../config/databaseUrl.ts";
import { parseDuration } from "../config/operatorConfig.ts";
import { compilePgConnection, compileTlsCaFile } from "../config/tlsCaFile.ts";
import type { NatsPublisherSettings } from "./natsPublisher.ts";
import type { RelaySettings } from "./relay.ts";
import { SUBJECT_PREFIX_PATTERN } from "./subject.ts";

/** `events relay` flags as commander hands them over (strings; env fallbacks applied by the caller). */
export interface RawRelayOptions {
  readonly databaseUrl?: string | undefined;
  readonly directDatabaseUrl?: string | undefined;
  /** `TLS_CA_FILE`: the CA bundle trusted for PostgreSQL over TLS (see runtime/pgTls.ts). */
  readonly tlsCaFile?: string | undefined;
  readonly natsUrl?: string | undefined;
  readonly name: string;
  readonly stream: string;
  readonly subjectPrefix: string;
  readonly createStream: boolean;
  readonly duplicateWindow: string;
  readonly batchSize: string;
  readonly pollInterval: string;
  readonly publishTimeout: string;
  readonly maxBackoff: string;
  readonly retention: string;
  readonly pruneInterval: string;
  readonly httpBindAddress: string;
  readonly logLevel: string;
}

/** The relay's compiled, read-only configuration. */
export interface RelayConfig {
  readonly databaseUrl: string;
  /** For LISTEN: a direct connection (LISTEN does not work through PgBouncer's transaction pooling). */
  readonly directDatabaseUrl: string;
  /** What the pool is created with: databaseUrl without its TLS parameters, and TLS as its sslmode says. */
  readonly database: PgConnectionConfig;
  /** The same for directDatabaseUrl (the LISTEN connection). */
  readonly directDatabase: PgConnectionConfig;
  readonly nats: NatsPublisherSettings;
  readonly relay: RelaySettings;
  readonly httpAddress: ListenAddress;
  readonly logLevel: string;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
/** JetStream stream names: no spaces, dots, wildcards or path separators. */
const STREAM_NAME = /^[A-Za-z0-9_-]{1,255}$/;

function intIn(raw: string, setting: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${setting}: expected an integer from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

/** A NATS URL: nats:// or tls://, never echoed (it may carry a password or a token). */
function natsUrl(raw: string | undefined): string {
  if (raw === undefined || raw.trim() === "") throw new ConfigError("NATS_URL (--nats-url): no server given");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("NATS_URL (--nats-url): not a valid URL (expected nats://host:port)");
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") {
    throw new ConfigError("NATS_URL (--nats-url): unsupported scheme (expected nats: or tls:)");
  }
  return raw;
}

/**
 * Validates the `events relay` settings, applies units and defaults, and fails with the setting's
 * name (ConfigError, exit code 2) before anything connects. Connection strings are never echoed.
 */
export function compileRelayConfig(raw: RawRelayOptions): RelayConfig {
  const databaseUrl = requirePostgresUrl(raw.databaseUrl, "DATABASE_URL (--database-url)");
  const directDatabaseUrl =
    raw.directDatabaseUrl === undefined || raw.directDatabaseUrl === ""
      ? databaseUrl
      : requirePostgresUrl(raw.directDatabaseUrl, "DIRECT_DATABASE_URL (--direct-database-url)");
  const caFile = compileTlsCaFile({ TLS_CA_FILE: raw.tlsCaFile });
  const database = compilePgConnection(databaseUrl, caFile, "DATABASE_URL (--database-url)");
  const directDatabase =
    directDatabaseUrl === databaseUrl
      ? database
      : compilePgConnection(directDatabaseUrl, caFile, "DIRECT_DATABASE_URL (--direct-database-url)");
  if (raw.name.trim() === "" || raw.name.length > 200) {
    throw new ConfigError(`--name: expected 1 to 200 characters, got "${raw.name}"`);
  }
  if (!STREAM_NAME.test(raw.stream)) {
    throw new ConfigError(`--stream: expected letters, digits, "-" and "_", got "${raw.stream}"`);
  }
  if (!SUBJECT_PREFIX_PATTERN.test(raw.subjectPrefix)) {
    throw new ConfigError(
      `--subject-prefix: expected dot-separated tokens of letters, digits, "-" and "_" (no wildcards), got "${raw.subjectPrefix}"`,
    );
  }
  if (!LOG_LEVELS.includes(raw.logLevel)) {
    throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(", ")}, got "${raw.logLevel}"`);
  }
  let httpAddress: ListenAddress;
  try {
    httpAddress = parseAddress(raw.httpBindAddress, "--http-bind-address");
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const retentionMs = raw.retention === "0" ? 0 : parseDuration(raw.retention, "--retention", 60_000);
  const backoffMaxMs = parseDuration(raw.maxBackoff, "--max-backoff", 100);
  return Object.freeze({
    databaseUrl,
    directDatabaseUrl,
    database,
    directDatabase,
    nats: Object.freeze({
      url: natsUrl(raw.natsUrl),
      stream: raw.stream,
      subjectPrefix: raw.subjectPrefix,
      createStream: raw.createStream,
      duplicateWindowMs: parseDuration(raw.duplicateWindow, "--duplicate-window", 1000),
      publishTimeoutMs: parseDuration(raw.publishTimeout, "--publish-timeout", 100),
      connectionName: `alert-event-relay ${raw.name}`,
    }),
    relay: Object.freeze({
      name: raw.name,
      batchSize: intIn(raw.batchSize, "--batch-size", 1, 10_000),
      pollIntervalMs: parseDuration(raw.pollInterval, "--poll-interval", 10),
      backoff: Object.freeze({ minMs: Math.min(100, backoffMaxMs), maxMs: backoffMaxMs }),
      retentionMs,
      pruneIntervalMs: parseDuration(raw.pruneInterval, "--prune-interval", 1000),
    }),
    httpAddress,
    logLevel: raw.logLevel,
  });
}
