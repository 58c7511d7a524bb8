import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import type { TenantPlan } from "../rules/planTenant.ts";
import {
  buildCommitCall,
  buildTickCall,
  parseTickReply,
  type ScriptCall,
  type TenantLoad,
  type TickLease,
  ValkeyStateProtocolError,
} from "./codec.ts";
import { tickLeaseKey } from "./keys.ts";

/**
 * Script name → command name. The version suffix is bumped whenever a script's KEYS/ARGV/reply
 * contract changes, so evaluators of two releases sharing one Valkey never call each other's
 * script by the same name.
 */
export const SCRIPT_COMMANDS = {
  tenant_tick: "eoTenantTickV3",
  tenant_commit: "eoTenantCommitV3",
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

/** Outcome of `commitTenantState`. */
export type CommitResult =
  /** Written (`written` = number of updates; 0 when there was nothing to write and no call was made). */
  | { readonly applied: true; readonly written: number }
  /** Refused by the lease fence: nothing written. */
  | { readonly applied: false; readonly holder: string | null };

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

  /** @param client an ioredis client without `keyPrefix` (keys come from `keys.ts` as they are) */
  constructor(client: Redis) {
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
  }

  #run(name: ScriptName, call: ScriptCall): Promise<unknown> {
    return this.#commands[name](call.keys.length, ...call.keys, ...call.args);
  }

  /**
   * ONE round trip for the whole tenant, whatever its number of (rule, device) pairs: optionally
   * takes the tick lease, appends this tick's readings to every window buffer (idempotently) and
   * trims them to their window at `plan.now`, refreshes TTLs, advances last-seen timestamps, and
   * returns every pair's buffer, cooldown, anomaly statistics and lifecycle state.
   * A plan without pairs and without a lease makes no call.
   *
   * @returns `{ acquired: false, holder }` when the lease is held by another token — then nothing
   *   was read or written
   * @throws the ioredis error on connection loss, timeout or script failure;
   *   {@link ValkeyStateProtocolError} on an unexpected reply
   */
  async loadTenantState(plan: TenantPlan, options: LeaseOption = {}): Promise<TenantLoad> {
    if (plan.pairs.length === 0 && !options.lease) return { acquired: true, state: { pairs: new Map() } };
    const reply = await this.#run("tenant_tick", buildTickCall(plan, options.lease));
    return parseTickReply(plan, reply);
  }

  /**
   * At most ONE round trip: writes the evaluation's state updates (cooldowns with PX, anomaly
   * statistics, lifecycle states) atomically. With `lease`, writes only if that lease is still held
   * by its token, so an evaluator that overran its slot cannot overwrite a newer owner's state.
   * No updates → no call.
   *
   * @throws the ioredis error on connection loss, timeout or script failure;
   *   {@link ValkeyStateProtocolError} on an unexpected reply
   */
  async commitTenantState(
    tenantId: string,
    updates: readonly StateUpdate[],
    options: LeaseOption = {},
  ): Promise<CommitResult> {
    const call = buildCommitCall(tenantId, updates, options.lease);
    if (call === null) return { applied: true, written: 0 };
    const reply = await this.#run("tenant_commit", call);
    if (Array.isArray(reply) && reply[0] === 1) return { applied: true, written: updates.length };
    if (Array.isArray(reply) && reply[0] === 0) {
      return { applied: false, holder: typeof reply[1] === "string" ? reply[1] : null };
    }
    throw new ValkeyStateProtocolError("commit: unexpected reply");
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
