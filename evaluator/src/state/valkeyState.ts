import { readFileSync } from "node:fs";
import type { Cluster, Redis } from "ioredis";
import type { TenantPlan } from "../rules/planTenant.ts";
import { tickLeaseKey } from "./keys.ts";
import { tenantStatePx } from "./retention.ts";
import {
  buildReadCall,
  buildWriteCall,
  parseReadReply,
  parseWriteReply,
  type ReadResult,
  type ScriptCall,
  splitWriteRequest,
  type TickLease,
  ValkeyStateProtocolError,
  type WriteRequest,
  type WriteResult,
} from "./scriptProtocol.ts";
import { covers, fullStateWrites, type TenantSnapshot, type Writes } from "./tenantSnapshot.ts";
import { stateVersion } from "./valueEncoding.ts";

/**
 * Script name → command name. The version suffix is bumped whenever a script's KEYS/ARGV/reply
 * contract changes, so evaluators of two releases sharing one Valkey never call each other's
 * script by the same name.
 */
export const SCRIPT_COMMANDS = {
  tenant_read: "eoTenantReadV7",
  tenant_write: "eoTenantWriteV7",
  tick_lease: "eoTickLeaseV1",
  tick_release: "eoTickReleaseV1",
} as const;

type ScriptName = keyof typeof SCRIPT_COMMANDS;

/** The shape ioredis gives a command defined without a fixed key count: (numKeys, ...keys, ...args). */
type ScriptCommand = (numKeys: number, ...keysAndArgs: string[]) => Promise<unknown>;

/** The Lua source of a script, read next to this module. */
export function readScript(name: ScriptName): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
}

/**
 * Outcome of a tenant load for an evaluation at the fence's `seq`:
 * - `state`: the state that evaluation `seq` left, from this process's copy (`kept`, no call) or
 *   from Valkey (`valkey`);
 * - `stale`: Valkey holds no state of that seq (flushed, failed over, or the commit that should
 *   have written it failed): rebuild it from PostgreSQL;
 * - `held`: the lease was asked for and another evaluator holds it.
 */
export type TenantLoad =
  | { readonly kind: "state"; readonly snapshot: TenantSnapshot; readonly source: "kept" | "valkey" }
  | { readonly kind: "stale"; readonly stored: number }
  | { readonly kind: "held"; readonly holder: string | null };

/** Options of {@link ValkeyState}. */
export interface ValkeyStateOptions {
  /**
   * Keep each tenant's state between ticks (default true), so a steady tick makes no call before
   * its evaluation. Off: every load reads.
   */
  readonly keepState?: boolean;
  /** Wall clock, ms (cooldown end times); default `Date.now`. */
  readonly wallClock?: () => number;
  /**
   * The most (rule, device) pairs one `tenant_read` call reads, and the most ops one
   * `tenant_write` call applies (default {@link STATE_CALL_MAX_PAIRS}); a larger tenant takes
   * several calls.
   */
  readonly maxPairsPerCall?: number;
}

/**
 * Default bound of one state call: 5,000 pairs read, or 5,000 ops written. A script blocks the
 * whole server (every shard's calls) while it runs; on the development machine (Redis 7.0) a call
 * of 5,000 pairs takes about 9 ms of script time, against about 60 ms for 50,000 pairs (the
 * default tenant pair limit, `TENANT_MAX_PAIRS`), which is thus read in at most 10 calls; its
 * writes take one call per 5,000 ops, and a pair has up to four (a buffer, its lifecycle,
 * statistics or last-seen field, a cooldown). A tenant the size of the benchmark's (400 pairs)
 * keeps one call each way; the product's largest (2,000 sensors × 2 rules) reads in one call, and
 * writes in one unless a write has more than 5,000 ops.
 */
export const STATE_CALL_MAX_PAIRS = 5_000;

/** A committed evaluation's name in the fence: its seq and tick time (`null` for seq 0). */
export interface FenceVersion {
  readonly seq: number;
  readonly evalMs: number | null;
}

function isVersion(snapshot: TenantSnapshot, fence: FenceVersion): boolean {
  return snapshot.seq === fence.seq && (fence.seq === 0 || snapshot.at === fence.evalMs);
}

