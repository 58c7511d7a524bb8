/**
 * The wire protocol of the state scripts `lua/tenant_read.lua` and `lua/tenant_write.lua`: the
 * KEYS and ARGV of a call, and the parsing of its reply. Pure, so it is unit-tested apart from
 * Valkey. A call declares every key it touches (built by `keys.ts`, all in the tenant's hash slot),
 * so Valkey Cluster routes it and refuses it while the slot moves; the request is a small JSON object, every number in it a string (JS
 * `String(number)` round-trips exactly, so Lua never re-formats one), and stored values travel as
 * ARGV entries of their own. Stored values are `valueEncoding.ts`; the state a read fills and the
 * write ops a tick produces are `tenantSnapshot.ts`.
 */
import type { TenantPlan } from "../rules/planTenant.ts";
import { cooldownKeyOf, pairPart, tenantStateKey, tickLeaseKey, windowBufferKeyOf } from "./keys.ts";
import { emptySnapshot, type TenantSnapshot, type WriteOps } from "./tenantSnapshot.ts";
import {
  decodeAlertState,
  decodeAnomalyStats,
  decodeBuffer,
  encodeBuffer,
  parseStoredVersion,
  partialStateVersion,
} from "./valueEncoding.ts";

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

/**
 * The `tenant_read.lua` call for a plan: take the lease (when given) and read the tenant's hash
 * and the window buffers of the plan's pairs. It declares every key it may touch: the lease (when
 * given), the state hash, the window buffer of each window pair, and the cooldown key of each pair
 * whose rule has a cooldown (read only for an earlier release's cooldown). `slice`: the plan is a
 * slice of a larger one, read in several calls: the script reads the hash fields of its pairs only,
 * not the whole hash.
 *
 * @throws RangeError when the lease is for another tenant than the plan
 */
export function buildReadCall(plan: TenantPlan, lease?: TickLease, slice = false): ScriptCall {
  const tenantId = plan.tenantId;
  if (lease && lease.tenantId !== tenantId)
    throw new RangeError(`lease of tenant ${lease.tenantId} used for tenant ${tenantId}`);
  const keys = lease ? [tickLeaseKey(tenantId, lease.slot)] : [];
  keys.push(tenantStateKey(tenantId));
  const buffers: string[] = [];
  const cooldowns: string[] = [];
  const parts = plan.pairs.map((p) => pairPart(p.rule.id, p.deviceId));
  plan.pairs.forEach((pair, i) => {
    if (pair.window) buffers.push(parts[i]!);
    if (pair.rule.cooldownSeconds > 0) cooldowns.push(parts[i]!);
  });
  for (const part of buffers) keys.push(windowBufferKeyOf(tenantId, part));
  for (const part of cooldowns) keys.push(cooldownKeyOf(tenantId, part));
  const request: Record<string, unknown> = { buffers, cooldowns };
  if (slice) request["pairs"] = parts;
  if (lease) request["lease"] = [lease.token, String(lease.ttlMs)];
  return { keys, args: [JSON.stringify(request)] };
}

/**
 * Outcome of a read: the tenant's state and the `seq` field it was read with (`"0"` when absent;
 * `partial`: a write in several calls was under way, the state is no version's), or the lease was
 * held by someone else.
 */
export type ReadResult =
  | {
      readonly acquired: true;
      readonly snapshot: TenantSnapshot;
      readonly stored: string;
      readonly partial: boolean;
    }
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
 * this process's wall clock when the reply arrived: the cooldown of an earlier release, stored as
 * `"1"` without its end, ends its key's time left after it. Fields of pairs outside the plan (a
 * deleted rule or device) are skipped; unreadable values count as absent.
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
  const stored = asString(reply[1], "read: seq") ?? "0";
  const version = parseStoredVersion(stored);
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
  return { acquired: true, snapshot, stored, partial: version.partial };
}

