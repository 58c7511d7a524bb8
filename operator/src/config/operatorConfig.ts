import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { type ListenAddress, parseAddress } from "../../../runtime/httpServer.ts";
import { ConfigError } from "./configError.ts";
import { compileTlsCaFile } from "./tlsCaFile.ts";

export { ConfigError } from "./configError.ts";

/** Raw settings as commander hands them over (flags win over env, env over defaults). */
export interface RawOperatorOptions {
  kubeconfig?: string;
  namespaces?: string;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  logLevel: string;
  resyncPeriod: string;
  workers: string;
  assignments: boolean;
  scaleUpTimeout: string;
  drainSlack: string;
  /** How often an autoscaled set reads its metrics (default 15s, as the HPA's sync period). */
  autoscaleInterval?: string;
  /** Comma-separated prefixes an evaluator image must start with (empty: every image). */
  allowedImagePrefixes?: string;
  /** Pass spec.evaluator.serviceAccountName on to the shard pods (default true). */
  serviceAccountPassthrough?: boolean;
  /** Requests per second toward the kube-apiserver, sustained (default {@link KUBE_API_DEFAULTS}). */
  kubeApiQps?: string;
  /** Requests that may go at once after a quiet spell (default {@link KUBE_API_DEFAULTS}). */
  kubeApiBurst?: string;
}

/** The compiled, validated, read-only configuration the rest of the operator sees. */
export interface OperatorConfig {
  readonly kubeconfig: string | undefined;
  readonly namespaces: readonly string[];
  readonly leaderElection:
    | { readonly enabled: false }
    | {
        readonly enabled: true;
        readonly namespace: string;
        readonly name: string;
        readonly identity: string;
        readonly leaseDurationMs: number;
        readonly renewDeadlineMs: number;
        readonly retryPeriodMs: number;
      };
  readonly metricsAddress: ListenAddress;
  readonly healthAddress: ListenAddress;
  readonly logLevel: string;
  readonly resyncMs: number;
  readonly workers: number;
  readonly assignments: boolean;
  readonly scaleUpTimeoutMs: number;
  readonly drainSlackMs: number;
  readonly autoscaleIntervalMs: number;
  /**
   * Prefixes a set's evaluator image must start with, on a boundary of the reference (see
   * reconcile/imagePolicy.ts); a set with another image is refused and nothing of it is applied.
   * Empty: every image is allowed.
   */
  readonly allowedImagePrefixes: readonly string[];
  /**
   * Whether shard pods run as spec.evaluator.serviceAccountName. False: they run as the namespace's
   * `default` ServiceAccount whatever the set says.
   */
  readonly serviceAccountPassthrough: boolean;
  /**
   * The client-side rate limit of every request to the kube-apiserver (a token bucket shared by
   * every client the operator builds: kube/rateLimitedKubeConfig.ts).
   */
  readonly kubeApi: { readonly qps: number; readonly burst: number };
  /**
   * `TLS_CA_FILE` (environment only): the PEM bundle of CAs trusted for PostgreSQL over TLS when a
   * set's database URL asks for it with sslmode (runtime/pgTls.ts); checked readable at start.
   */
  readonly tlsCaFile: string | undefined;
}

/**
 * Defaults of `--kube-api-qps` and `--kube-api-burst`: controller-runtime's (20/30), not client-go's
 * bare 5/10. client-go's figures suit a command-line client; controller-runtime raised them for
 * controllers, and an apiserver's API Priority and Fairness is sized for controllers at that rate.
 * A settled set costs nothing at a resync (a no-op apply is skipped by its input hash and an
 * unchanged status is not written), so the limit only paces bursts of real work, such as every set
 * resized at once: at 20/s, 50 sets growing by 16 shards (800 applies plus their status writes and
 * Events, about 1000 requests) take about 50 s, where an unlimited operator with many workers would
 * send them as fast as the apiserver answers, crowding out the other clients of its priority level.
 * With its default 4 workers the operator rarely reaches 20/s (see "Many shard sets" in the README).
 */
export const KUBE_API_DEFAULTS = { qps: 20, burst: 30 } as const;

