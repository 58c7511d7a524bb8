/**
 * How long each kind of tenant state lives in Valkey. TTLs are refreshed while the state is in
 * use, so they only garbage-collect the state of deleted rules, devices and tenants.
 */
import type { TenantPlan } from "../rules/planTenant.ts";

/** Shortest window buffer lifetime. */
const MIN_WINDOW_BUFFER_TTL_MS = 120_000;

/** Anomaly statistics and alert lifecycle state: refreshed on every tick that loads them. */
export const STATE_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Window buffer: 2× the window, at least 120 s, refreshed whenever a reading is appended. Twice the
 * window so a buffer outlives a late tick; a device that stays silent longer loses nothing the
 * window still needed.
 */
export function windowBufferTtlMs(windowMs: number): number {
  return Math.max(2 * windowMs, MIN_WINDOW_BUFFER_TTL_MS);
}

/**
 * Last-seen timestamp (absent pattern): refreshed on every tick. Long (≥ 7 days) because losing it
 * re-seeds the silence clock and would hide a sensor that died while the evaluator was down.
 */
export function lastSeenTtlMs(windowMs: number): number {
  return Math.max(2 * windowMs, STATE_RETENTION_MS);
}

/**
 * TTL of the tenant's state hash: the retention of lifecycle states and statistics, or a longer
 * last-seen retention when an absent rule's window asks for it.
 */
export function tenantStatePx(plan: TenantPlan): number {
  let px = STATE_RETENTION_MS;
  for (const pair of plan.pairs) {
    if (pair.lastSeen) px = Math.max(px, lastSeenTtlMs((pair.rule.windowSeconds ?? 0) * 1000));
  }
  return px;
}
