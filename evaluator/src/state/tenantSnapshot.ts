/**
 * The tick state step: what this process knows of one tenant's Valkey state
 * ({@link TenantSnapshot}), how a tick advances it ({@link advanceTick}) and a commit updates it
 * ({@link applyCommit}), and the writes that make Valkey follow, as `tenant_write.lua` ops
 * ({@link commitOps}; the whole state: {@link fullStateWrites}). Pure apart from updating the
 * snapshot in place, so it is unit-tested apart from Valkey. How values are stored is
 * `valueEncoding.ts`; the calls and replies that carry them are `scriptProtocol.ts`.
 */
import type { AnomalyStats } from "../rules/anomaly.ts";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import { type AlertState, INACTIVE } from "../rules/lifecycle.ts";
import {
  type PairPlan,
  type PairState,
  PlannedTenantState,
  type TenantPlan,
  type TenantState,
} from "../rules/planTenant.ts";
import type { WindowEntry } from "../rules/types.ts";
import { appendToWindow } from "../rules/window.ts";
import { pairField, pairPart } from "./keys.ts";
import { windowBufferTtlMs } from "./retention.ts";
import {
  bufferLength,
  encodeAlertState,
  encodeAnomalyStats,
  encodeBuffer,
  encodeBufferAfter,
  type KnownBuffer,
  PackedBuffer,
} from "./valueEncoding.ts";

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
  /** When each cooldown ends, on the tick clock (ms). */
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

/**
 * Flat write ops of `tenant_write.lua`, 4 items each (see the script): `b` sets or deletes a window
 * buffer, `f` a field of the state hash, `c` starts a cooldown.
 */
export type WriteOps = (string | number | false)[];

/**
 * Writes being gathered for one `tenant_write.lua` call: the ops, and the values they store, which
 * travel as ARGV entries of their own (an op names the ARGV index of its value) so the script's JSON
 * decoder never sees them.
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

/** What one tick's state step produced. */
export interface TickAdvance extends Writes {
  /** The state the rules evaluate, by plan pair key. */
  readonly state: TenantState;
}

/**
 * One tick's state step, pure apart from updating `snapshot` in place: every window pair of the
 * plan gets this tick's readings appended and is trimmed to its window at `plan.now`
 * ({@link appendToWindow}); every absent pair's last-seen time becomes the newest of the stored one
 * and its new readings (seeded with `plan.now` when there is neither); cooldowns that ended by the
 * tick time `now` are forgotten (and their `cd` field deleted). Returns the state every pair is
 * evaluated with, and the writes that make Valkey hold the same: a changed buffer is SET with its
 * TTL (2× the window, so an idle buffer expires), an emptied one deleted.
 */
export function advanceTick(snapshot: TenantSnapshot, plan: TenantPlan, now: number): TickAdvance {
  const writes: Writes = { ops: [], values: [] };
  const ops = writes.ops;
  const pairs: PairState[] = new Array(plan.pairs.length);
  // Cooldowns and firing states are few: most tenants have none, and their pairs look nothing up.
  const { cooldownUntil, alerts } = snapshot;
  for (let i = 0; i < plan.pairs.length; i++) {
    const pair = plan.pairs[i]!;
    const key = pair.key;
    let until = cooldownUntil.size === 0 ? undefined : cooldownUntil.get(key);
    if (until !== undefined && until <= now) {
      cooldownUntil.delete(key);
      ops.push("f", pairField(partOf(pair), "cd"), false, false);
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
          const stored = prev ? encodeBufferAfter(before, prev.stored, buffer) : encodeBuffer(buffer);
          if (prev instanceof PackedBuffer) {
            // Updated in place: one object less to allocate and promote per pair and tick.
            prev.entries = buffer;
            prev.stored = stored;
          } else {
            snapshot.buffers.set(key, new PackedBuffer(buffer, stored));
          }
          const px = String(windowBufferTtlMs(pair.window.windowMs));
          ops.push("b", partOf(pair), valueRef(writes, stored), px);
        }
      } else if (prev !== undefined && !(prev instanceof PackedBuffer)) {
        // As read from Valkey or rebuilt, unchanged: kept packed from now on.
        snapshot.buffers.set(key, new PackedBuffer(before, prev.stored));
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
        ops.push("f", pairField(partOf(pair), "seen"), valueRef(writes, next), false);
      }
      lastSeen = Number(next);
    }
    pairs[i] = {
      buffer,
      cooldownRemainingMs: until === undefined ? 0 : until - now,
      anomaly: pair.anomaly ? (snapshot.anomalies.get(key) ?? null) : null,
      lastSeen,
      alert: (alerts.size === 0 ? undefined : alerts.get(key)) ?? INACTIVE,
    };
  }
  return { state: new PlannedTenantState(plan, pairs), ...writes };
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
        ops.push("f", pairField(part, "anom"), valueRef(writes, encodeAnomalyStats(u.stats)), false);
        break;
      case "alert":
        // An inactive state is not stored: its absence means inactive.
        ops.push(
          "f",
          pairField(part, "cond"),
          u.state.active ? valueRef(writes, encodeAlertState(u.state)) : false,
          false,
        );
        break;
    }
  }
  return writes;
}

/** Applies committed updates to the snapshot; cooldowns end `ttlMs` after the tick time `now`. */
export function applyCommit(snapshot: TenantSnapshot, updates: readonly StateUpdate[], now: number): void {
  for (const u of updates) {
    const key = u.pairKey;
    switch (u.kind) {
      case "cooldown":
        snapshot.cooldownUntil.set(key, now + u.ttlMs);
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
      if (buffer && bufferLength(buffer) > 0) {
        const px = String(windowBufferTtlMs(pair.window.windowMs));
        ops.push("b", part, valueRef(writes, buffer.stored), px);
      } else {
        ops.push("b", part, false, false);
      }
    }
    const alert = snapshot.alerts.get(key);
    if (alert?.active)
      ops.push("f", pairField(part, "cond"), valueRef(writes, encodeAlertState(alert)), false);
    const stats = snapshot.anomalies.get(key);
    if (stats) ops.push("f", pairField(part, "anom"), valueRef(writes, encodeAnomalyStats(stats)), false);
    const seen = snapshot.seen.get(key);
    if (seen !== undefined) ops.push("f", pairField(part, "seen"), valueRef(writes, seen), false);
    const until = snapshot.cooldownUntil.get(key);
    if (until !== undefined && until > now)
      ops.push("c", part, String(Math.ceil(until - now)), String(until));
  }
  return writes;
}
