/**
 * Pure translation between the rule engine's types and the scripts' wire format: which keys a call
 * declares, the JSON request in ARGV[1], and the parsing of replies. No I/O, so it is unit-tested
 * apart from Valkey. Numbers go over the wire as strings (JS `String(number)` round-trips exactly),
 * so Lua never re-formats one.
 */
import type { AnomalyStats } from "../rules/anomaly.ts";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import { type AlertState, INACTIVE } from "../rules/lifecycle.ts";
import type { PairPlan, PairState, TenantPlan, TenantState } from "../rules/planTenant.ts";
import { SEVERITIES, type Severity, type WindowEntry } from "../rules/types.ts";
import { keyPart, tenantStateKey, tickLeaseKey } from "./keys.ts";
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

/** `keyPart(rule):keyPart(device)`: how the scripts name a pair inside the tenant's keys and fields. */
function pairPart(ruleId: string, deviceId: string): string {
  return `${keyPart(ruleId)}:${keyPart(deviceId)}`;
}

/** Whether the load script must visit a pair: only window buffers and last-seen times are per pair. */
function isSent(pair: PairPlan): boolean {
  return pair.window !== null || pair.lastSeen;
}

/**
 * TTL of the tenant's state hash: the retention of lifecycle states and statistics, or a longer
 * last-seen retention when an absent rule's window asks for it.
 */
function tenantStatePx(plan: TenantPlan): number {
  let px = STATE_RETENTION_MS;
  for (const pair of plan.pairs) {
    if (pair.lastSeen) px = Math.max(px, lastSeenTtlMs((pair.rule.windowSeconds ?? 0) * 1000));
  }
  return px;
}

/**
 * The `tenant_tick.lua` call for a plan. It declares ONE key: the tick lease when given, else the
 * tenant's state hash; the script builds every other key from that key's hash tag, the escaped
 * rule and device ids (`keyPart`) and the kind, exactly as `keys.ts` does. Rule-level settings
 * (window cutoff, cap and TTL, last-seen) and device ids are sent once. Only the pairs that keep a
 * window buffer or a last-seen time are sent, each as a flat run of the request: rule index, device
 * index, readings, and the newest reading timestamp when the rule tracks last-seen. The other
 * pairs' state (lifecycle, statistics, cooldowns) comes back from the tenant's hash as a whole.
 *
 * @throws RangeError when the lease is for another tenant than the plan
 */
export function buildTickCall(plan: TenantPlan, lease?: TickLease): ScriptCall {
  const t = plan.tenantId;
  let anchor: string;
  const request: Record<string, unknown> = { now: String(plan.now), statePx: String(tenantStatePx(plan)) };
  if (lease) {
    if (lease.tenantId !== t) throw new RangeError(`lease of tenant ${lease.tenantId} used for tenant ${t}`);
    anchor = tickLeaseKey(t, lease.slot);
    request["lease"] = [lease.token, String(lease.ttlMs)];
  } else if (plan.pairs.length > 0) {
    anchor = tenantStateKey(t);
  } else {
    throw new RangeError("a tick call needs a lease or at least one pair");
  }
  const rules: unknown[] = [];
  const ruleIndex = new Map<string, number>();
  const devices: string[] = [];
  const deviceIndex = new Map<string, number>();
  const flat: unknown[] = [];
  for (const pair of plan.pairs) {
    if (!isSent(pair)) continue;
    const w = pair.window;
    const entry = [
      keyPart(pair.rule.id),
      w ? String(plan.now - w.windowMs) : false,
      w ? String(w.maxLen) : "0",
      w ? String(windowBufferTtlMs(w.windowMs)) : "0",
      pair.lastSeen,
    ];
    const ruleKey = JSON.stringify(entry);
    let r = ruleIndex.get(ruleKey);
    if (r === undefined) {
      rules.push(entry);
      r = rules.length;
      ruleIndex.set(ruleKey, r);
    }
    let d = deviceIndex.get(pair.deviceId);
    if (d === undefined) {
      devices.push(keyPart(pair.deviceId));
      d = devices.length;
      deviceIndex.set(pair.deviceId, d);
    }
    flat.push(r, d);
    if (w) {
      flat.push(pair.readings.length);
      for (const reading of pair.readings) flat.push(encodeMember(reading.ts, reading.value));
    } else {
      flat.push(0);
    }
    if (pair.lastSeen) {
      const newest = pair.readings.at(-1);
      flat.push(newest ? String(newest.ts) : false);
    }
  }
  request["rules"] = rules;
  request["devices"] = devices;
  request["pairs"] = flat;
  return { keys: [anchor], args: [JSON.stringify(request)] };
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

/** A flat `name, value, ...` list of the reply, as a map. */
function named(list: unknown, what: string): Map<string, unknown> {
  if (!Array.isArray(list) || list.length % 2 !== 0)
    throw new ValkeyStateProtocolError(`tick: ${what} is not a name/value list`);
  const out = new Map<string, unknown>();
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i] as unknown;
    if (typeof name !== "string")
      throw new ValkeyStateProtocolError(`tick: ${what} has a name that is no string`);
    out.set(name, list[i + 1]);
  }
  return out;
}

/**
 * Parses the `tenant_tick.lua` reply for the plan it was built from. Every pair of the plan gets a
 * state; hash fields of pairs outside the plan (a deleted rule or device) are ignored.
 * @throws ValkeyStateProtocolError when the reply does not match the plan
 */
