/**
 * The per-tenant evaluation, pure. The tick pipeline (`tick/tenantPipeline.ts`) does the I/O around
 * it; one tenant costs one Valkey round trip per tick in the steady state, whatever its number of
 * devices × rules:
 *
 * 1. `planTenant(input)` (pure) expands rules into (rule, device) pairs and says which state each
 *    needs.
 * 2. The state the tenant's last committed evaluation left: the evaluator's kept copy (no call),
 *    `ValkeyState.loadTenantState` (one `tenant_read`), or a rebuild from PostgreSQL.
 * 3. `advanceTick` (state/tenantSnapshot.ts, pure) appends this tick's readings to the window buffers, trims
 *    them and advances last-seen times.
 * 4. `evaluateTenant({ ...input, state })` (this module, pure) → conditions, alert actions and the
 *    few state updates the tick produced.
 * 5. The commit in PostgreSQL (fence and alert writes in one statement), then
 *    `ValkeyState.storeTenantState` — ONE script call with the buffer writes of step 3 and the state
 *    updates of step 4.
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

/** A write to the tenant's Valkey state (see `ValkeyState.storeTenantState`). */
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
  /** State updates for `storeTenantState` (with `commitOps`); empty when nothing changed. */
  readonly stateUpdates: readonly StateUpdate[];
  /**
   * Every pair's verdict, including unknowns. Counts as "rules evaluated"; a `false` here also lets
   * the alert writer resolve an open alert whose lifecycle state was lost (Valkey flushed).
   */
  readonly conditions: readonly PairCondition[];
  /** Alert actions to upsert (`fire`, `still-firing`, `resolve`). */
  readonly evaluations: readonly AlertEvaluation[];
  readonly failures: readonly PairFailure[];
  /** fire actions a cooldown held back: true conditions of inactive pairs with cooldown left. */
  readonly suppressedByCooldown: number;
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
  let suppressedByCooldown = 0;

  // States built for this very plan are read by position; any other by key.
  const planned = input.state.planned?.plan === plan ? input.state.planned.states : null;
  const byKey = planned === null ? input.state.pairs : null;
  for (let i = 0; i < plan.pairs.length; i++) {
    const pair = plan.pairs[i]!;
    const rule = pair.rule;
    const state = planned !== null ? planned[i] : byKey!.get(pair.key);
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
      // A true condition of an inactive pair whose cooldown is still running: a fire held back.
      if (condition.status === true && !prev.active && (state?.cooldownRemainingMs ?? 0) > 0)
        suppressedByCooldown++;
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
  return { stateUpdates, conditions, evaluations, failures, suppressedByCooldown };
}