/**
 * Bounds of the rate limit. At least 1 request per second: the leader Lease's renewal (a read and
 * a write) waits at most two token intervals behind a backlog (kube/tokenBucket.ts), 2 s at 1/s,
 * well within any renew deadline the leader-election checks accept; below that a renewal could miss
 * it and the leader would step down. At most 10000: beyond, the limit no longer limits anything.
 */
export const KUBE_API_LIMITS = { minQps: 1, maxQps: 10_000, maxBurst: 10_000 } as const;

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

/**
 * Bounds of the timing settings, checked at start so that no value can hurt:
 * - every duration stays below 2^31 ms (about 24.8 days): Node's timers fire at once, every
 *   millisecond for `setInterval`, when given more;
 * - `--resync-period` and `--autoscale-interval` at least 1 s: at 0 the resync timer (or an
 *   autoscaled set's requeue) loops about every millisecond, reconciling all the time;
 * - `--leader-election-retry-period` at least 100 ms: every retry is a request on the Lease (a
 *   write while leading), so a 0 would hammer the apiserver; 100 ms keeps a candidate below 10
 *   requests per second, well under what one client may send, and is far below any useful value
 *   (client-go's default is 2 s);
 * - with leader election on, client-go's order (leaderelection.NewLeaderElector):
 *   lease-duration > renew-deadline > retry-period × 1.2 (client-go's JitterFactor). A renew
 *   deadline no longer than the lease lets a standby take a Lease the leader still believes it
 *   holds; a deadline within one jittered retry leaves the leader a single attempt to renew.
 */
export const DURATION_LIMITS = {
  maxMs: 2 ** 31 - 1,
  minResyncMs: 1000,
  minAutoscaleIntervalMs: 1000,
  minRetryPeriodMs: 100,
  /** client-go's leaderelection.JitterFactor. */
  jitterFactor: 1.2,
} as const;

/** Parses a duration like `15s`, `500ms`, `2m` or a bare number of seconds; fails naming the setting. */
export function parseDuration(raw: string, setting: string, minMs = 0): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new ConfigError(`${setting}: expected a duration like 15s, 500ms or 2m, got "${raw}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
  if (ms < minMs) throw new ConfigError(`${setting}: must be at least ${formatMs(minMs)}, got "${raw}"`);
  if (ms > DURATION_LIMITS.maxMs) {
    throw new ConfigError(`${setting}: must be at most 596h (Node's longest timer), got "${raw}"`);
  }
  return ms;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function positiveInt(raw: string, setting: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new ConfigError(`${setting}: expected a positive integer, got "${raw}"`);
  }
  return n;
}

/**
 * `--allowed-image-prefixes`: a comma-separated list, blanks dropped. A prefix may not hold blanks,
 * and one that ends in `:` or `@` must name a repository (hold a `/`): `registry.example.com:` would
 * allow `registry.example.com:anything`, an image of Docker Hub's library.
 */
function imagePrefixes(raw: string): string[] {
  const prefixes = raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of prefixes) {
    if (/\s/.test(p)) {
      throw new ConfigError(`--allowed-image-prefixes: "${p}" holds a blank; separate prefixes with commas`);
    }
    if (/[:@]$/.test(p) && !p.includes("/")) {
      throw new ConfigError(
        `--allowed-image-prefixes: "${p}" ends in "${p.at(-1)}" but names no repository; ` +
          'end a registry host with "/" (for example registry.example.com/)',
      );
    }
  }
  return prefixes;
}

/** `--kube-api-qps`: a number of requests per second (fractions allowed), within {@link KUBE_API_LIMITS}. */
function kubeApiQps(raw: string): number {
  const n = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isFinite(n)) {
    throw new ConfigError(
      `--kube-api-qps (or $KUBE_API_QPS): expected a number of requests per second, got "${raw}"`,
    );
  }
  if (n < KUBE_API_LIMITS.minQps || n > KUBE_API_LIMITS.maxQps) {
    throw new ConfigError(
      `--kube-api-qps (or $KUBE_API_QPS): must be between ${KUBE_API_LIMITS.minQps} and ${KUBE_API_LIMITS.maxQps}, got "${raw}"`,
    );
  }
  return n;
}