/** Writes computed from the state of evaluation `from` (what a `delta` store applies on). */
export interface StateDelta {
  readonly from: { readonly seq: number; readonly at: number | null };
  readonly writes: Writes;
}

/** Outcome of `storeTenantState`. */
export type StoreResult =
  /** Stored (`full`: the whole state was written, not a delta). */
  | { readonly stored: true; readonly full: boolean }
  /** Valkey already holds the state of a newer evaluation (`stored`): nothing written. */
  | { readonly stored: false; readonly newer: number | null };

/** Outcome of `acquireTickLease`. */
export type LeaseResult =
  | { readonly acquired: true }
  | { readonly acquired: false; readonly holder: string | null };

/** Outcome of `releaseTickLease`: released, refused (another holder), or there was no lease. */
export type ReleaseResult = "released" | "not-holder" | "absent";

/** Options of `loadTenantState`. */
export interface LeaseOption {
  /** Take this tick lease first (in the same call when the state is read). */
  readonly lease?: TickLease;
}

/**
 * The one typed gateway to the evaluator's Valkey state. It registers the Lua scripts on the given
 * client with `defineCommand` (under versioned names, sent as EVALSHA with an automatic EVAL
 * fallback) and exposes one method per atomic operation. Every call touches the keys of one tenant
 * only (one hash slot).
 *
 * Valkey is a cache of PostgreSQL, where the tenant's evaluation fence lives (`tenant_fences`):
 * the stored state carries the fence seq of the committed evaluation that wrote it (hash field
 * `seq`), and it is written only after that commit (`storeTenantState`). A load for an evaluation
 * at fence seq k uses the state of seq k only — this process's copy of what it stored itself
 * (no call), or Valkey's — and answers `stale` otherwise, so the caller rebuilds from PostgreSQL
 * (a flush, a failover, a commit whose Valkey write failed). A state is never advanced twice, and
 * the state of a stale evaluation is never stored.
 *
 * Failure policy is the caller's: every method rejects with the ioredis error when Valkey is
 * unreachable or times out (per the client's `maxRetriesPerRequest`/`commandTimeout`) or when a
 * script fails (`ReplyError`), and with {@link ValkeyStateProtocolError} when a reply does not have
 * the documented shape. None of them retries on its own.
 */
export class ValkeyState {
  readonly #commands: Readonly<Record<ScriptName, ScriptCommand>>;
  readonly #kept = new Map<string, TenantSnapshot>();
  readonly #keepState: boolean;
  readonly #wallClock: () => number;
  readonly #maxPairsPerCall: number;
  #calls = 0;

