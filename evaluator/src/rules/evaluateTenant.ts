/**
 * The per-tenant evaluation, pure. The tick loop does the I/O around it, and the data flow is
 * designed so that one tenant costs at most two Valkey round trips per tick, whatever its number of
 * devices × rules — and usually one:
 *
 * 1. `planTenant(input)` (pure) expands rules into (rule, device) pairs and says which state each
 *    needs.
 * 2. `ValkeyState.loadTenantState(plan, { lease })` — ONE script call: takes the tick
 *    lease `tick:{tenant}:slot` (optional), appends this tick's readings to every window buffer,
 *    trims them, refreshes TTLs, updates last-seen timestamps, and returns buffers, cooldown TTLs,
 *    anomaly statistics and lifecycle states of all pairs in one reply.
 * 3. `evaluateTenant({ ...input, state })` (this module, pure) → conditions, alert actions and the
 *    few state updates the tick produced.
 * 4. `ValkeyState.commitTenantState(tenantId, stateUpdates, { lease })` — ONE script call, fenced by
 *    the lease, and skipped when there is nothing to write.
 *
 * Why not a single round trip: the rules are TypeScript (pure, table-tested), so what they decide —
 * a new cooldown, a lifecycle transition, learned anomaly statistics — is only known after the
 * reply. Folding those writes into the *next* tick's load would lose them when a tenant moves to
 * another shard or the process dies, and re-implementing the rules in Lua would give two sources of
 * truth. Everything that does not need the verdict (buffer appends, trims, TTLs, last-seen, the
 * lease) is already done by the load, so the second call only happens on transitions and on anomaly
 * rules with new readings.
 */

import { type AnomalyStats, anomalyCondition } from "./anomaly.ts";
import { type Condition, UNKNOWN } from "./condition.ts";
import { type AlertState, INACTIVE, stepAlert } from "./lifecycle.ts";
import { absentCondition, risingCondition } from "./pattern.ts";
import {
  type PairPlan,
  type PairState,
  planTenant,
  type TenantInput,
  type TenantPlan,
  type TenantState,
} from "./planTenant.ts";
import { thresholdCondition } from "./threshold.ts";
import type { Severity } from "./types.ts";
import { windowCondition } from "./window.ts";

/** Input of {@link evaluateTenant}: the tenant input plus the state loaded for it. */
export interface TenantEvaluationInput extends TenantInput {
  readonly state: TenantState;
  /** `planTenant(input)`, when the caller already has it (it is not planned twice). */
  readonly plan?: TenantPlan;
}

interface PairRef {
  readonly pairKey: string;
  readonly ruleId: string;
  readonly deviceId: string;
}

/** A write to the tenant's Valkey state (see `ValkeyState.commitTenantState`). */
export type StateUpdate =
  /** Start the (rule, device) cooldown: no new `fire` for `ttlMs`. */
  | (PairRef & { readonly kind: "cooldown"; readonly ttlMs: number })
  /** Store learned anomaly statistics. */
  | (PairRef & { readonly kind: "anomaly"; readonly stats: AnomalyStats })
  /** Store the lifecycle state (an inactive state deletes it). */
  | (PairRef & { readonly kind: "alert"; readonly state: AlertState });

/** The verdict of one (rule, device) this tick (every evaluated pair has one). */
export interface PairCondition extends Condition {
  readonly ruleId: string;
  readonly deviceId: string;
  readonly metric: string;
}

/** An alert action to write (pairs whose lifecycle action is not `none`). */
export interface AlertEvaluation {
  readonly tenantId: string;
  readonly ruleId: string;
  readonly deviceId: string;
  readonly metric: string;
  readonly action: "fire" | "still-firing" | "resolve";
  readonly severity: Severity;
  /** When the alert started firing (ms). */
  readonly since: number;
  /** True on the step that raised the severity. */
  readonly escalated: boolean;
  /** The judged value and its timestamp (see {@link Condition}). */
  readonly value: number | null;
  readonly observedAt: number | null;
  /** Tick timestamp. */
  readonly at: number;
}

/** A pair whose evaluation threw (a defect, isolated so the tenant's other pairs still run). */
export interface PairFailure {
  readonly ruleId: string;
  readonly deviceId: string;
  readonly error: unknown;
}