/** `--kube-api-burst`: a positive whole number of requests, within {@link KUBE_API_LIMITS}. */
function kubeApiBurst(raw: string): number {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > KUBE_API_LIMITS.maxBurst) {
    throw new ConfigError(
      `--kube-api-burst (or $KUBE_API_BURST): expected a whole number of requests between 1 and ${KUBE_API_LIMITS.maxBurst}, got "${raw}"`,
    );
  }
  return n;
}

function address(raw: string, setting: string): ListenAddress {
  try {
    return parseAddress(raw, setting);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/**
 * client-go's order of the leader-election timings (see {@link DURATION_LIMITS}).
 * @throws ConfigError naming the settings
 */
function checkLeaderElectionOrder(leaseDurationMs: number, renewDeadlineMs: number, retryPeriodMs: number) {
  if (!(leaseDurationMs > renewDeadlineMs)) {
    throw new ConfigError(
      "--leader-election-lease-duration: must be greater than --leader-election-renew-deadline " +
        "(expected lease-duration > renew-deadline > retry-period × 1.2)",
    );
  }
  if (!(renewDeadlineMs > retryPeriodMs * DURATION_LIMITS.jitterFactor)) {
    throw new ConfigError(
      "--leader-election-renew-deadline: must be greater than 1.2 × --leader-election-retry-period " +
        "(expected lease-duration > renew-deadline > retry-period × 1.2)",
    );
  }
}

/**
 * Validates raw options once, applies units and defaults (Temporal's compileWorkerOptions).
 * @throws ConfigError naming the first invalid setting
 */
export function compileOperatorConfig(
  raw: RawOperatorOptions,
  env: Readonly<Record<string, string | undefined>>,
): OperatorConfig {
  if (!LOG_LEVELS.includes(raw.logLevel)) {
    throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(", ")}, got "${raw.logLevel}"`);
  }
  const leaseDurationMs = parseDuration(raw.leaseDuration, "--leader-election-lease-duration");
  const renewDeadlineMs = parseDuration(raw.renewDeadline, "--leader-election-renew-deadline");
  const retryPeriodMs = parseDuration(
    raw.retryPeriod,
    "--leader-election-retry-period",
    DURATION_LIMITS.minRetryPeriodMs,
  );
  // Unused without leader election (one replica): only their format is checked then.
  if (raw.leaderElect) checkLeaderElectionOrder(leaseDurationMs, renewDeadlineMs, retryPeriodMs);
  const namespaces = (raw.namespaces ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    kubeconfig: raw.kubeconfig || env["KUBECONFIG"] || undefined,
    namespaces,
    leaderElection: raw.leaderElect
      ? {
          enabled: true,
          namespace: raw.leaderElectionNamespace || env["POD_NAMESPACE"] || "default",
          name: raw.leaderElectionId,
          identity: `${env["POD_NAME"] || hostname()}_${randomBytes(4).toString("hex")}`,
          leaseDurationMs,
          renewDeadlineMs,
          retryPeriodMs,
        }
      : { enabled: false },
    metricsAddress: address(raw.metricsBindAddress, "--metrics-bind-address"),
    healthAddress: address(raw.healthProbeBindAddress, "--health-probe-bind-address"),
    logLevel: raw.logLevel,
    resyncMs: parseDuration(raw.resyncPeriod, "--resync-period", DURATION_LIMITS.minResyncMs),
    workers: positiveInt(raw.workers, "--workers"),
    assignments: raw.assignments,
    scaleUpTimeoutMs: parseDuration(raw.scaleUpTimeout, "--scale-up-timeout"),
    drainSlackMs: parseDuration(raw.drainSlack, "--drain-slack"),
    autoscaleIntervalMs: parseDuration(
      raw.autoscaleInterval ?? "15s",
      "--autoscale-interval",
      DURATION_LIMITS.minAutoscaleIntervalMs,
    ),
    allowedImagePrefixes: imagePrefixes(raw.allowedImagePrefixes ?? ""),
    serviceAccountPassthrough: raw.serviceAccountPassthrough ?? true,
    kubeApi: {
      qps: kubeApiQps(raw.kubeApiQps ?? String(KUBE_API_DEFAULTS.qps)),
      burst: kubeApiBurst(raw.kubeApiBurst ?? String(KUBE_API_DEFAULTS.burst)),
    },
    tlsCaFile: compileTlsCaFile(env),
  };
}