  /**
   * @param client an ioredis client (one server, or a Cluster, which routes each call by its keys'
   *   slot) without `keyPrefix` (keys come from `keys.ts` as they are)
   */
  constructor(client: Redis | Cluster, options: ValkeyStateOptions = {}) {
    const keyPrefix = "redisOptions" in client.options ? client.options.redisOptions?.keyPrefix : undefined;
    if (client.options.keyPrefix || keyPrefix) {
      throw new RangeError("ValkeyState needs a client without keyPrefix: keys are built by keys.ts");
    }
    const commands = {} as Record<ScriptName, ScriptCommand>;
    for (const [name, command] of Object.entries(SCRIPT_COMMANDS) as [ScriptName, string][]) {
      client.defineCommand(command, { lua: readScript(name) });
      const fn = (client as unknown as Record<string, ScriptCommand>)[command];
      if (typeof fn !== "function") throw new Error(`defineCommand did not register ${command}`);
      commands[name] = fn.bind(client);
    }
    this.#commands = commands;
    this.#keepState = options.keepState ?? true;
    this.#wallClock = options.wallClock ?? Date.now;
    this.#maxPairsPerCall = options.maxPairsPerCall ?? STATE_CALL_MAX_PAIRS;
    if (!Number.isSafeInteger(this.#maxPairsPerCall) || this.#maxPairsPerCall < 1) {
      throw new RangeError(`maxPairsPerCall must be a positive integer: ${this.#maxPairsPerCall}`);
    }
  }

  /** Script calls (round trips) made so far. */
  get calls(): number {
    return this.#calls;
  }

  /** Tenants whose state is kept. */
  get keptTenants(): number {
    return this.#kept.size;
  }

  /** Forgets the kept state of every tenant not in `tenantIds` (tenants that left this shard). */
  retainTenants(tenantIds: ReadonlySet<string>): void {
    for (const id of this.#kept.keys()) if (!tenantIds.has(id)) this.#kept.delete(id);
  }

  /** Forgets the kept state of one tenant (its evaluation was not committed). */
  forget(tenantId: string): void {
    this.#kept.delete(tenantId);
  }

  #run(name: ScriptName, call: ScriptCall): Promise<unknown> {
    this.#calls++;
    return this.#commands[name](call.keys.length, ...call.keys, ...call.args);
  }

  /**
   * The state to evaluate `plan` with, for an evaluation after the fence's evaluation `fence`: this
   * process's copy when it is that evaluation's and covers every pair of the plan (no call, or one
   * `tick_lease` call when a lease is asked for), else ONE `tenant_read` call (taking the lease in
   * it) — or, for a plan of more than `maxPairsPerCall` pairs, one per slice of that many, the
   * first taking the lease; a state that changed between them (another `seq` seen) is `stale`.
   * The returned
   * snapshot is the caller's until it stores it back with {@link storeTenantState} or drops it
   * ({@link forget}); the copy is not kept meanwhile.
   *
   * @throws the ioredis error on connection loss, timeout or script failure;
   *   {@link ValkeyStateProtocolError} on an unexpected reply
   */
  async loadTenantState(
    plan: TenantPlan,
    fence: FenceVersion,
    options: LeaseOption = {},
  ): Promise<TenantLoad> {
    const tenantId = plan.tenantId;
    const lease = options.lease;
    const kept = this.#kept.get(tenantId);
    this.#kept.delete(tenantId);
    if (kept && this.#keepState && isVersion(kept, fence) && covers(kept, plan)) {
      if (lease) {
        const taken = await this.acquireTickLease(lease);
        if (!taken.acquired) {
          this.#kept.set(tenantId, kept);
          return { kind: "held", holder: taken.holder };
        }
      }
      return { kind: "state", snapshot: kept, source: "kept" };
    }
    const read = await this.#read(plan, lease);
    if (!read.acquired) return { kind: "held", holder: read.holder };
    if (read.partial || !isVersion(read.snapshot, fence)) return { kind: "stale", stored: read.snapshot.seq };
    return { kind: "state", snapshot: read.snapshot, source: "valkey" };
  }

  /**
   * Stores the state a COMMITTED evaluation left (`snapshot`, already advanced, with `snapshot.seq`
   * and `snapshot.at` the fence's seq and tick time after that commit), in ONE call: the `delta`
   * writes when given (computed from the state of evaluation `delta.from`, applied only on that
   * state), else — or when Valkey does not hold that state (flushed, or an earlier store failed) —
   * the whole state in `full` mode (a second call in that case), never over a newer evaluation's
   * state. The snapshot is kept for
   * the next tick when stored.
   *
   * @throws the ioredis error on connection loss, timeout or script failure;
   *   {@link ValkeyStateProtocolError} on an unexpected reply
   */
  async storeTenantState(
    plan: TenantPlan,
    snapshot: TenantSnapshot,
    delta: StateDelta | null,
  ): Promise<StoreResult> {
    const tenantId = plan.tenantId;
    this.#kept.delete(tenantId);
    const statePx = tenantStatePx(plan);
    const { seq } = snapshot;
    const version = stateVersion(seq, snapshot.at);
    if (delta !== null) {
      const expect = stateVersion(delta.from.seq, delta.from.at);
      const result = await this.#write(tenantId, {
        mode: "delta",
        expect,
        seq,
        version,
        statePx,
        ...delta.writes,
      });
      if (result.kind === "applied") return this.#keep(tenantId, snapshot, false);
      if (result.stored !== null && result.stored >= seq) return { stored: false, newer: result.stored };
    }
    const full = fullStateWrites(snapshot, plan, snapshot.at ?? this.#wallClock());
    const result = await this.#write(tenantId, { mode: "full", expect: "", seq, version, statePx, ...full });
    if (result.kind === "applied") return this.#keep(tenantId, snapshot, true);
    return { stored: false, newer: result.stored };
  }

