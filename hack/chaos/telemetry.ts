/**
 * The chaos run's telemetry: a deterministic schedule whose alerts are known in advance.
 *
 * Every tenant has one rule, {@link RULE} (`temp > 50`). Device `d` of tenant `t` has a reading
 * at every slot `k` (ts = run start + k × readingSeconds). Its values alternate between LOW episodes
 * of 3–8 readings (about 20) and HIGH episodes of 3–6 readings (about 80), starting LOW; episode
 * lengths and jitter come from a hash of the tenant and device ids, so the generator, the verdict
 * and a re-run all agree on every value, and no value comes near the threshold.
 *
 * The evaluator's threshold rule judges the latest of the readings new to a tick, so with evaluation
 * on time every HIGH episode fires one alert and the first LOW reading after it resolves it. An
 * episode judged in one batch with a later LOW reading (evaluation delayed by an outage) fires none.
 *
 * Pure: no I/O, no clock, no `Math.random`.
 */
import { fmix32 } from "../../operator/src/sharding/hashing.ts";

/** The threshold of {@link RULE}. */
export const THRESHOLD = 50;
/** LOW values are LOW_VALUE ± {@link JITTER}, HIGH values HIGH_VALUE ± JITTER: never within 25 of the threshold. */
export const LOW_VALUE = 20;
export const HIGH_VALUE = 80;
export const JITTER = 2;
/** Episode lengths, in readings (inclusive). */
export const LOW_READINGS = { min: 3, max: 8 } as const;
export const HIGH_READINGS = { min: 3, max: 6 } as const;

/**
 * An `alert_rules` row to seed for every tenant (with its `tenant_id`), columns by their SQL names.
 * A type, not an interface, so it is assignable to column maps with an index signature.
 */
export type AlertRuleSeed = {
  readonly id: string;
  readonly metric: string;
  readonly rule_type: "threshold";
  readonly operator: ">";
  readonly threshold: number;
  readonly severity: "warning";
  /** 0: the column's default (300) would hold back the next episode's alert. */
  readonly cooldown_seconds: number;
  readonly escalation: null;
};

/** The one rule of every tenant: `temp > 50`, severity warning, no cooldown, no escalation. */
export const RULE: AlertRuleSeed = {
  id: "hot",
  metric: "temp",
  rule_type: "threshold",
  operator: ">",
  threshold: THRESHOLD,
  severity: "warning",
  cooldown_seconds: 0,
  escalation: null,
};

/** The id of seeded tenant `i` (0-based): `chaos-t0007`. */
export function tenantId(i: number): string {
  return `chaos-t${String(i).padStart(4, "0")}`;
}

/** The id of device `j` (0-based) of every tenant: `d003`. */
export function deviceId(j: number): string {
  return `d${String(j).padStart(3, "0")}`;
}

/** The timestamp (epoch ms) of slot `slot`. */
export function slotTs(runStartMs: number, readingSeconds: number, slot: number): number {
  return runStartMs + slot * readingSeconds * 1000;
}

/** A run of HIGH readings: slots [startSlot, endSlot). */
export interface Episode {
  readonly startSlot: number;
  readonly endSlot: number;
}

/** The value of device `device` of tenant `tenant` at slot `slot` (an integer ≥ 0). */
export function valueAt(tenant: string, device: string, slot: number): number {
  if (!Number.isInteger(slot) || slot < 0) throw new RangeError(`slot must be an integer ≥ 0, got ${slot}`);
  const seed = deviceSeed(tenant, device);
  for (const phase of phases(seed)) {
    if (slot < phase.endSlot) return (phase.high ? HIGH_VALUE : LOW_VALUE) + jitter(seed, slot);
  }
  throw new Error("unreachable: the phases never end");
}

/** The HIGH episodes of a device that intersect slots [fromSlot, toSlot), clipped to it. */
export function episodes(tenant: string, device: string, fromSlot: number, toSlot: number): Episode[] {
  const out: Episode[] = [];
  for (const phase of phases(deviceSeed(tenant, device))) {
    if (phase.startSlot >= toSlot) break;
    if (!phase.high || phase.endSlot <= fromSlot) continue;
    out.push({ startSlot: Math.max(phase.startSlot, fromSlot), endSlot: Math.min(phase.endSlot, toSlot) });
  }
  return out;
}

interface Phase {
  readonly high: boolean;
  readonly startSlot: number;
  readonly endSlot: number;
}

/** The device's LOW and HIGH phases from slot 0 on, LOW first; the n-th length is the n-th draw. */
function* phases(seed: number): Generator<Phase> {
  let startSlot = 0;
  for (let n = 0; ; n++) {
    const high = n % 2 === 1;
    const range = high ? HIGH_READINGS : LOW_READINGS;
    const length = range.min + (draw(seed, 2 * n) % (range.max - range.min + 1));
    yield { high, startSlot, endSlot: startSlot + length };
    startSlot += length;
  }
}

/** In [-JITTER, JITTER], in steps of 0.1 (a different draw stream than the lengths). */
function jitter(seed: number, slot: number): number {
  const steps = 20 * JITTER + 1;
  return ((draw(seed, 2 * slot + 1) % steps) - 10 * JITTER) / 10;
}

/** FNV-1a of "tenant/device": the device's seed. */
function deviceSeed(tenant: string, device: string): number {
  const s = `${tenant}/${device}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The n-th pseudo-random 32-bit draw of a seed (counter-based: no state to carry). */
function draw(seed: number, n: number): number {
  return fmix32(seed ^ fmix32(n + 0x9e3779b9));
}
