/**
 * THE module that builds Valkey keys. Every key carries the tenant id inside a hash tag
 * (`{tenant}`), so all keys of one tenant live in one Valkey Cluster slot and one script call may
 * touch them all. Never configure an ioredis `keyPrefix`: the scripts receive keys exactly as built
 * here.
 *
 * | key                          | holds                                                    |
 * |------------------------------|----------------------------------------------------------|
 * | `wbuf:{tenant}:rule:device`     | window buffer, string `ts:value,ts:value,…` oldest first |
 * | `cooldown:{tenant}:rule:device` | present while a new `fire` is held back (PX)            |
 * | `tstate:{tenant}`               | hash of the tenant's small per-pair states (below)      |
 * | `tick:{tenant}:slot`            | tick lease: token of the evaluator that owns the slot   |
 * | `wbufjson:{tenant}:rule:device` | benchmark baseline only (JSON string buffer)            |
 *
 * The fields of `tstate:{tenant}` are `keyPart(rule):keyPart(device):kind`:
 *
 * | kind   | holds                                                                      |
 * |--------|----------------------------------------------------------------------------|
 * | `cond` | alert lifecycle state while firing (JSON)                                  |
 * | `anom` | rolling anomaly statistics (`n,mean,variance,lastTs`)                      |
 * | `seen` | newest reading timestamp, ms (absent pattern)                              |
 * | `cd`   | when the pair's cooldown ends (tick clock, ms); a `cooldown:` key beside it |
 *
 * and one more field, `seq`: the version (`"<seq>:<tick ms>"`) of the committed evaluation whose
 * state the hash holds (see `tenant_write.lua`). The hash has one TTL, refreshed by every write
 * (Valkey 7 has no per-field TTL).
 *
 * `tenant_read.lua` and `tenant_write.lua` build the keys and fields themselves, as `kind:` + the
 * hash tag of their one declared key + `:keyPart(rule):keyPart(device)`, and
 * `tstate:` + that hash tag. Change the format here and there together.
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

function pairKey(kind: string, tenantId: string, ruleId: string, deviceId: string): string {
  return `${kind}:{${keyPart(tenantId)}}:${keyPart(ruleId)}:${keyPart(deviceId)}`;
}

/** The hash tag of a tenant, as it appears in all its keys. */
export function tenantTag(tenantId: string): string {
  return `{${keyPart(tenantId)}}`;
}

/** Window buffer of a (rule, device). */
export function windowBufferKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairKey("wbuf", tenantId, ruleId, deviceId);
}

/** Cooldown of a (rule, device). */
export function cooldownKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairKey("cooldown", tenantId, ruleId, deviceId);
}

/** The hash holding a tenant's lifecycle states, anomaly statistics, last-seen times and cooldown index. */
export function tenantStateKey(tenantId: string): string {
  return `tstate:${tenantTag(tenantId)}`;
}

/** A kind of per-pair state kept as a field of {@link tenantStateKey}. */
export type TenantStateKind = "cond" | "anom" | "seen" | "cd";

/** The field of a (rule, device)'s state of one kind in {@link tenantStateKey}. */
export function tenantStateField(ruleId: string, deviceId: string, kind: TenantStateKind): string {
  return `${keyPart(ruleId)}:${keyPart(deviceId)}:${kind}`;
}

/** JSON window buffer of the benchmark baseline (`baselineWindowStore`), apart from the real ones. */
export function baselineWindowKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairKey("wbufjson", tenantId, ruleId, deviceId);
}

/**
 * Tick lease of a tenant for tick slot `slot = floor(t / interval)`.
 * @throws RangeError when `slot` is not a non-negative safe integer
 */
export function tickLeaseKey(tenantId: string, slot: number): string {
  if (!Number.isSafeInteger(slot) || slot < 0)
    throw new RangeError(`tick slot must be a non-negative integer: ${slot}`);
  return `tick:${tenantTag(tenantId)}:${slot}`;
}

/** A `SCAN MATCH` pattern for every key of a tenant (glob characters in the id escaped). */
export function tenantKeysPattern(tenantId: string): string {
  return `*${tenantTag(tenantId).replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
}
