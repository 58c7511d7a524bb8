/**
 * How each value of a tenant's Valkey state is stored, and read back: window buffers (`ts:value`
 * members joined by `,`, oldest first, later timestamps as deltas `+d:value`), firing lifecycle
 * states (JSON), anomaly statistics (`n,mean,variance,lastTs`) and state versions (`seq:at`). Pure.
 * Numbers are written with JS `String(number)`, which round-trips exactly, so the Lua scripts never
 * re-format one. A decoder reads what it cannot parse as "nothing stored" instead of failing the
 * tenant. Where each value is kept is `keys.ts`.
 */
import type { AnomalyStats } from "../rules/anomaly.ts";
import { type AlertState, INACTIVE } from "../rules/lifecycle.ts";
import { SEVERITIES, type Severity, type WindowEntry } from "../rules/types.ts";

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
  // Joined, not appended with `+=`: a string grown piece by piece is a rope (one node per piece, each
  // piece a string of its own, about six times the bytes), and a tenant's state keeps this one.
  const members: string[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    members[i] = i === 0 ? encodeMember(e.ts, e.value) : storedMember(entries[i - 1]!, e);
  }
  return members.join(",");
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

/** A window buffer as known: entries oldest first, and their stored form. */
export interface KnownBuffer {
  entries: readonly WindowEntry[];
  stored: string;
}

/**
 * A window buffer as a tenant's state keeps it between ticks: its entries packed into one array of
 * numbers `[ts, value, ts, value, ...]`, which V8 stores unboxed (8 bytes a number), instead of one
 * object and one or two boxed numbers per entry (about 70 bytes an entry, and three objects for the
 * garbage collector to mark at every full collection). `entries` builds the entry objects again
 * when read (once per pair and tick: young garbage that dies with the tick) and packs what is
 * assigned to it. It is an own enumerable property, like `stored`, so a packed buffer copies
 * (`structuredClone`) and compares (deep equality) as the plain `{ entries, stored }` it stands for.
 */
export class PackedBuffer implements KnownBuffer {
  static readonly #entries: PropertyDescriptor = {
    enumerable: true,
    get(this: PackedBuffer): WindowEntry[] {
      const p = this.#packed;
      const out: WindowEntry[] = new Array(p.length / 2);
      for (let i = 0; i < p.length; i += 2) out[i / 2] = { ts: p[i]!, value: p[i + 1]! };
      return out;
    },
    set(this: PackedBuffer, entries: readonly WindowEntry[]): void {
      this.#packed = pack(entries);
    },
  };
  #packed: number[];
  declare entries: readonly WindowEntry[];
  stored: string;

  constructor(entries: readonly WindowEntry[], stored: string) {
    this.#packed = pack(entries);
    // One shared accessor: every packed buffer keeps the same hidden class.
    Object.defineProperty(this, "entries", PackedBuffer.#entries);
    this.stored = stored;
  }

  /** The number of entries (without building them). */
  get length(): number {
    return this.#packed.length / 2;
  }
}

function pack(entries: readonly WindowEntry[]): number[] {
  // Sized once: an array grown by push keeps spare capacity (about twice the numbers it holds).
  const out: number[] = new Array(entries.length * 2);
  for (let i = 0; i < entries.length; i++) {
    out[2 * i] = entries[i]!.ts;
    out[2 * i + 1] = entries[i]!.value;
  }
  return out;
}

/** The number of entries of a known buffer (without building a packed buffer's entry objects). */
export function bufferLength(buffer: KnownBuffer): number {
  return buffer instanceof PackedBuffer ? buffer.length : buffer.entries.length;
}

/**
 * The stored form of `next` ({@link encodeBuffer}), derived from the previous one when `next` only
 * dropped a prefix of `prev` and appended entries (the usual step), so a tick does not re-encode
 * whole buffers: the kept part is sliced out of the previous form, its first member made absolute.
 */
export function encodeBufferFrom(prev: KnownBuffer | undefined, next: readonly WindowEntry[]): string {
  if (prev === undefined) return encodeBuffer(next);
  return encodeBufferAfter(prev.entries, prev.stored, next);
}

/**
 * {@link encodeBufferFrom} with the previous buffer's entries and stored form given apart: the kept
 * entries of `next` are recognised by identity with those of `old` (what `appendToWindow` keeps).
 */
export function encodeBufferAfter(
  old: readonly WindowEntry[],
  oldStored: string,
  next: readonly WindowEntry[],
): string {
  if (next.length === 0) return encodeBuffer(next);
  const k = old.indexOf(next[0]!);
  if (k < 0) return encodeBuffer(next);
  const kept = old.length - k;
  if (kept > next.length) return encodeBuffer(next);
  for (let i = 1; i < kept; i++) if (next[i] !== old[k + i]) return encodeBuffer(next);
  if (kept === next.length && k === 0) return oldStored;
  // One flat string (joined, see encodeBuffer): the previous form's kept members, then the new ones.
  const members: string[] = [];
  if (k === 0) {
    members.push(oldStored);
  } else {
    // Skip k + 1 members: the first kept one is re-encoded as absolute.
    let start = 0;
    for (let i = 0; i <= k; i++) start = oldStored.indexOf(",", start) + 1;
    members.push(encodeMember(next[0]!.ts, next[0]!.value));
    if (kept > 1) members.push(oldStored.slice(start));
  }
  for (let i = kept; i < next.length; i++) members.push(storedMember(next[i - 1]!, next[i]!));
  return members.join(",");
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

const PARTIAL = ":partial";

/**
 * What the hash field `seq` holds while the state of version `version` is written in several
 * calls (see `tenant_write.lua`): never a version, so no read uses a half-written state. It starts
 * with the seq, as the script's "full" check reads it.
 */
export function partialStateVersion(version: string): string {
  return `${version}${PARTIAL}`;
}

/**
 * The seq and tick time of a stored `seq` field: a version, or a {@link partialStateVersion}
 * (`partial: true`); `null` for anything else.
 */
export function parseStoredVersion(raw: string): { seq: number; at: number | null; partial: boolean } | null {
  const partial = raw.endsWith(PARTIAL);
  const version = parseStateVersion(partial ? raw.slice(0, -PARTIAL.length) : raw);
  return version && { ...version, partial };
}
