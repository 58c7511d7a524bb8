import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import type { TenantPlan, TenantState } from "../rules/planTenant.ts";
import {
  advanceTick,
  applyCommit,
  buildReadCall,
  buildWriteCall,
  commitOps,
  covers,
  parseReadReply,
  parseWriteReply,
  type ScriptCall,
  type TenantSnapshot,
  type TickLease,
  tenantStatePx,
  ValkeyStateProtocolError,
  type WriteRequest,
  type WriteResult,
} from "./codec.ts";
import { tickLeaseKey } from "./keys.ts";
import { STATE_RETENTION_MS } from "./retention.ts";

/**
 * Script name → command name. The version suffix is bumped whenever a script's KEYS/ARGV/reply
 * contract changes, so evaluators of two releases sharing one Valkey never call each other's
 * script by the same name.
 */
export const SCRIPT_COMMANDS = {
  tenant_read: "eoTenantReadV4",
  tenant_write: "eoTenantWriteV4",
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

/** Outcome of a tenant load: its state, or the lease was held by someone else. */
export type TenantLoad =
  | { readonly acquired: true; readonly state: TenantState }
  | { readonly acquired: false; readonly holder: string | null };

/** Raised when a tenant's state changed under every one of a load's read-then-write attempts. */
export class ValkeyStateContendedError extends Error {
  override readonly name = "ValkeyStateContendedError";
}

/** Options of {@link ValkeyState}. */
export interface ValkeyStateOptions {
  /**
   * Keep each tenant's state between ticks (default true), so a steady tick is one write-only
   * call. Off: every load reads first (two calls).
   */
  readonly keepState?: boolean;
  /** Wall clock, ms (cooldown end times); default `Date.now`. */
  readonly wallClock?: () => number;
}

/** How many read-then-write attempts a load makes while other writers change the tenant's state. */
const READ_ATTEMPTS = 3;

/** Outcome of `commitTenantState`. */
export type CommitResult =
  /** Written (`written` = number of updates; 0 when there was nothing to write and no call was made). */
  | { readonly applied: true; readonly written: number }
  /**
   * Nothing written: the lease is held by another token (`lease`), or a newer evaluation wrote the
   * tenant's state since this process loaded it (`stale`).
   */
  | { readonly applied: false; readonly reason: "lease" | "stale"; readonly holder: string | null };

/** Outcome of `acquireTickLease`. */
export type LeaseResult =
  | { readonly acquired: true }
  | { readonly acquired: false; readonly holder: string | null };

/** Outcome of `releaseTickLease`: released, refused (another holder), or there was no lease. */
export type ReleaseResult = "released" | "not-holder" | "absent";

/** Options of `loadTenantState` and `commitTenantState`. */
export interface LeaseOption {
  /** Load: take this tick lease first, in the same call. Commit: write only while still holding it. */
  readonly lease?: TickLease;
}

/**
 * The one typed gateway to the evaluator's Valkey state. It registers the Lua scripts on the given
 * client with `defineCommand` (under versioned names, sent as EVALSHA with an automatic EVAL
 * fallback) and exposes one method per atomic operation. Every call touches the keys of one tenant
 * only (one hash slot), so it works unchanged on Valkey Cluster.
 *
 * It keeps, per tenant, the state it last read or wrote, with the generation stamp that state had
 * in Valkey (`tstate:{tenant}` field `gen`). A tick then advances the kept state itself and sends
 * only the writes, in ONE `tenant_write` call that takes the tick lease and applies them if the
 * stored stamp is still the kept one. Any other writer (another evaluator, a restart, a flush)
 * changes or removes the stamp, and the next load reads the tenant afresh (`tenant_read`, one more
 * call) — so Valkey stays the source of truth and a restart loses nothing. A failed or refused
 * call drops the kept state of that tenant.
 *
 * Failure policy is the caller's: every method rejects with the ioredis error when Valkey is
 * unreachable or times out (per the client's `maxRetriesPerRequest`/`commandTimeout`) or when a
 * script fails (`ReplyError`), and with {@link ValkeyStateProtocolError} when a reply does not have
 * the documented shape. None of them retries on its own. Typical policy (DESIGN §5): on a failed
 * load the owning shard evaluates with `emptyTenantState()` (windows fail open, cooldowns fall back
 * to the Postgres dedup) and does not commit; a failed lease fails closed for shards that do not
 * own the tenant.
 */
export class ValkeyState {
  readonly #commands: Readonly<Record<ScriptName, ScriptCommand>>;
  readonly #kept = new Map<string, TenantSnapshot>();
  readonly #keepState: boolean;
  readonly #wallClock: () => number;
  readonly #stampPrefix = randomBytes(9).toString("base64url");
  #stamps = 0;
  #calls = 0;

  /** @param client an ioredis client without `keyPrefix` (keys come from `keys.ts` as they are) */
  constructor(client: Redis, options: ValkeyStateOptions = {}) {
    if (client.options.keyPrefix) {
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

  #run(name: ScriptName, call: ScriptCall): Promise<unknown> {
    this.#calls++;
    return this.#commands[name](call.keys.length, ...call.keys, ...call.args);
  }

  async #write(tenantId: string, request: WriteRequest): Promise<WriteResult> {
    return parseWriteReply(await this.#run("tenant_write", buildWriteCall(tenantId, request)));
  }

  #stamp(): string {
    this.#stamps++;
    return `${this.#stampPrefix}.${this.#stamps.toString(36)}`;
  }

  /**
   * The tick's state step for one tenant: optionally takes the tick lease, appends this tick's
   * readings to every window buffer (a reading already stored is not stored twice) and trims them
   * to their window at `plan.now`, refreshes TTLs, advances last-seen timestamps, and returns every
   * pair's buffer, cooldown, anomaly statistics and lifecycle state. ONE round trip when this
   * process's kept state of the tenant is current, else two (read, then write). A plan without
   * pairs and without a lease makes no call.
   *
   * @returns `{ acquired: false, holder }` when the lease is held by another token — then nothing
   *   was written
   * @throws the ioredis error on connection loss, timeout or script failure;
   *   {@link ValkeyStateProtocolError} on an unexpected reply; {@link ValkeyStateContendedError}
   *   when other writers changed the tenant's state under every attempt (no lease)
   */
  async loadTenantState(plan: TenantPlan, options: LeaseOption = {}): Promise<TenantLoad> {
    const tenantId = plan.tenantId;
    const lease = options.lease;
    if (plan.pairs.length === 0 && !lease) return { acquired: true, state: { pairs: new Map() } };
    const kept = this.#kept.get(tenantId);
    // Kept again only when a write succeeds below.
    this.#kept.delete(tenantId);
    if (kept && this.#keepState && covers(kept, plan)) {
      const load = await this.#advance(kept, plan, { lease });
      // null: someone else wrote the tenant's state; read it afresh.
      if (load !== null) return load;
    }
    for (let attempt = 1; ; attempt++) {
      const read = parseReadReply(
        plan,
        await this.#run("tenant_read", buildReadCall(plan, lease)),
        this.#wallClock(),
      );
      if (!read.acquired) return read;
      const load = await this.#advance(read.snapshot, plan, { hold: lease });
      if (load !== null) return load;
      if (attempt >= READ_ATTEMPTS)
        throw new ValkeyStateContendedError(
          `the state of tenant ${tenantId} changed under ${READ_ATTEMPTS} read-then-write attempts`,
        );
    }
  }

  /**
   * Advances `snapshot` by the plan's tick and writes the result, fenced by the snapshot's stamp
   * and by the lease (taken, or held since a read took it). Keeps the snapshot when the write was
   * applied (also without keepState: the commit fences with the stamp this load left); `null` when
   * the stored stamp was another.
   */
  async #advance(
    snapshot: TenantSnapshot,
    plan: TenantPlan,
    fence: Pick<WriteRequest, "lease" | "hold">,
  ): Promise<TenantLoad | null> {
    const step = advanceTick(snapshot, plan, this.#wallClock());
    const stamp = this.#stamp();
    const expect = snapshot.gen;
    const statePx = tenantStatePx(plan);
    const result = await this.#write(plan.tenantId, {
      ...fence,
      expect,
      force: false,
      stamp,
      statePx,
      ...step,
    });
    if (result.kind === "held") return { acquired: false, holder: result.holder };
    if (result.kind === "stale") return null;
    snapshot.gen = step.ops.length > 0 ? stamp : expect;
    this.#kept.set(plan.tenantId, snapshot);
    return { acquired: true, state: step.state };
  }

  /**
   * At most ONE round trip: writes the evaluation's state updates (cooldowns with PX, anomaly
   * statistics, lifecycle states) atomically. With `lease`, writes only if that lease is still held
   * by its token, and only if the state is still the one this process's load left (the stamp), so
   * an evaluator that overran its slot cannot overwrite what a newer evaluation of the tenant wrote
   * meanwhile: its updates are dropped (`stale`); the next tick derives them again from the newer
   * state, and the PostgreSQL dedup absorbs a repeated fire. Without a load to fence with (its
   * state was forgotten), the updates are written whatever the stamp. No updates → no call.
   *
   * @throws the ioredis error on connection loss, timeout or script failure;
   *   {@link ValkeyStateProtocolError} on an unexpected reply
   */
  async commitTenantState(
    tenantId: string,
    updates: readonly StateUpdate[],
    options: LeaseOption = {},
  ): Promise<CommitResult> {
    if (updates.length === 0) return { applied: true, written: 0 };
    const kept = this.#kept.get(tenantId);
    this.#kept.delete(tenantId);
    const stamp = this.#stamp();
    const result = await this.#write(tenantId, {
      hold: options.lease,
      expect: kept?.gen ?? "",
      force: kept === undefined,
      stamp,
      statePx: STATE_RETENTION_MS,
      ...commitOps(updates),
    });
    if (result.kind === "held") return { applied: false, reason: "lease", holder: result.holder };
    if (result.kind === "stale") return { applied: false, reason: "stale", holder: null };
    if (kept && result.matched) {
      applyCommit(kept, updates, this.#wallClock());
      kept.gen = stamp;
      this.#kept.set(tenantId, kept);
    }
    return { applied: true, written: updates.length };
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
