/**
 * Pure translation between the rule engine's types and the scripts' wire format, and the pure
 * state step of a tick: which keys a call declares, its request, the parsing of replies, and how a
 * tenant's known state ({@link TenantSnapshot}) advances by one tick or one commit into the writes
 * that make Valkey follow. No I/O, so it is unit-tested apart from Valkey. Numbers go over the wire
 * as strings (JS `String(number)` round-trips exactly), so Lua never re-formats one.
 */
import type { AnomalyStats } from "../rules/anomaly.ts";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import { type AlertState, INACTIVE } from "../rules/lifecycle.ts";
import type { PairPlan, PairState, TenantPlan, TenantState } from "../rules/planTenant.ts";
import { SEVERITIES, type Severity, type WindowEntry } from "../rules/types.ts";
import { appendToWindow } from "../rules/window.ts";
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

/** A window buffer entry as stored: `ts:value`. */
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

/**
 * One member of a stored buffer after `prev` (the previous entry, or null for the first): the
 * timestamp as a delta `+d` when both are whole milliseconds, which about halves a buffer's size,
 * else absolute.
 */
function storedMember(prev: WindowEntry | null, e: WindowEntry): string {
  if (prev !== null && Number.isSafeInteger(e.ts) && Number.isSafeInteger(prev.ts) && e.ts >= prev.ts) {
    return `+${e.ts - prev.ts}:${e.value}`;
  }
  return encodeMember(e.ts, e.value);
}

/**
 * A stored window buffer: its members joined by `,`, oldest first; after the first, a member's
 * timestamp may be a delta to the one before (`+60000:57`).
 */
export function encodeBuffer(entries: readonly WindowEntry[]): string {
  let out = "";
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    out += i === 0 ? encodeMember(e.ts, e.value) : `,${storedMember(entries[i - 1]!, e)}`;
  }
  return out;
}