/** Result of {@link evaluateTenant}. */
export interface TenantEvaluation {
  /** Writes for `commitTenantState`; empty when nothing changed. */
  readonly stateUpdates: readonly StateUpdate[];
  /**
   * Every pair's verdict, including unknowns. Counts as "rules evaluated"; a `false` here also lets
   * the alert writer resolve an open alert whose lifecycle state was lost (Valkey flushed).
   */
  readonly conditions: readonly PairCondition[];
  /** Alert actions to upsert (`fire`, `still-firing`, `resolve`). */
  readonly evaluations: readonly AlertEvaluation[];
  readonly failures: readonly PairFailure[];
}

interface PairOutcome {
  readonly condition: Condition;
  readonly stats: AnomalyStats | null;
}

function conditionOf(pair: PairPlan, state: PairState | undefined, now: number): PairOutcome {
  const rule = pair.rule;
  switch (rule.type) {
    case "threshold":
      return { condition: thresholdCondition(rule, pair.readings), stats: null };
    case "window":
      // No loaded buffer: unknown (no fire, and no false resolve while Valkey is away).
      return { condition: state?.buffer ? windowCondition(rule, state.buffer, now) : UNKNOWN, stats: null };
    case "anomaly": {
      if (!state) return { condition: UNKNOWN, stats: null };
      const outcome = anomalyCondition(rule, state.anomaly, pair.readings);
      return { condition: outcome.condition, stats: pair.readings.length > 0 ? outcome.stats : null };
    }
    case "pattern":
      if (rule.params.kind === "absent") {
        return { condition: absentCondition(rule, state?.lastSeen ?? null, now), stats: null };
      }
      return { condition: state?.buffer ? risingCondition(rule, state.buffer, now) : UNKNOWN, stats: null };
  }
}

function sameAlert(a: AlertState, b: AlertState): boolean {
  return a.active === b.active && a.since === b.since && a.severity === b.severity;
}

function sameStats(a: AnomalyStats | null, b: AnomalyStats): boolean {
  return a !== null && a.n === b.n && a.mean === b.mean && a.variance === b.variance && a.lastTs === b.lastTs;
}

/**
 * Evaluates one tenant for one tick: every (rule, device) pair of `planTenant(input)` against its
 * loaded state, then through the alert lifecycle (`stepAlert`). Pure: same input, same output.
 *
 * A pair absent from `input.state` (state not loaded: the fail-open path with
 * `emptyTenantState()`) still gets threshold verdicts and alert actions, but its stateful
 * conditions are unknown and it yields no state updates, so a degraded evaluation never overwrites
 * good state. A pair that throws is reported in `failures` and skipped.
 */
export function evaluateTenant(input: TenantEvaluationInput): TenantEvaluation {
  const plan = input.plan ?? planTenant(input);
  const now = plan.now;
  const stateUpdates: StateUpdate[] = [];
  const conditions: PairCondition[] = [];
  const evaluations: AlertEvaluation[] = [];
  const failures: PairFailure[] = [];

  for (const pair of plan.pairs) {
    const rule = pair.rule;
    const state = input.state.pairs.get(pair.key);
    try {
      const { condition, stats } = conditionOf(pair, state, now);
      const prev = state?.alert ?? INACTIVE;
      const step = stepAlert(prev, condition.status, now, rule, state?.cooldownRemainingMs ?? 0);

      conditions.push({
        ruleId: rule.id,
        deviceId: pair.deviceId,
        metric: rule.metric,
        status: condition.status,
        value: condition.value,
        observedAt: condition.observedAt,
      });
      if (step.action !== "none" && step.severity !== null && step.since !== null) {
        evaluations.push({
          tenantId: plan.tenantId,
          ruleId: rule.id,
          deviceId: pair.deviceId,
          metric: rule.metric,
          action: step.action,
          severity: step.severity,
          since: step.since,
          escalated: step.escalated,
          value: condition.value,
          observedAt: condition.observedAt,
          at: now,
        });
      }
      if (!state) continue;
      const pairKey = pair.key;
      const ruleId = rule.id;
      const deviceId = pair.deviceId;
      if (stats !== null && !sameStats(state.anomaly, stats))
        stateUpdates.push({ pairKey, ruleId, deviceId, kind: "anomaly", stats });
      if (!sameAlert(step.state, prev))
        stateUpdates.push({ pairKey, ruleId, deviceId, kind: "alert", state: step.state });
      if (step.action === "fire" && rule.cooldownSeconds > 0) {
        stateUpdates.push({
          pairKey,
          ruleId,
          deviceId,
          kind: "cooldown",
          ttlMs: rule.cooldownSeconds * 1000,
        });
      }
    } catch (error) {
      failures.push({ ruleId: rule.id, deviceId: pair.deviceId, error });
    }
  }
  return { stateUpdates, conditions, evaluations, failures };
}
