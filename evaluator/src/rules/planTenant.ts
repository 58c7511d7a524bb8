import type { AnomalyStats } from "./anomaly.ts";
import type { AlertState } from "./lifecycle.ts";
import { readingsFor } from "./readings.ts";
import type { Reading, ReadingsByDeviceMetric, Rule, WindowEntry } from "./types.ts";
import { type WindowSpec, windowSpecOf } from "./window.ts";

/** What one tenant's evaluation starts from. */
export interface TenantInput {
  readonly tenantId: string;
  /** Parsed, enabled rules of this tenant (quarantined rows already set aside by `parseRule`). */
  readonly rules: readonly Rule[];
  /**
   * Every device of the tenant. A rule without a `deviceId` is evaluated for each of these (plus any
   * device that sent readings): a window must be able to age out and resolve, and an `absent`
   * pattern must notice a device that sends nothing, even when the device has no new reading.
   */
  readonly deviceIds: readonly string[];
  /** The tenant's readings that arrived since the previous tick. */
  readonly readingsByDeviceMetric: ReadingsByDeviceMetric;
  /** Tick timestamp, epoch ms. */
  readonly now: number;
}

/** One (rule, device) pair to evaluate, and the Valkey state it needs. */
export interface PairPlan {
  /** Identity of the pair in {@link TenantState.pairs} (see {@link pairKey}). */
  readonly key: string;
  readonly rule: Rule;
  readonly deviceId: string;
  /** This tick's usable readings of (device, rule.metric), oldest first. */
  readonly readings: readonly Reading[];
  /** Keeps a window buffer: `readings` are appended, then it is trimmed to this spec at `now`. */
  readonly window: WindowSpec | null;
  /** Keeps rolling anomaly statistics. */
  readonly anomaly: boolean;
  /** Tracks the newest reading timestamp (seeded with `now` on first sight). */
  readonly lastSeen: boolean;
}

/** Every pair of one tenant for one tick, in a deterministic order. */
export interface TenantPlan {
  readonly tenantId: string;
  readonly now: number;
  readonly pairs: readonly PairPlan[];
}

/** State of one pair, as loaded for this tick (after this tick's readings were appended). */
export interface PairState {
  /** The window buffer after append and trim, oldest first; `null` when the pair keeps none. */
  readonly buffer: readonly WindowEntry[] | null;
  /** Milliseconds left on the cooldown; ≤ 0 when there is none. */
  readonly cooldownRemainingMs: number;
  /** `null`: nothing learned yet (or the pair keeps no statistics). */
  readonly anomaly: AnomalyStats | null;
  /** Newest reading timestamp known (after this tick's readings); `null` when not tracked. */
  readonly lastSeen: number | null;
  readonly alert: AlertState;
}

/**
 * Loaded state of one tenant, by {@link PairPlan.key}. A pair missing from the map means its state
 * could not be loaded: its stateful conditions are unknown and it produces no state updates.
 */
export interface TenantState {
  readonly pairs: ReadonlyMap<string, PairState>;
  /**
   * The same states by index in `plan.pairs` (`undefined`: not loaded), when the state was built for
   * that plan: `evaluateTenant` reads them by position, with no key lookup per pair.
   */
  readonly planned?: { readonly plan: TenantPlan; readonly states: readonly (PairState | undefined)[] };
}

/**
 * A tenant state built for one plan, pair by pair in plan order (what a tick's state step makes):
 * evaluated by position; the map by key is only built if something asks for it. Its one enumerable
 * property is `pairs`, so that comparing two states (a test's deep equality) compares their states
 * by key, as for any other {@link TenantState}, and not the plans they were built for.
 */
export class PlannedTenantState implements TenantState {
  readonly #planned: { readonly plan: TenantPlan; readonly states: readonly PairState[] };
  #pairs: Map<string, PairState> | null = null;
  declare readonly pairs: ReadonlyMap<string, PairState>;

