import { createHash } from "node:crypto";
import type { AlertEvaluation, TenantEvaluation } from "../rules/evaluateTenant.ts";
import { pairKey, splitPairKey } from "../rules/planTenant.ts";
import type { Rule, Severity } from "../rules/types.ts";

/**
 * The alert fingerprint: SHA-256 (hex) of the JSON array [tenant, rule, device], so ids containing
 * any character cannot collide, and every evaluator computes the same key for a condition.
 */
export function alertFingerprint(tenantId: string, ruleId: string, deviceId: string): string {
  return createHash("sha256")
    .update(JSON.stringify([tenantId, ruleId, deviceId]))
    .digest("hex");
}

/** Active maintenance of one tenant at the tick time. */
export interface Maintenance {
  /** A window without device covers the whole tenant. */
  readonly tenantWide: boolean;
  readonly deviceIds: ReadonlySet<string>;
}

/** No maintenance window active. */
export const NO_MAINTENANCE: Maintenance = { tenantWide: false, deviceIds: new Set() };

/** One `fire` / `still-firing` row for the upsert. */
export interface AlertUpsert {
  readonly ruleId: string;
  readonly deviceId: string;
  readonly fingerprint: string;
  readonly severity: Severity;
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
  readonly value: number | null;
  readonly message: string;
  readonly escalated: boolean;
}

/** A `fire` held back by a maintenance window: no alert row, but a `suppressed` alert event. */
export interface AlertSuppression {
  readonly ruleId: string;
  readonly deviceId: string;
  readonly fingerprint: string;
  readonly severity: Severity;
  readonly value: number | null;
  readonly message: string;
}

/** Everything one tenant writes to `alerts` this tick. */
export interface AlertWrites {
  readonly upserts: readonly AlertUpsert[];
  /** Fingerprints of open alerts to resolve. */
  readonly resolves: readonly string[];
  /**
   * The `fire` actions a maintenance window held back (one per incident: the lifecycle fires once,
   * the ticks after it are `still-firing`), for the alert-event outbox. Absent: none.
   */
  readonly suppressions?: readonly AlertSuppression[];
  /** Decided actions by kind (after suppression): what `evaluator_alerts_total` counts. */
  readonly counts: { readonly fire: number; readonly stillFiring: number; readonly resolve: number };
  /** fire/still-firing actions held back by a maintenance window. */
  readonly suppressedByMaintenance: number;
}

/** A short human-readable description of why an alert fires. */
export function alertMessage(rule: Rule, ev: Pick<AlertEvaluation, "value">): string {
  const v = ev.value === null ? "" : ` (value ${ev.value})`;
  switch (rule.type) {
    case "threshold":
      return `${rule.metric} ${rule.operator} ${rule.threshold}${v}`;
    case "window": {
      const scope =
        rule.params.lastN === null
          ? `${rule.windowSeconds}s`
          : `last ${rule.params.lastN} in ${rule.windowSeconds}s`;
      return `${rule.metric} ${rule.operator} ${rule.threshold} at least ${rule.minCount}× within ${scope}${ev.value === null ? "" : ` (${ev.value} matching)`}`;
    }
    case "anomaly":
      return `${rule.metric} deviates more than ${rule.params.k}σ from its rolling mean${v}`;
    case "pattern":
      return rule.params.kind === "absent"
        ? `no ${rule.metric} reading for ${rule.windowSeconds}s${ev.value === null ? "" : ` (silent ${ev.value}s)`}`
        : `${rule.metric} rose ${rule.minCount} times in a row within ${rule.windowSeconds}s${v}`;
  }
}

function underMaintenance(m: Maintenance, deviceId: string): boolean {
  return m.tenantWide || m.deviceIds.has(deviceId);
}

/**
 * Turns one tenant's evaluation into its alert writes (pure):
 * - `fire` and `still-firing` → upserts, unless a maintenance window covers the device (suppressed:
 *   nothing is opened or bumped while maintenance lasts; a condition still true afterwards opens the
 *   alert on the next tick);
 * - `resolve` → resolved, maintenance or not (a cleared condition always closes its alert);
 * - a pair whose condition is `false` while PostgreSQL has its alert open (`openPairs`, keys of
 *   {@link pairKey}) → resolved too: the lifecycle state in Valkey was lost (flush, fail-open tick),
 *   so the lifecycle could not say "resolve", but the condition did. An unknown (`null`) condition
 *   never resolves.
 */
export function buildAlertWrites(
  tenantId: string,
  rulesById: ReadonlyMap<string, Rule>,
  evaluation: Pick<TenantEvaluation, "evaluations" | "conditions">,
  openPairs: ReadonlySet<string>,
  maintenance: Maintenance,
): AlertWrites {
  const upserts: AlertUpsert[] = [];
  const resolves: string[] = [];
  const suppressions: AlertSuppression[] = [];
  const resolvedPairs = new Set<string>();
  let fire = 0;
  let stillFiring = 0;
  let suppressedByMaintenance = 0;
  for (const ev of evaluation.evaluations) {
    const fingerprint = alertFingerprint(tenantId, ev.ruleId, ev.deviceId);
    if (ev.action === "resolve") {
      resolves.push(fingerprint);
      resolvedPairs.add(pairKey(ev.ruleId, ev.deviceId));
      continue;
    }
    const rule = rulesById.get(ev.ruleId);
    if (underMaintenance(maintenance, ev.deviceId)) {
      suppressedByMaintenance++;
      if (ev.action === "fire") {
        suppressions.push({
          ruleId: ev.ruleId,
          deviceId: ev.deviceId,
          fingerprint,
          severity: ev.severity,
          value: ev.value,
          message: rule ? alertMessage(rule, ev) : "",
        });
      }
      continue;
    }
    upserts.push({
      ruleId: ev.ruleId,
      deviceId: ev.deviceId,
      fingerprint,
      severity: ev.severity,
      firstSeenMs: Math.min(ev.since, ev.at),
      lastSeenMs: ev.at,
      value: ev.value,
      message: rule ? alertMessage(rule, ev) : "",
      escalated: ev.escalated,
    });
    if (ev.action === "fire") fire++;
    else stillFiring++;
  }
  // Only tenants with open alerts pay for this scan (most pairs are false on most ticks); the few
  // open pairs are looked up by rule, then device, so no key is built for the many others.
  if (openPairs.size > 0) {
    const open = new Map<string, Set<string>>();
    for (const key of openPairs) {
      const pair = splitPairKey(key);
      if (pair === null) continue;
      const devices = open.get(pair.ruleId);
      if (devices) devices.add(pair.deviceId);
      else open.set(pair.ruleId, new Set([pair.deviceId]));
    }
    for (const c of evaluation.conditions) {
      if (c.status !== false || !open.get(c.ruleId)?.has(c.deviceId)) continue;
      const key = pairKey(c.ruleId, c.deviceId);
      if (resolvedPairs.has(key)) continue;
      resolvedPairs.add(key);
      resolves.push(alertFingerprint(tenantId, c.ruleId, c.deviceId));
    }
  }
  return {
    upserts,
    resolves,
    suppressions,
    counts: { fire, stillFiring, resolve: resolves.length },
    suppressedByMaintenance,
  };
}