/** A `tenant_write.lua` request, apart from its keys. */
export interface WriteRequest {
  /**
   * `delta`: the writes were computed from the state of seq `expect` (applied only on that state);
   * `full`: they are the whole state (applied only over an older one).
   */
  readonly mode: "delta" | "full";
  /** Delta: the version (`stateVersion`) of the state the writes were computed from. */
  readonly expect: string;
  /** The seq of the committed evaluation whose state this is … */
  readonly seq: number;
  /** … and its version (`stateVersion`), stored in the hash field `seq`. */
  readonly version: string;
  readonly statePx: number;
  readonly ops: WriteOps;
  /** Values, referred to by `b` and `f` ops as ARGV indexes (2, 3, …). */
  readonly values: readonly string[];
  /** One call of a write in several ({@link splitWriteRequest}); absent: the whole write. */
  readonly chunk?: WriteChunk;
}

/** Where one call stands in a write made in several calls (see `tenant_write.lua`). */
export interface WriteChunk {
  /** The `seq` field until the last call: `partialStateVersion(version)`. */
  readonly marker: string;
  /** Checks the fence (and, `full`, replaces the hash). */
  readonly first: boolean;
  /** Stores the version. */
  readonly last: boolean;
}

/**
 * Splits a write into calls of at most `maxOps` ops each (values renumbered per call), so that no
 * call holds the server for longer than `maxOps` ops take. A write of at most `maxOps` ops stays
 * one call (no marker, as before). The calls must be made in order; each one applies only while
 * the previous ones' marker is in place (`tenant_write.lua`).
 */
export function splitWriteRequest(request: WriteRequest, maxOps: number): WriteRequest[] {
  const total = request.ops.length / 4;
  if (total <= maxOps) return [request];
  const marker = partialStateVersion(request.version);
  const out: WriteRequest[] = [];
  for (let from = 0; from < total; from += maxOps) {
    const to = Math.min(total, from + maxOps);
    const ops: WriteOps = [];
    const values: string[] = [];
    for (let k = 4 * from; k < 4 * to; k += 4) {
      const kind = request.ops[k]!;
      let ref = request.ops[k + 2]!;
      // `b` and `f` name their value by ARGV index (ARGV[2] is values[0]); `c` carries a px there.
      if (kind !== "c" && typeof ref === "number") {
        values.push(request.values[ref - 2]!);
        ref = values.length + 1;
      }
      ops.push(kind, request.ops[k + 1]!, ref, request.ops[k + 3]!);
    }
    out.push({ ...request, ops, values, chunk: { marker, first: from === 0, last: to === total } });
  }
  return out;
}

/**
 * The `tenant_write.lua` call. It declares every key it writes: the tenant's state hash, then the
 * window buffer of each `b` op and the cooldown key of each `c` op, in the order of the ops. Stored
 * values travel as their own ARGV entries (an op names its ARGV index), so the script decodes only
 * the small JSON request.
 */
export function buildWriteCall(tenantId: string, request: WriteRequest): ScriptCall {
  const keys = [tenantStateKey(tenantId)];
  const ops = request.ops;
  for (let k = 0; k < ops.length; k += 4) {
    const kind = ops[k];
    if (kind === "b") keys.push(windowBufferKeyOf(tenantId, String(ops[k + 1])));
    else if (kind === "c") keys.push(cooldownKeyOf(tenantId, String(ops[k + 1])));
  }
  const header = {
    mode: request.mode,
    expect: request.expect,
    seq: String(request.seq),
    version: request.version,
    statePx: String(request.statePx),
    ops: request.ops,
    ...(request.chunk ?? {}),
  };
  return { keys, args: [JSON.stringify(header), ...request.values] };
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
      return { kind: "stale", stored: stored === null ? null : (parseStoredVersion(stored)?.seq ?? null) };
    }
  }
  throw new ValkeyStateProtocolError("write: unexpected reply");
}