  /** @param states the state of each pair of `plan.pairs`, at the same index */
  constructor(plan: TenantPlan, states: readonly PairState[]) {
    if (states.length !== plan.pairs.length) {
      throw new RangeError(`${states.length} pair states for a plan of ${plan.pairs.length} pairs`);
    }
    this.#planned = { plan, states };
    Object.defineProperty(this, "pairs", { enumerable: true, get: () => this.#byKey() });
  }

  get planned(): { readonly plan: TenantPlan; readonly states: readonly PairState[] } {
    return this.#planned;
  }

  #byKey(): ReadonlyMap<string, PairState> {
    if (this.#pairs === null) {
      const { plan, states } = this.#planned;
      this.#pairs = new Map(plan.pairs.map((pair, i) => [pair.key, states[i]!]));
    }
    return this.#pairs;
  }
}

/** State for an evaluation without Valkey (fail-open path): every stateful condition is unknown. */
export function emptyTenantState(): TenantState {
  return { pairs: new Map() };
}

/**
 * The identity of a (rule, device) pair; unambiguous whatever characters the ids contain (the rule
 * id's length comes first, so no split of one string into two ids is ambiguous).
 */
export function pairKey(ruleId: string, deviceId: string): string {
  return `${ruleId.length}:${ruleId}:${deviceId}`;
}

/** Inverse of {@link pairKey}; `null` for a string that is not one. */
export function splitPairKey(key: string): { readonly ruleId: string; readonly deviceId: string } | null {
  const colon = key.indexOf(":");
  const length = Number(key.slice(0, colon));
  if (colon <= 0 || !Number.isSafeInteger(length) || key[colon + 1 + length] !== ":") return null;
  return { ruleId: key.slice(colon + 1, colon + 1 + length), deviceId: key.slice(colon + 2 + length) };
}

/**
 * How many pairs {@link planTenant} would make of `input`, without making them: O(rules + the
 * (device, metric) groups of the readings), so a tenant too large to plan is recognised before its
 * plan is built. Exact when the rule ids are distinct (the `alert_rules` primary key); two rows
 * with one id, which `planTenant` evaluates once, are counted twice.
 */
export function countPairs(input: TenantInput): number {
  let known: ReadonlySet<string> | null = null;
  /** Per metric: devices outside `deviceIds` that sent readings of it (an unbound rule adds a pair for each). */
  let unregistered: Map<string, number> | null = null;
  let count = 0;
  for (const rule of input.rules) {
    if (rule.deviceId !== null) {
      count += 1;
    } else {
      if (unregistered === null) {
        const devices = new Set(input.deviceIds);
        known = devices;
        unregistered = new Map();
        for (const [d, byMetric] of input.readingsByDeviceMetric) {
          if (devices.has(d)) continue;
          for (const metric of byMetric.keys()) unregistered.set(metric, (unregistered.get(metric) ?? 0) + 1);
        }
      }
      count += (known?.size ?? 0) + (unregistered.get(rule.metric) ?? 0);
    }
  }
  return count;
}

/**
 * Expands one tenant's rules into (rule, device) pairs and says which state each needs: the pure
 * first step of a tick, whose result `ValkeyState.loadTenantState` turns into one script call.
 * A rule bound to a device yields that pair only; an unbound rule yields one pair per device in
 * `deviceIds`, then per other device that sent readings of its metric (sorted, for determinism).
 *
 * @throws RangeError when a rule belongs to another tenant (a caller bug: keys would cross tenants)
 */
export function planTenant(input: TenantInput): TenantPlan {
  const { tenantId, now, readingsByDeviceMetric } = input;
  const pairs: PairPlan[] = [];
  /** Devices already planned per rule id: only rows sharing an id can repeat a pair. */
  const planned = new Map<string, Set<string> | readonly string[]>();
  let known: ReadonlySet<string> | null = null;
  let knownList: readonly string[] | null = null;
  for (const rule of input.rules) {
    if (rule.tenantId !== tenantId) {
      throw new RangeError(`rule ${rule.id} belongs to tenant ${rule.tenantId}, not ${tenantId}`);
    }
    let devices: readonly string[];
    if (rule.deviceId !== null) {
      devices = [rule.deviceId];
    } else {
      if (known === null) {
        known = new Set(input.deviceIds);
        knownList = known.size === input.deviceIds.length ? input.deviceIds : [...known];
      }
      const extra: string[] = [];
      for (const [d, byMetric] of readingsByDeviceMetric) {
        if (!known.has(d) && byMetric.has(rule.metric)) extra.push(d);
      }
      devices = extra.length === 0 ? (knownList as readonly string[]) : [...known, ...extra.sort()];
    }
    // Two rows with one id would share keys; evaluate the first only. Ids are distinct (the
    // primary key) but for a malformed set of rows: only then are pairs checked one by one.
    let taken: Set<string> | null = null;
    const before = planned.get(rule.id);
    if (before === undefined) {
      planned.set(rule.id, devices);
    } else {
      taken = before instanceof Set ? before : new Set(before);
      planned.set(rule.id, taken);
    }
    const isPattern = rule.type === "pattern";
    const window = rule.type === "window" || isPattern ? windowSpecOf(rule) : null;
    const anomaly = rule.type === "anomaly";
    const lastSeen = isPattern && rule.params.kind === "absent";
    // pairKey(rule.id, deviceId), its rule part built once per rule.
    const keyPrefix = pairKey(rule.id, "");
    for (const deviceId of devices) {
      if (taken !== null) {
        if (taken.has(deviceId)) continue;
        taken.add(deviceId);
      }
      pairs.push({
        key: keyPrefix + deviceId,
        rule,
        deviceId,
        readings: readingsFor(readingsByDeviceMetric, deviceId, rule.metric),
        window,
        anomaly,
        lastSeen,
      });
    }
  }
  return { tenantId, now, pairs };
}