/** Inverse of {@link encodeBuffer}, sorted by timestamp; unreadable members are skipped. */
export function decodeBuffer(raw: string): WindowEntry[] {
  const out: WindowEntry[] = [];
  let sorted = true;
  let prevTs: number | null = null;
  for (const member of raw.split(",")) {
    const delta = member.startsWith("+");
    const entry = decodeMember(delta ? member.slice(1) : member);
    if (entry === null || (delta && prevTs === null)) continue;
    const ts: number = delta ? (prevTs as number) + entry.ts : entry.ts;
    if (out.length > 0 && ts < out[out.length - 1]!.ts) sorted = false;
    out.push(delta ? { ts, value: entry.value } : entry);
    prevTs = ts;
  }
  return sorted ? out : out.sort((a, b) => a.ts - b.ts);
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

/** Stored form of anomaly statistics: `n,mean,variance,lastTs` (lastTs empty when unknown). */
export function encodeAnomalyStats(stats: AnomalyStats): string {
  return `${stats.n},${stats.mean},${stats.variance},${stats.lastTs ?? ""}`;
}

/**
 * Inverse of {@link encodeAnomalyStats}, also reading the JSON form of earlier releases;
 * unreadable → `null` (learning starts over).
 */
export function decodeAnomalyStats(raw: string | null): AnomalyStats | null {
  if (raw === null) return null;
  try {
    let v: Record<string, unknown>;
    if (raw.startsWith("{")) {
      v = JSON.parse(raw) as Record<string, unknown>;
    } else {
      const parts = raw.split(",");
      if (parts.length !== 4) return null;
      const num = (x: string) => (x.trim() === "" ? Number.NaN : Number(x));
      v = {
        n: num(parts[0]!),
        mean: num(parts[1]!),
        variance: num(parts[2]!),
        lastTs: parts[3] === "" ? null : num(parts[3]!),
      };
    }
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
export function pairPart(ruleId: string, deviceId: string): string {
  return `${keyPart(ruleId)}:${keyPart(deviceId)}`;
}

/** A window buffer as known: entries oldest first, and their stored form. */
export interface KnownBuffer {
  entries: readonly WindowEntry[];
  stored: string;
}

/**
 * Everything known of one tenant's evaluation state, by pair key (`PairPlan.key`): the state the
 * committed evaluation number `seq` of the tenant's fence left (0: never evaluated). Built from a
 * `tenant_read` reply or rebuilt from PostgreSQL, then kept by the evaluator and advanced in place
 * by {@link advanceTick} and {@link applyCommit}. It is exact while the fence in PostgreSQL is
 * still at `seq`: only the evaluation that moves the fence may write the next state.
 */
export interface TenantSnapshot {
  seq: number;
  /**
   * Tick time of evaluation `seq` (`null` for seq 0). With `seq` it names one committed
   * evaluation even if PostgreSQL lost an asynchronously committed one and gave its seq again.
   */
  at: number | null;
  /**
   * The pairs (by key) whose state this snapshot holds: those of the plan it was read for. A pair
   * outside it (a device or rule that was not in that plan) may have state in Valkey that the
   * snapshot does not know, so a plan with such a pair is read afresh.
   */
  readonly covered: Set<string>;
  readonly buffers: Map<string, KnownBuffer>;
  /** Firing lifecycle states (absent: inactive). */
  readonly alerts: Map<string, AlertState>;
  readonly anomalies: Map<string, AnomalyStats>;
  /** Last-seen times, as stored (ms). */
  readonly seen: Map<string, string>;
  /** When each cooldown ends, on this process's wall clock (ms). */
  readonly cooldownUntil: Map<string, number>;
}

/** The state of a tenant that has none. */
export function emptySnapshot(): TenantSnapshot {
  return {
    seq: 0,
    at: null,
    covered: new Set(),
    buffers: new Map(),
    alerts: new Map(),
    anomalies: new Map(),
    seen: new Map(),
    cooldownUntil: new Map(),
  };
}

/** Whether the snapshot holds the state of every pair of the plan (else it must be read afresh). */
export function covers(snapshot: TenantSnapshot, plan: TenantPlan): boolean {
  for (const pair of plan.pairs) if (!snapshot.covered.has(pair.key)) return false;
  return true;
}

/** The key a read declares: the tick lease when given (taken first), else the state hash. */
function anchorKey(tenantId: string, lease: TickLease | undefined): string {
  if (!lease) return tenantStateKey(tenantId);
  if (lease.tenantId !== tenantId)
    throw new RangeError(`lease of tenant ${lease.tenantId} used for tenant ${tenantId}`);
  return tickLeaseKey(tenantId, lease.slot);
}

/**
 * The `tenant_read.lua` call for a plan: take the lease (when given) and read the tenant's hash
 * and the window buffers of the plan's pairs. It declares ONE key, the lease else the state hash;
 * the script builds every other key from that key's hash tag, as `keys.ts` does.
 *
 * @throws RangeError when the lease is for another tenant than the plan
 */
export function buildReadCall(plan: TenantPlan, lease?: TickLease): ScriptCall {
  const anchor = anchorKey(plan.tenantId, lease);
  const buffers: string[] = [];
  for (const pair of plan.pairs) if (pair.window) buffers.push(pairPart(pair.rule.id, pair.deviceId));
  const request: Record<string, unknown> = { buffers };
  if (lease) request["lease"] = [lease.token, String(lease.ttlMs)];
  return { keys: [anchor], args: [JSON.stringify(request)] };
}

/** Outcome of a read: the tenant's state, or the lease was held by someone else. */
export type ReadResult =
  | { readonly acquired: true; readonly snapshot: TenantSnapshot }
  | { readonly acquired: false; readonly holder: string | null };

function asString(value: unknown, what: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  throw new ValkeyStateProtocolError(`${what}: expected a string, got ${typeof value}`);
}

function nameValueList(list: unknown, what: string): unknown[] {
  if (!Array.isArray(list) || list.length % 2 !== 0)
    throw new ValkeyStateProtocolError(`read: ${what} is not a name/value list`);
  for (let i = 0; i < list.length; i += 2) {
    if (typeof list[i] !== "string")
      throw new ValkeyStateProtocolError(`read: ${what} has a name that is no string`);
  }
  return list;
}

/**
 * Parses the `tenant_read.lua` reply for the plan it was built from into a snapshot. `wallNow` is
 * this process's wall clock when the reply arrived (cooldown TTLs become end times on it). Fields of
 * pairs outside the plan (a deleted rule or device) are kept as read; unreadable values count as
 * absent.
 *
 * @throws ValkeyStateProtocolError when the reply does not match the plan
 */
export function parseReadReply(plan: TenantPlan, reply: unknown, wallNow: number): ReadResult {
  if (!Array.isArray(reply) || reply.length === 0)
    throw new ValkeyStateProtocolError("read: expected an array");
  if (reply[0] === 0) return { acquired: false, holder: asString(reply[1], "read: holder") };
  if (reply[0] !== 1) throw new ValkeyStateProtocolError("read: unknown status");
  if (reply.length !== 5) throw new ValkeyStateProtocolError("read: expected 5 fields");
  const snapshot = emptySnapshot();
  // No seq: a tenant never evaluated (or the state of an earlier release, which counts as such).
  const version = parseStateVersion(asString(reply[1], "read: seq") ?? "0");
  if (version === null) throw new ValkeyStateProtocolError("read: seq is not a state version");
  snapshot.seq = version.seq;
  snapshot.at = version.at;
  for (const pair of plan.pairs) snapshot.covered.add(pair.key);
  const keyOfPart = new Map(plan.pairs.map((p) => [pairPart(p.rule.id, p.deviceId), p.key]));
  const fields = nameValueList(reply[2], "fields");
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = asString(fields[i + 1], `read: field ${name}`);
    const cut = name.lastIndexOf(":");
    // The state of a pair outside the plan (a deleted rule or device) is not kept.
    const key = keyOfPart.get(name.slice(0, cut));
    if (key === undefined) continue;
    switch (name.slice(cut + 1)) {
      case "cond": {
        const alert = decodeAlertState(value);
        if (alert.active) snapshot.alerts.set(key, alert);
        break;
      }
      case "anom": {
        const stats = decodeAnomalyStats(value);
        if (stats) snapshot.anomalies.set(key, stats);
        break;
      }
      case "seen":
        if (value !== null) snapshot.seen.set(key, value);
        break;
      // Anything else is not this release's field: ignored.
    }
  }
  const cooldowns = reply[3];
  if (!Array.isArray(cooldowns) || cooldowns.length % 3 !== 0)
    throw new ValkeyStateProtocolError("read: cooldowns is not a list of triples");
  for (let i = 0; i < cooldowns.length; i += 3) {
    const left = cooldowns[i + 1];
    if (typeof left !== "number") throw new ValkeyStateProtocolError("read: cooldown is not a number");
    const key = keyOfPart.get(String(cooldowns[i]));
    if (key === undefined) continue;
    // The end as stored (tick clock); "1" (an earlier release) → the key's time left on wallNow.
    const until = Number(asString(cooldowns[i + 2], "read: cooldown end"));
    snapshot.cooldownUntil.set(key, Number.isFinite(until) && until > 1 ? until : wallNow + left);
  }
  const buffers = reply[4] as unknown;
  const windowPairs = plan.pairs.filter((p) => p.window);
  if (!Array.isArray(buffers) || buffers.length !== windowPairs.length)
    throw new ValkeyStateProtocolError("read: buffers do not match the plan");
  windowPairs.forEach((pair, i) => {
    const raw = asString(buffers[i], `read: buffer ${i}`);
    if (raw === null || raw === "") return;
    const entries = decodeBuffer(raw);
    if (entries.length > 0) {
      snapshot.buffers.set(pair.key, { entries, stored: encodeBuffer(entries) });
    }
  });
  return { acquired: true, snapshot };
}

/** Flat write ops of `tenant_write.lua`, 4 items each (see the script). */
export type WriteOps = (string | number | false)[];

/**
 * Writes being gathered: the ops, and the values they store, which travel as ARGV entries of
 * their own (an op names the ARGV index of its value) so the script's JSON decoder never sees them.
 */
export interface Writes {
  readonly ops: WriteOps;
  readonly values: string[];
}

/** Adds `value` to the writes' values; its ARGV index (ARGV[1] is the request, values follow). */
function valueRef(writes: Writes, value: string): number {
  writes.values.push(value);
  return writes.values.length + 1;
}

/**
 * The stored name of the state of evaluation `seq` at tick time `at`: `"<seq>:<at>"`, or `"0"` for
 * the state of a tenant never evaluated.
 */
export function stateVersion(seq: number, at: number | null): string {
  return seq === 0 || at === null ? String(seq) : `${seq}:${at}`;
}

/** Inverse of {@link stateVersion}; `null` for anything else. */
export function parseStateVersion(raw: string): { seq: number; at: number | null } | null {
  const cut = raw.indexOf(":");
  const seq = Number(cut < 0 ? raw : raw.slice(0, cut));
  const at = cut < 0 ? null : Number(raw.slice(cut + 1));
  if (!Number.isSafeInteger(seq) || seq < 0 || (at !== null && !Number.isFinite(at))) return null;
  return { seq, at };
}

/** A `tenant_write.lua` request, apart from its key. */
export interface WriteRequest {
  /**
   * `delta`: the writes were computed from the state of seq `expect` (applied only on that state);
   * `full`: they are the whole state (applied only over an older one).
   */
  readonly mode: "delta" | "full";
  /** Delta: the {@link stateVersion} of the state the writes were computed from. */
  readonly expect: string;
  /** The seq of the committed evaluation whose state this is … */
  readonly seq: number;
  /** … and its {@link stateVersion}, stored in the hash field `seq`. */
  readonly version: string;
  readonly statePx: number;
  readonly ops: WriteOps;
  /** Values, referred to by `b` and `f` ops as ARGV indexes (2, 3, …). */
  readonly values: readonly string[];
}

/**
 * The `tenant_write.lua` call. It declares ONE key, the tenant's state hash; stored values travel
 * as their own ARGV entries (an op names its ARGV index), so the script decodes only the small
 * JSON request.
 */
export function buildWriteCall(tenantId: string, request: WriteRequest): ScriptCall {
  const header = {
    mode: request.mode,
    expect: request.expect,
    seq: String(request.seq),
    version: request.version,
    statePx: String(request.statePx),
    ops: request.ops,
  };
  return { keys: [tenantStateKey(tenantId)], args: [JSON.stringify(header), ...request.values] };
}

/** Outcome of a write. */
export type WriteResult =
  | { readonly kind: "applied" }
  /** The stored seq refused the write (`delta`: not `expect`; `full`: not older): nothing written. */
  | { readonly kind: "stale"; readonly stored: number | null };

/** Parses the `tenant_write.lua` reply. @throws ValkeyStateProtocolError on any other shape */
export function parseWriteReply(reply: unknown): WriteResult {
  if (Array.isArray(reply)) {
    if (reply[0] === 1) return { kind: "applied" };
    if (reply[0] === 2) {
      const stored = asString(reply[1], "write: seq");
      return { kind: "stale", stored: stored === null ? null : (parseStateVersion(stored)?.seq ?? null) };
    }
  }
  throw new ValkeyStateProtocolError("write: unexpected reply");
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

/**
 * The stored form of `next`, derived from the previous one when `next` only dropped a prefix of
 * `prev` and appended entries (the usual step), so a tick does not re-encode whole buffers: the
 * kept part is sliced out of the previous form, its first member made absolute.
 */
function storedForm(prev: KnownBuffer | undefined, next: readonly WindowEntry[]): string {
  if (prev === undefined || next.length === 0) return encodeBuffer(next);
  const old = prev.entries;
  const k = old.indexOf(next[0]!);
  if (k < 0) return encodeBuffer(next);
  const kept = old.length - k;
  if (kept > next.length) return encodeBuffer(next);
  for (let i = 1; i < kept; i++) if (next[i] !== old[k + i]) return encodeBuffer(next);
  let out: string;
  if (k === 0) {
    out = prev.stored;
  } else {
    // Skip k + 1 members: the first kept one is re-encoded as absolute.
    let start = 0;
    for (let i = 0; i <= k; i++) start = prev.stored.indexOf(",", start) + 1;
    const first = encodeMember(next[0]!.ts, next[0]!.value);
    out = kept === 1 ? first : `${first},${prev.stored.slice(start)}`;
  }
  for (let i = kept; i < next.length; i++) out += `,${storedMember(next[i - 1]!, next[i]!)}`;
  return out;
}

/** What one tick's state step produced. */
export interface TickAdvance extends Writes {
  /** The state the rules evaluate, by plan pair key. */
  readonly state: TenantState;
}

/**
 * One tick's state step, pure apart from updating `snapshot` in place: every window pair of the
 * plan gets this tick's readings appended and is trimmed to its window at `plan.now`
 * ({@link appendToWindow}); every absent pair's last-seen time becomes the newest of the stored one
 * and its new readings (seeded with `plan.now` when there is neither); cooldowns that ended by
 * `wallNow` are forgotten (and their index field deleted). Returns the state every pair is evaluated with, and the writes that make
 * Valkey hold the same: a changed buffer is SET with its TTL (2× the window, so an idle buffer
 * expires), an emptied one deleted.
 */
export function advanceTick(snapshot: TenantSnapshot, plan: TenantPlan, wallNow: number): TickAdvance {
  const writes: Writes = { ops: [], values: [] };
  const ops = writes.ops;
  const pairs = new Map<string, PairState>();
  for (const pair of plan.pairs) {
    const key = pair.key;
    let until = snapshot.cooldownUntil.get(key);
    if (until !== undefined && until <= wallNow) {
      snapshot.cooldownUntil.delete(key);
      ops.push("f", `${partOf(pair)}:cd`, false, false);
      until = undefined;
    }
    let buffer: readonly WindowEntry[] | null = null;
    if (pair.window) {
      const prev = snapshot.buffers.get(key);
      const before = prev?.entries ?? NO_ENTRIES;
      buffer = appendToWindow(before, pair.readings, plan.now, pair.window);
      if (buffer !== before) {
        if (buffer.length === 0) {
          snapshot.buffers.delete(key);
          ops.push("b", partOf(pair), false, false);
        } else {
          const stored = storedForm(prev, buffer);
          if (prev) {
            // Updated in place: one object less to allocate and promote per pair and tick.
            prev.entries = buffer;
            prev.stored = stored;
          } else {
            snapshot.buffers.set(key, { entries: buffer, stored });
          }
          const px = String(windowBufferTtlMs(pair.window.windowMs));
          ops.push("b", partOf(pair), valueRef(writes, stored), px);
        }
      }
    }
    let lastSeen: number | null = null;
    if (pair.lastSeen) {
      const stored = snapshot.seen.get(key);
      let next = stored !== undefined && Number.isFinite(Number(stored)) ? stored : undefined;
      const newest = pair.readings.at(-1);
      if (newest && (next === undefined || newest.ts > Number(next))) next = String(newest.ts);
      next ??= String(plan.now);
      if (next !== stored) {
        snapshot.seen.set(key, next);
        ops.push("f", `${partOf(pair)}:seen`, valueRef(writes, next), false);
      }
      lastSeen = Number(next);
    }
    pairs.set(key, {
      buffer,
      cooldownRemainingMs: until === undefined ? 0 : until - wallNow,
      anomaly: pair.anomaly ? (snapshot.anomalies.get(key) ?? null) : null,
      lastSeen,
      alert: snapshot.alerts.get(key) ?? INACTIVE,
    });
  }
  return { state: { pairs }, ...writes };
}

const NO_ENTRIES: readonly WindowEntry[] = Object.freeze([]);

/** How the scripts name a planned pair (computed only for the pairs that are written). */
function partOf(pair: PairPlan): string {
  return pairPart(pair.rule.id, pair.deviceId);
}

/**
 * The writes of an evaluation's state updates: cooldowns with PX (ending `ttlMs` after the tick
 * time `now`), and hash fields set or deleted, appended to `writes` (a tick's {@link advanceTick}
 * writes, so one call carries both).
 */
export function commitOps(
  updates: readonly StateUpdate[],
  now: number,
  writes: Writes = { ops: [], values: [] },
): Writes {
  const ops = writes.ops;
  for (const u of updates) {
    const part = pairPart(u.ruleId, u.deviceId);
    switch (u.kind) {
      case "cooldown":
        ops.push("c", part, String(u.ttlMs), String(now + u.ttlMs));
        break;
      case "anomaly":
        ops.push("f", `${part}:anom`, valueRef(writes, encodeAnomalyStats(u.stats)), false);
        break;
      case "alert":
        // An inactive state is not stored: its absence means inactive.
        ops.push(
          "f",
          `${part}:cond`,
          u.state.active ? valueRef(writes, encodeAlertState(u.state)) : false,
          false,
        );
        break;
    }
  }
  return writes;
}

/** Applies committed updates to the snapshot; cooldowns end `ttlMs` after the tick time `wallNow`. */
export function applyCommit(
  snapshot: TenantSnapshot,
  updates: readonly StateUpdate[],
  wallNow: number,
): void {
  for (const u of updates) {
    const key = u.pairKey;
    switch (u.kind) {
      case "cooldown":
        snapshot.cooldownUntil.set(key, wallNow + u.ttlMs);
        break;
      case "anomaly":
        snapshot.anomalies.set(key, u.stats);
        break;
      case "alert":
        if (u.state.active) snapshot.alerts.set(key, u.state);
        else snapshot.alerts.delete(key);
        break;
    }
  }
}

/**
 * The whole stored state of the plan's pairs, as `snapshot` holds it: every window buffer SET (or
 * deleted when empty), every lifecycle state, anomaly statistics and last-seen time as a hash
 * field, every cooldown still running at the tick time `now` with its end (and a key TTL of its time
 * left). Written in `full` mode (the hash is replaced), after a rebuild from PostgreSQL or over a
 * state that lagged behind the fence. The state of pairs outside the plan (a disabled rule, a device
 * that is not registered and sent nothing this tick) is not kept: no alert is written for an
 * unregistered device, and a re-enabled rule starts over.
 */
export function fullStateWrites(snapshot: TenantSnapshot, plan: TenantPlan, now: number): Writes {
  const writes: Writes = { ops: [], values: [] };
  const ops = writes.ops;
  for (const pair of plan.pairs) {
    const key = pair.key;
    const part = partOf(pair);
    if (pair.window) {
      const buffer = snapshot.buffers.get(key);
      if (buffer && buffer.entries.length > 0) {
        const px = String(windowBufferTtlMs(pair.window.windowMs));
        ops.push("b", part, valueRef(writes, buffer.stored), px);
      } else {
        ops.push("b", part, false, false);
      }
    }
    const alert = snapshot.alerts.get(key);
    if (alert?.active) ops.push("f", `${part}:cond`, valueRef(writes, encodeAlertState(alert)), false);
    const stats = snapshot.anomalies.get(key);
    if (stats) ops.push("f", `${part}:anom`, valueRef(writes, encodeAnomalyStats(stats)), false);
    const seen = snapshot.seen.get(key);
    if (seen !== undefined) ops.push("f", `${part}:seen`, valueRef(writes, seen), false);
    const until = snapshot.cooldownUntil.get(key);
    if (until !== undefined && until > now)
      ops.push("c", part, String(Math.ceil(until - now)), String(until));
  }
  return writes;
}