  /** One `tenant_read`, or one per slice of `maxPairsPerCall` pairs, merged. */
  async #read(plan: TenantPlan, lease: TickLease | undefined): Promise<ReadResult> {
    const size = this.#maxPairsPerCall;
    if (plan.pairs.length <= size) {
      return parseReadReply(
        plan,
        await this.#run("tenant_read", buildReadCall(plan, lease)),
        this.#wallClock(),
      );
    }
    let first: (ReadResult & { acquired: true }) | undefined;
    let partial = false;
    for (let from = 0; from < plan.pairs.length; from += size) {
      const slice: TenantPlan = { ...plan, pairs: plan.pairs.slice(from, from + size) };
      const call = buildReadCall(slice, from === 0 ? lease : undefined, true);
      const read = parseReadReply(slice, await this.#run("tenant_read", call), this.#wallClock());
      if (!read.acquired) return read;
      if (first === undefined) {
        first = read;
      } else {
        mergeSnapshot(first.snapshot, read.snapshot);
        // A write between two calls: the slices are not of one state.
        if (read.stored !== first.stored) partial = true;
      }
      partial ||= read.partial;
    }
    if (first === undefined) throw new Error("unreachable: a plan larger than a slice has a slice");
    return { ...first, partial };
  }

  #keep(tenantId: string, snapshot: TenantSnapshot, full: boolean): StoreResult {
    if (this.#keepState) this.#kept.set(tenantId, snapshot);
    return { stored: true, full };
  }

  /**
   * One `tenant_write`, or — more than `maxPairsPerCall` ops — one per chunk of that many, in
   * order (see `tenant_write.lua`): the first one refused ends the write.
   */
  async #write(tenantId: string, request: WriteRequest): Promise<WriteResult> {
    let result: WriteResult = { kind: "applied" };
    for (const chunk of splitWriteRequest(request, this.#maxPairsPerCall)) {
      result = parseWriteReply(await this.#run("tenant_write", buildWriteCall(tenantId, chunk)));
      if (result.kind !== "applied") return result;
    }
    return result;
  }

  /**
   * Takes the tick lease `tick:{tenant}:slot` (SET NX PX). Idempotent for the same token.
   * @throws the ioredis error on connection loss or timeout; {@link ValkeyStateProtocolError}
   */
  async acquireTickLease(lease: TickLease): Promise<LeaseResult> {
    const reply = await this.#run("tick_lease", {
      keys: [tickLeaseKey(lease.tenantId, lease.slot)],
      args: [lease.token, String(lease.ttlMs)],
    });
    if (Array.isArray(reply) && reply[0] === 1) return { acquired: true };
    if (Array.isArray(reply) && reply[0] === 0) {
      return { acquired: false, holder: typeof reply[1] === "string" ? reply[1] : null };
    }
    throw new ValkeyStateProtocolError("tick lease: unexpected reply");
  }

  /**
   * Gives a tick lease back — only when `lease.token` still holds it. Meant for a tenant that was
   * leased but not evaluated (shutdown, failure), so another shard may take the slot; an evaluated
   * slot keeps its lease until it expires, which is what prevents a second evaluation.
   * @throws the ioredis error on connection loss or timeout; {@link ValkeyStateProtocolError}
   */
  async releaseTickLease(lease: Pick<TickLease, "tenantId" | "slot" | "token">): Promise<ReleaseResult> {
    const reply = await this.#run("tick_release", {
      keys: [tickLeaseKey(lease.tenantId, lease.slot)],
      args: [lease.token],
    });
    if (reply === 1) return "released";
    if (reply === 0) return "not-holder";
    if (reply === -1) return "absent";
    throw new ValkeyStateProtocolError("tick release: unexpected reply");
  }
}

/** Adds the pairs of `from` (another slice of the same plan) to `into`. */
function mergeSnapshot(into: TenantSnapshot, from: TenantSnapshot): void {
  for (const key of from.covered) into.covered.add(key);
  for (const [k, v] of from.buffers) into.buffers.set(k, v);
  for (const [k, v] of from.alerts) into.alerts.set(k, v);
  for (const [k, v] of from.anomalies) into.anomalies.set(k, v);
  for (const [k, v] of from.seen) into.seen.set(k, v);
  for (const [k, v] of from.cooldownUntil) into.cooldownUntil.set(k, v);
}