export function parseTickReply(plan: TenantPlan, reply: unknown): TenantLoad {
  if (!Array.isArray(reply) || reply.length === 0)
    throw new ValkeyStateProtocolError("tick: expected an array");
  if (reply[0] === 0) return { acquired: false, holder: asString(reply[1], "tick: holder") };
  if (reply[0] !== 1) throw new ValkeyStateProtocolError("tick: unknown status");
  if (reply.length !== 5) throw new ValkeyStateProtocolError("tick: expected 5 fields");
  const fields = named(reply[1], "fields");
  const cooldowns = named(reply[2], "cooldowns");
  const seens = reply[3] as unknown;
  const buffers = reply[4] as unknown;
  if (!Array.isArray(seens) || seens.length % 2 !== 0)
    throw new ValkeyStateProtocolError("tick: seens is not an index/value list");
  if (!Array.isArray(buffers)) throw new ValkeyStateProtocolError("tick: buffers is not an array");
  const seenBySent = new Map<number, unknown>();
  for (let i = 0; i < seens.length; i += 2) seenBySent.set(seens[i] as unknown as number, seens[i + 1]);
  let pos = 0;
  let sent = 0;
  let seensUsed = 0;
  const pairs = new Map<string, PairState>();
  plan.pairs.forEach((pair, i) => {
    let buffer: WindowEntry[] | null = null;
    let lastSeen: number | null = null;
    if (isSent(pair)) sent++;
    if (pair.window) {
      const count = buffers[pos] as unknown;
      if (
        typeof count !== "number" ||
        !Number.isInteger(count) ||
        count < 0 ||
        pos + 1 + count > buffers.length
      )
        throw new ValkeyStateProtocolError(`pair ${i}: bad buffer length`);
      buffer = [];
      for (let j = pos + 1; j <= pos + count; j++) {
        const m = buffers[j] as unknown;
        const entry = typeof m === "string" ? decodeMember(m) : null;
        if (entry) buffer.push(entry);
      }
      pos += 1 + count;
    }
    if (pair.lastSeen) {
      const seen = asString(seenBySent.get(sent), `pair ${i}: seen`);
      if (seen === null) throw new ValkeyStateProtocolError(`pair ${i}: no last-seen time`);
      seensUsed++;
      const value = Number(seen);
      lastSeen = Number.isFinite(value) ? value : null;
    }
    const part = pairPart(pair.rule.id, pair.deviceId);
    const cooldown = cooldowns.get(part) ?? 0;
    if (typeof cooldown !== "number")
      throw new ValkeyStateProtocolError(`pair ${i}: cooldown is not a number`);
    pairs.set(pair.key, {
      buffer,
      // Only pairs with time left are listed; the others have no cooldown.
      cooldownRemainingMs: Math.max(cooldown, 0),
      anomaly: pair.anomaly
        ? decodeAnomalyStats(asString(fields.get(`${part}:anom`), `pair ${i}: anomaly`))
        : null,
      lastSeen,
      alert: decodeAlertState(asString(fields.get(`${part}:cond`), `pair ${i}: alert`)),
    });
  });
  if (pos !== buffers.length) throw new ValkeyStateProtocolError("tick: buffers do not match the plan");
  if (seenBySent.size !== seens.length / 2 || seensUsed !== seenBySent.size)
    throw new ValkeyStateProtocolError("tick: seens do not match the plan");
  return { acquired: true, state: { pairs } };
}

/** State kind (as in `keys.ts`), rule part, device part, value (`false`: delete), PX (cooldowns only). */
type CommitOp = readonly [
  kind: string,
  rule: string,
  device: string,
  value: string | false,
  px: string | false,
];

function commitOp(u: StateUpdate): CommitOp {
  const r = keyPart(u.ruleId);
  const d = keyPart(u.deviceId);
  switch (u.kind) {
    case "cooldown":
      return ["cooldown", r, d, "1", String(u.ttlMs)];
    case "anomaly":
      return ["anom", r, d, encodeAnomalyStats(u.stats), false];
    case "alert":
      // An inactive state is not stored: its absence means inactive.
      return u.state.active ? ["cond", r, d, encodeAlertState(u.state), false] : ["cond", r, d, false, false];
  }
}

/**
 * The `tenant_commit.lua` call for a tenant's state updates, fenced by the lease when given;
 * `null` when there is nothing to write. It declares ONE key (the lease, else the tenant's state
 * hash); the script builds the written keys and fields from its hash tag, as `keys.ts` does.
 */
export function buildCommitCall(
  tenantId: string,
  updates: readonly StateUpdate[],
  lease?: TickLease,
): ScriptCall | null {
  if (updates.length === 0) return null;
  const request: Record<string, unknown> = {};
  let anchor: string;
  if (lease) {
    if (lease.tenantId !== tenantId)
      throw new RangeError(`lease of tenant ${lease.tenantId} used for tenant ${tenantId}`);
    anchor = tickLeaseKey(tenantId, lease.slot);
    request["lease"] = lease.token;
  } else {
    anchor = tenantStateKey(tenantId);
  }
  request["statePx"] = String(STATE_RETENTION_MS);
  request["ops"] = updates.flatMap((u) => commitOp(u));
  return { keys: [anchor], args: [JSON.stringify(request)] };
}
