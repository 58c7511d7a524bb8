/**
 * THE module that builds Valkey keys. Every key carries the tenant id inside a hash tag
 * (`{tenant}`), so all keys of one tenant live in one Valkey Cluster slot and one script call may
 * touch them all. Never configure an ioredis `keyPrefix`: the scripts receive keys exactly as built
 * here. Ids are escaped by {@link keyPart}; how each value is stored is `valueEncoding.ts`.
 *
 * | key                             | holds                                                          |
 * |---------------------------------|----------------------------------------------------------------|
 * | `wbuf:{tenant}:rule:device`     | window buffer, string `ts:value,+d:value,…` oldest first (PX)  |
 * | `cooldown:{tenant}:rule:device` | `"1"` while a new `fire` is held back (PX); the end is `cd`'s  |
 * | `tstate:{tenant}`               | hash of the tenant's small per-pair states (below)             |
 * | `tick:{tenant}:slot`            | tick lease: token of the evaluator that owns the slot          |
 * | `wbufjson:{tenant}:rule:device` | benchmark baseline only (`bench/baselineWindowStore.ts`, JSON) |
 *
 * The fields of `tstate:{tenant}` are `keyPart(rule):keyPart(device):kind` ({@link pairField}):
 *
 * | kind   | holds                                                                      |
 * |--------|----------------------------------------------------------------------------|
 * | `cond` | alert lifecycle state while firing (JSON `{"since","severity"}`)           |
 * | `anom` | rolling anomaly statistics (`n,mean,variance,lastTs`)                      |
 * | `seen` | newest reading timestamp, ms, else the tick that first saw the pair (absent) |
 * | `cd`   | when the pair's cooldown ends (tick clock, ms); a `cooldown:` key beside it |
 *
 * and one more field, {@link STATE_VERSION_FIELD} (`seq`): the version (`"<seq>:<tick ms>"`) of the
 * committed evaluation whose state the hash holds (see `tenant_write.lua`). The hash has one TTL,
 * which every write raises to the plan's state retention (`tenantStatePx`) and never shortens
 * (Valkey 7 has no per-field TTL). A field of an earlier release ({@link RETIRED_STATE_FIELDS}) is read and skipped.
 *
 * The scripts build no key: every call declares every key it touches (KEYS), built here, so Valkey
 * Cluster routes it by the tenant's slot and refuses it with ASK/TRYAGAIN while that slot is moving
 * (`scriptProtocol.ts` lists them; `keys.test.ts` checks that the scripts touch KEYS entries only
 * and build only the hash fields named here).
 */

/**
 * Escapes one key component: `%`, `:`, `{` and `}` are percent-encoded, so an id containing `:`
 * cannot make two different pairs share a key, and a tenant id containing braces cannot break the
 * hash tag. UUIDs and integer ids are left as they are.
 */
export function keyPart(id: string): string {
  if (!NEEDS_ESCAPE.test(id)) return id;
  return id.replace(/[%:{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

const NEEDS_ESCAPE = /[%:{}]/;

/** The first component of every key: what the key holds (see the table above). */
export const KEY_KINDS = {
  windowBuffer: "wbuf",
  cooldown: "cooldown",
  tenantState: "tstate",
  tickLease: "tick",
  baselineWindow: "wbufjson",
} as const;

/** The field of {@link tenantStateKey} holding the version of the state the hash holds. */
export const STATE_VERSION_FIELD = "seq";

/** Fields an earlier release kept in {@link tenantStateKey}; read and skipped. */
export const RETIRED_STATE_FIELDS: readonly string[] = ["gen"];

/**
 * `keyPart(rule):keyPart(device)`: how a (rule, device) pair is named inside the tenant's keys and
 * fields, and in the scripts' requests.
 */
export function pairPart(ruleId: string, deviceId: string): string {
  return `${keyPart(ruleId)}:${keyPart(deviceId)}`;
}

/** A key of one (rule, device) pair, from its {@link pairPart}: `kind:{tenant}:rule:device`. */
function pairScopedKey(kind: string, tenantId: string, part: string): string {
  return `${kind}:${tenantTag(tenantId)}:${part}`;
}

/** The hash tag of a tenant, as it appears in all its keys. */
export function tenantTag(tenantId: string): string {
  return `{${keyPart(tenantId)}}`;
}

/** Window buffer of a (rule, device). */
export function windowBufferKey(tenantId: string, ruleId: string, deviceId: string): string {
  return windowBufferKeyOf(tenantId, pairPart(ruleId, deviceId));
}

/** Window buffer of the pair named by its {@link pairPart} (how the scripts' requests name pairs). */
export function windowBufferKeyOf(tenantId: string, part: string): string {
  return pairScopedKey(KEY_KINDS.windowBuffer, tenantId, part);
}

/** Cooldown of a (rule, device). */
export function cooldownKey(tenantId: string, ruleId: string, deviceId: string): string {
  return cooldownKeyOf(tenantId, pairPart(ruleId, deviceId));
}

/** Cooldown of the pair named by its {@link pairPart}. */
export function cooldownKeyOf(tenantId: string, part: string): string {
  return pairScopedKey(KEY_KINDS.cooldown, tenantId, part);
}

/** The hash holding a tenant's lifecycle states, anomaly statistics, last-seen times and cooldown ends. */
export function tenantStateKey(tenantId: string): string {
  return `${KEY_KINDS.tenantState}:${tenantTag(tenantId)}`;
}

/** The kinds of per-pair state kept as fields of {@link tenantStateKey} (see the table above). */
export const TENANT_STATE_KINDS = ["cond", "anom", "seen", "cd"] as const;

/** A kind of per-pair state kept as a field of {@link tenantStateKey}. */
export type TenantStateKind = (typeof TENANT_STATE_KINDS)[number];

/** The field of a pair's state of one kind in {@link tenantStateKey}, from its {@link pairPart}. */
export function pairField(pairPart: string, kind: TenantStateKind): string {
  return `${pairPart}:${kind}`;
}

/** The field of a (rule, device)'s state of one kind in {@link tenantStateKey}. */
export function tenantStateField(ruleId: string, deviceId: string, kind: TenantStateKind): string {
  return pairField(pairPart(ruleId, deviceId), kind);
}

/** JSON window buffer of the benchmark baseline (`bench/baselineWindowStore.ts`), beside the real one. */
export function baselineWindowKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairScopedKey(KEY_KINDS.baselineWindow, tenantId, pairPart(ruleId, deviceId));
}

/**
 * Tick lease of a tenant for tick slot `slot = floor(t / interval)`.
 * @throws RangeError when `slot` is not a non-negative safe integer
 */
export function tickLeaseKey(tenantId: string, slot: number): string {
  if (!Number.isSafeInteger(slot) || slot < 0)
    throw new RangeError(`tick slot must be a non-negative integer: ${slot}`);
  return `${KEY_KINDS.tickLease}:${tenantTag(tenantId)}:${slot}`;
}

/** A `SCAN MATCH` pattern for every key of a tenant (glob characters in the id escaped). */
export function tenantKeysPattern(tenantId: string): string {
  return `*${tenantTag(tenantId).replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
}
