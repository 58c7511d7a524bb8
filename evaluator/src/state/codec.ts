/**
 * Pure translation between the rule engine's types and the scripts' wire format: which keys a call
 * declares, the JSON request in ARGV[1], and the parsing of replies. No I/O, so it is unit-tested
 * apart from Valkey. Numbers go over the wire as strings (JS `String(number)` round-trips exactly),
 * so Lua never re-formats one.
 */
import type { AnomalyStats } from "../rules/anomaly.ts";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import { type AlertState, INACTIVE } from "../rules/lifecycle.ts";
import type { PairState, TenantPlan, TenantState } from "../rules/planTenant.ts";
import { SEVERITIES, type Severity, type WindowEntry } from "../rules/types.ts";
import {
  alertStateKey,
  anomalyKey,
  cooldownKey,
  lastSeenKey,
  tickLeaseKey,
  windowBufferKey,
} from "./keys.ts";
import { lastSeenTtlMs, STATE_RETENTION_MS, windowBufferTtlMs } from "./retention.ts";

/** A tick lease: who (token) holds which tenant-slot, and for how long. */
export interface TickLease {
  readonly tenantId: string;
  /** Tick slot, `floor(t / interval)`. */
  readonly slot: number;
  /** Unique per evaluator process (e.g. shard set, shard index and a random suffix). */
  readonly token: string;
  /** Lease duration; at least the rest of the slot plus the hand-off grace (e.g. 2× the interval). */
  readonly ttlMs: number;
}

/** KEYS and ARGV of one script call. */
export interface ScriptCall {
  readonly keys: readonly string[];
  readonly args: readonly string[];
}

/** Raised when a script reply does not have the documented shape (version skew, foreign data). */
export class ValkeyStateProtocolError extends Error {
  override readonly name = "ValkeyStateProtocolError";
}

/** Collects a call's keys and hands out their 1-based indexes for the request. */
class KeyList {
  readonly keys: string[] = [];
  readonly #index = new Map<string, number>();

  add(key: string): number {
    let i = this.#index.get(key);
    if (i === undefined) {
      this.keys.push(key);
      i = this.keys.length;
      this.#index.set(key, i);
    }
    return i;
  }
}

/** A window buffer member: unique per (ts, value), so re-appending a reading is idempotent. */
export function encodeMember(ts: number, value: number): string {
  return `${ts}:${value}`;
}

/** Inverse of {@link encodeMember}; `null` for anything else. */
export function decodeMember(member: string): WindowEntry | null {
  const i = member.indexOf(":");
  if (i <= 0) return null;
  const ts = Number(member.slice(0, i));
  const value = Number(member.slice(i + 1));
  return Number.isFinite(ts) && Number.isFinite(value) ? { ts, value } : null;
}

/** Stored form of a firing lifecycle state. */
export function encodeAlertState(state: AlertState): string {
  return JSON.stringify({ since: state.since, severity: state.severity });
}

/** Inverse of {@link encodeAlertState}; unreadable → {@link INACTIVE} (the Postgres dedup covers a re-fire). */
export function decodeAlertState(raw: string | null): AlertState {
  if (raw === null) return INACTIVE;
  try {
    const v = JSON.parse(raw) as { since?: unknown; severity?: unknown };
    if (
      typeof v.since === "number" &&
      Number.isFinite(v.since) &&
      (SEVERITIES as readonly unknown[]).includes(v.severity)
    ) {
      return { active: true, since: v.since, severity: v.severity as Severity };
    }
  } catch {
    // fall through
  }
  return INACTIVE;
}

/** Stored form of anomaly statistics. */
export function encodeAnomalyStats(stats: AnomalyStats): string {
  return JSON.stringify({ n: stats.n, mean: stats.mean, variance: stats.variance, lastTs: stats.lastTs });
}

/** Inverse of {@link encodeAnomalyStats}; unreadable → `null` (learning starts over). */
export function decodeAnomalyStats(raw: string | null): AnomalyStats | null {
  if (raw === null) return null;
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    const { n, mean, variance, lastTs } = v;
    const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
    if (
      finite(n) &&
      n >= 0 &&
      finite(mean) &&
      finite(variance) &&
      variance >= 0 &&
      (lastTs === null || finite(lastTs))
    ) {
      return { n, mean, variance, lastTs };
    }
  } catch {
    // fall through
  }
  return null;
}

/**
 * The `tenant_tick.lua` call for a plan: per pair, its cooldown and lifecycle keys, plus its window
 * buffer (with this tick's readings to append), anomaly statistics or last-seen key as needed;
 * and, optionally, the tick lease to take first.
 *
 * @throws RangeError when the lease is for another tenant than the plan
 */
