/**
 * THE module that builds Valkey keys. Every key carries the tenant id inside a hash tag
 * (`{tenant}`), so all keys of one tenant live in one Valkey Cluster slot and one script call may
 * touch them all. Never configure an ioredis `keyPrefix`: the scripts receive keys exactly as built
 * here.
 *
 * | key                          | holds                                                    |
 * |------------------------------|----------------------------------------------------------|
 * | `wbuf:{tenant}:rule:device`     | window buffer, sorted set `ts:value` scored by ts       |
 * | `cooldown:{tenant}:rule:device` | present while a new `fire` is held back (PX)            |
 * | `anom:{tenant}:rule:device`     | rolling anomaly statistics (JSON)                       |
 * | `seen:{tenant}:rule:device`     | newest reading timestamp, ms (absent pattern)           |
 * | `cond:{tenant}:rule:device`     | alert lifecycle state while firing (JSON)               |
 * | `tick:{tenant}:slot`            | tick lease: token of the evaluator that owns the slot   |
 * | `wbufjson:{tenant}:rule:device` | benchmark baseline only (JSON string buffer)            |
 *
 * `tenant_tick.lua` and `tenant_commit.lua` build the per-pair keys themselves, as
 * `kind:` + the hash tag of their one declared key + `:keyPart(rule):keyPart(device)`. Change the
 * format here and there together.
 */

/**
 * Escapes one key component: `%`, `:`, `{` and `}` are percent-encoded, so an id containing `:`
 * cannot make two different pairs share a key, and a tenant id containing braces cannot break the
 * hash tag. UUIDs and integer ids are left as they are.
 */
export function keyPart(id: string): string {
  return id.replace(/[%:{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

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

/** Anomaly statistics of a (rule, device). */
export function anomalyKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairKey("anom", tenantId, ruleId, deviceId);
}

/** Last-seen timestamp of a (rule, device). */
export function lastSeenKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairKey("seen", tenantId, ruleId, deviceId);
}

/** Alert lifecycle state of a (rule, device). */
export function alertStateKey(tenantId: string, ruleId: string, deviceId: string): string {
  return pairKey("cond", tenantId, ruleId, deviceId);
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
