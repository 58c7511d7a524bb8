import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { type ListenAddress, parseAddress } from "../../../runtime/httpServer.ts";

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
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

/** Parses a duration like `15s`, `500ms`, `2m` or a bare number of seconds; fails naming the setting. */
export function parseDuration(raw: string, setting: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new Error(`${setting}: expected a duration like 15s, 500ms or 2m, got "${raw}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
}

function positiveInt(raw: string, setting: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${setting}: expected a positive integer, got "${raw}"`);
  return n;
}

/** Validates raw options once, applies units and defaults (Temporal's compileWorkerOptions). */
export function compileOperatorConfig(
  raw: RawOperatorOptions,
  env: Readonly<Record<string, string | undefined>>,
): OperatorConfig {
  if (!LOG_LEVELS.includes(raw.logLevel)) {
    throw new Error(`--log-level: expected one of ${LOG_LEVELS.join(", ")}, got "${raw.logLevel}"`);
  }
  const leaseDurationMs = parseDuration(raw.leaseDuration, "--leader-election-lease-duration");
  const renewDeadlineMs = parseDuration(raw.renewDeadline, "--leader-election-renew-deadline");
  const retryPeriodMs = parseDuration(raw.retryPeriod, "--leader-election-retry-period");
  if (raw.leaderElect && !(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
    throw new Error("leader election: expected lease-duration > renew-deadline > retry-period");
  }
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
    metricsAddress: parseAddress(raw.metricsBindAddress, "--metrics-bind-address"),
    healthAddress: parseAddress(raw.healthProbeBindAddress, "--health-probe-bind-address"),
    logLevel: raw.logLevel,
    resyncMs: parseDuration(raw.resyncPeriod, "--resync-period"),
    workers: positiveInt(raw.workers, "--workers"),
    assignments: raw.assignments,
    scaleUpTimeoutMs: parseDuration(raw.scaleUpTimeout, "--scale-up-timeout"),
    drainSlackMs: parseDuration(raw.drainSlack, "--drain-slack"),
    autoscaleIntervalMs: parseDuration(raw.autoscaleInterval ?? "15s", "--autoscale-interval"),
  };
}