export function buildTickCall(plan: TenantPlan, lease?: TickLease): ScriptCall {
  const keys = new KeyList();
  const t = plan.tenantId;
  const request: Record<string, unknown> = { now: String(plan.now) };
  if (lease) {
    if (lease.tenantId !== t) throw new RangeError(`lease of tenant ${lease.tenantId} used for tenant ${t}`);
    request["lease"] = {
      key: keys.add(tickLeaseKey(t, lease.slot)),
      token: lease.token,
      px: String(lease.ttlMs),
    };
  }
  request["pairs"] = plan.pairs.map((pair) => {
    const r = pair.rule.id;
    const d = pair.deviceId;
    const out: Record<string, unknown> = {
      cooldown: keys.add(cooldownKey(t, r, d)),
      alert: { key: keys.add(alertStateKey(t, r, d)), px: String(STATE_RETENTION_MS) },
    };
    if (pair.window) {
      const add: string[] = [];
      for (const reading of pair.readings)
        add.push(String(reading.ts), encodeMember(reading.ts, reading.value));
      out["window"] = {
        key: keys.add(windowBufferKey(t, r, d)),
        cutoff: String(plan.now - pair.window.windowMs),
        maxLen: String(pair.window.maxLen),
        px: String(windowBufferTtlMs(pair.window.windowMs)),
        add,
      };
    }
    if (pair.anomaly) {
      out["anomaly"] = { key: keys.add(anomalyKey(t, r, d)), px: String(STATE_RETENTION_MS) };
    }
    if (pair.lastSeen) {
      const seen: Record<string, unknown> = {
        key: keys.add(lastSeenKey(t, r, d)),
        px: String(lastSeenTtlMs((pair.rule.windowSeconds ?? 0) * 1000)),
      };
      const newest = pair.readings.at(-1);
      if (newest) seen["max"] = String(newest.ts);
      out["seen"] = seen;
    }
    return out;
  });
  return { keys: keys.keys, args: [JSON.stringify(request)] };
}

/** Outcome of a tenant load: its state, or the lease was held by someone else. */
export type TenantLoad =
  | { readonly acquired: true; readonly state: TenantState }
  | { readonly acquired: false; readonly holder: string | null };

function asString(value: unknown, what: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  throw new ValkeyStateProtocolError(`${what}: expected a string, got ${typeof value}`);
}

function parsePair(reply: unknown, index: number): PairState {
  if (!Array.isArray(reply) || reply.length !== 5) {
    throw new ValkeyStateProtocolError(`pair ${index}: expected 5 fields`);
  }
  const [rawBuffer, rawCooldown, rawAnomaly, rawSeen, rawAlert] = reply as unknown[];
  let buffer: WindowEntry[] | null = null;
  if (rawBuffer !== null && rawBuffer !== undefined) {
    if (!Array.isArray(rawBuffer))
      throw new ValkeyStateProtocolError(`pair ${index}: buffer is not an array`);
    buffer = [];
    for (const m of rawBuffer) {
      const entry = typeof m === "string" ? decodeMember(m) : null;
      if (entry) buffer.push(entry);
    }
  }
  if (typeof rawCooldown !== "number")
    throw new ValkeyStateProtocolError(`pair ${index}: cooldown is not a number`);
  const seen = asString(rawSeen, `pair ${index}: seen`);
  const lastSeen = seen === null ? null : Number(seen);
  return {
    buffer,
    // PTTL: -2 no key, -1 no expiry (never written that way); both mean no cooldown.
    cooldownRemainingMs: Math.max(rawCooldown, 0),
    anomaly: decodeAnomalyStats(asString(rawAnomaly, `pair ${index}: anomaly`)),
    lastSeen: lastSeen !== null && Number.isFinite(lastSeen) ? lastSeen : null,
    alert: decodeAlertState(asString(rawAlert, `pair ${index}: alert`)),
  };
}

/**
 * Parses the `tenant_tick.lua` reply for the plan it was built from.
 * @throws ValkeyStateProtocolError when the reply does not match the plan
 */
export function parseTickReply(plan: TenantPlan, reply: unknown): TenantLoad {
  if (!Array.isArray(reply) || reply.length === 0)
    throw new ValkeyStateProtocolError("tick: expected an array");
  if (reply[0] === 0) return { acquired: false, holder: asString(reply[1], "tick: holder") };
  if (reply[0] !== 1) throw new ValkeyStateProtocolError("tick: unknown status");
  if (reply.length !== plan.pairs.length + 1) {
    throw new ValkeyStateProtocolError(`tick: expected ${plan.pairs.length} pairs, got ${reply.length - 1}`);
  }
  const pairs = new Map<string, PairState>();
  plan.pairs.forEach((pair, i) => {
    pairs.set(pair.key, parsePair(reply[i + 1], i));
  });
  return { acquired: true, state: { pairs } };
}

type CommitOp =
  | { readonly key: number; readonly set: string; readonly px: string }
  | { readonly key: number; readonly del: true };

function commitOp(keys: KeyList, tenantId: string, u: StateUpdate): CommitOp {
  switch (u.kind) {
    case "cooldown":
      return { key: keys.add(cooldownKey(tenantId, u.ruleId, u.deviceId)), set: "1", px: String(u.ttlMs) };
    case "anomaly":
      return {
        key: keys.add(anomalyKey(tenantId, u.ruleId, u.deviceId)),
        set: encodeAnomalyStats(u.stats),
        px: String(STATE_RETENTION_MS),
      };
    case "alert": {
      const key = keys.add(alertStateKey(tenantId, u.ruleId, u.deviceId));
      // An inactive state is not stored: its absence means inactive.
      return u.state.active
        ? { key, set: encodeAlertState(u.state), px: String(STATE_RETENTION_MS) }
        : { key, del: true };
    }
  }
}

/**
 * The `tenant_commit.lua` call for a tenant's state updates, fenced by the lease when given;
 * `null` when there is nothing to write.
 */
export function buildCommitCall(
  tenantId: string,
  updates: readonly StateUpdate[],
  lease?: TickLease,
): ScriptCall | null {
  if (updates.length === 0) return null;
  const keys = new KeyList();
  const request: Record<string, unknown> = {};
  if (lease) {
    if (lease.tenantId !== tenantId)
      throw new RangeError(`lease of tenant ${lease.tenantId} used for tenant ${tenantId}`);
    request["lease"] = { key: keys.add(tickLeaseKey(tenantId, lease.slot)), token: lease.token };
  }
  request["ops"] = updates.map((u) => commitOp(keys, tenantId, u));
  return { keys: keys.keys, args: [JSON.stringify(request)] };
}
