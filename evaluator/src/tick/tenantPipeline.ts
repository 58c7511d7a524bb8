import type { TestFaults } from "../config/evaluatorConfig.ts";
import {
  evaluateTenant,
  type PairFailure,
  type StateUpdate,
  type TenantEvaluation,
} from "../rules/evaluateTenant.ts";
import { parseRule } from "../rules/parseRule.ts";
import type { TenantPlan } from "../rules/planTenant.ts";
import {
  emptyTenantState,
  pairKey,
  planTenant,
  type TenantInput,
  type TenantState,
} from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import type { Reading, Rule } from "../rules/types.ts";
import type { TickLease } from "../state/codec.ts";
import type { CommitResult, LeaseOption, ReleaseResult, TenantLoad } from "../state/scripts.ts";
import { type AlertWrites, buildAlertWrites } from "../store/alertWrites.ts";
import type { EvaluatorStore, MemberTenant, TenantData, WriteResult } from "../store/pgStore.ts";
import { BudgetExceededError } from "./budget.ts";
import { type CircuitBreaker, CircuitOpenError } from "./circuitBreaker.ts";
import { type Clock, sleep } from "./clock.ts";
import { DependencyUnavailableError, isPostgresOutage } from "./outages.ts";

/** The slice of `ValkeyState` a tick uses (so tests can wrap or replace it). */
export interface StateGateway {
  loadTenantState(plan: TenantPlan, options?: LeaseOption): Promise<TenantLoad>;
  commitTenantState(
    tenantId: string,
    updates: readonly StateUpdate[],
    options?: LeaseOption,
  ): Promise<CommitResult>;
  releaseTickLease(lease: Pick<TickLease, "tenantId" | "slot" | "token">): Promise<ReleaseResult>;
  /** Forgets whatever is kept in memory for tenants not in `tenantIds` (they left this shard). */
  retainTenants?(tenantIds: ReadonlySet<string>): void;
}

/** A malformed rule row set aside by `parseRule`. */
export interface QuarantinedRule {
  readonly ruleId: string | null;
  readonly reason: string;
}

/** What one tenant's pipeline needs. */
export interface PipelineContext {
  readonly store: EvaluatorStore;
  readonly state: StateGateway;
  readonly clock: Clock;
  readonly breakers: { readonly postgres: CircuitBreaker; readonly valkey: CircuitBreaker };
  /** This process's lease token. */
  readonly token: string;
  readonly intervalMs: number;
  /** The per-tenant budget, also checked against the clock between steps (none when absent). */
  readonly tenantBudgetMs?: number;
  readonly testFaults: TestFaults;
  readonly onQuarantined: (tenantId: string, rule: QuarantinedRule) => void;
  /** Valkey failed for an owned tenant, which is then evaluated fail-open. */
  readonly onValkeyFallback: (tenantId: string, err: unknown) => void;
  /** The Valkey state commit after the alert writes failed or was fenced out. */
  readonly onCommitProblem: (
    tenantId: string,
    problem: { err?: unknown; reason?: "lease" | "stale"; holder?: string | null },
  ) => void;
}

/** One tick of one tenant. */
export interface TenantTick {
  readonly slot: number;
  /** Tick timestamp (ms), the `now` of every rule. */
  readonly now: number;
}

/** How a tenant's pipeline ended (failures are thrown). */
export type TenantOutcome =
  | {
      readonly kind: "evaluated";
      /** (rule, device) pairs evaluated. */
      readonly pairs: number;
      readonly writes: AlertWrites;
      readonly written: WriteResult;
      /** fire actions held back by a rule's cooldown. */
      readonly suppressedByCooldown: number;
      /** Evaluated without Valkey state (fail-open). */
      readonly degraded: boolean;
      readonly pairFailures: readonly PairFailure[];
      /** Every reading read for the tenant this tick (for the read cursor). */
      readonly readings: readonly Reading[];
    }
  /** Another evaluator holds this tenant-slot's lease. */
  | { readonly kind: "conflict"; readonly holder: string | null }
  /** Not owned, and Valkey is unavailable: the lease fails closed. */
  | { readonly kind: "skipped"; readonly err: unknown };

/**
 * Lease TTL: until the end of the slot after the claimed one. A tick may claim its slot up to one
 * slot early (a NOTIFY), and another evaluator may tick the same slot as late as its end plus an
 * overrun, so the lease outlives every moment at which anyone could still try the slot.
 */
export function leaseTtlMs(slot: number, now: number, intervalMs: number): number {
  return Math.max(intervalMs, (slot + 2) * intervalMs - now);
}

/**
 * One tenant, one tick (DESIGN §5):
 * 1. parse the rule rows — a malformed row is quarantined alone;
 * 2. plan the (rule, device) pairs (pure);
 * 3. ONE Valkey round trip: take the tick lease `tick:{tenant}:slot` and load all state. Lease held
 *    by someone else → `conflict`. Valkey unavailable → an owned tenant is evaluated with empty
 *    state (fail-open: windows/anomaly/absent unknown, so nothing fires from them; threshold rules
 *    still alert, deduplicated by PostgreSQL) and nothing is committed; a tenant this shard no
 *    longer owns is `skipped` (the lease fails closed: its new owner evaluates it);
 * 4. evaluate (pure);
 * 5. all alert writes of the tenant in one statement;
 * 6. commit the state updates to Valkey, fenced by the lease (only when there are any).
 * An error after the lease was taken and before the alerts were written gives the lease back, so
 * another evaluator may take the slot; the budget (`signal`, and `deadline` on the clock) is checked
 * before evaluating and before writing.
 */
export async function runTenantPipeline(
  ctx: PipelineContext,
  member: MemberTenant,
  data: TenantData,
  readings: readonly Reading[],
  tick: TenantTick,
  signal: AbortSignal,
): Promise<TenantOutcome> {
  const tenantId = member.id;
  const deadline = ctx.clock.now() + (ctx.tenantBudgetMs ?? Number.POSITIVE_INFINITY);
  const rules: Rule[] = [];
  for (const row of data.ruleRows) {
    const parsed = parseRule(row);
    if (parsed.ok) rules.push(parsed.rule);
    else ctx.onQuarantined(tenantId, { ruleId: parsed.id, reason: parsed.reason });
  }

  const input: TenantInput = {
    tenantId,
    rules,
    deviceIds: data.deviceIds,
    readingsByDeviceMetric: groupReadings(readings),
    now: tick.now,
  };
  const plan = planTenant(input);
  const lease: TickLease = {
    tenantId,
    slot: tick.slot,
    token: ctx.token,
    ttlMs: leaseTtlMs(tick.slot, tick.now, ctx.intervalMs),
  };

  let state: TenantState;
  let leased = false;
  try {
    const load = await ctx.breakers.valkey.run(() => ctx.state.loadTenantState(plan, { lease }));
    if (!load.acquired) return { kind: "conflict", holder: load.holder };
    state = load.state;
    leased = true;
  } catch (err) {
    if (!member.owned) {
      // A load can fail after it took the lease (the read-then-write path makes two calls): give it
      // back, so the tenant's owner is not refused the slot. Owned tenants keep it (fail-open below).
      await releaseQuietly(ctx, lease);
      return { kind: "skipped", err };
    }
    ctx.onValkeyFallback(tenantId, err);
    state = emptyTenantState();
  }

  let written = false;
  try {
    await injectFaults(ctx, tenantId, rules, signal);
    checkBudget(ctx, signal, deadline);
    const evaluation = evaluateTenant({ ...input, state, plan });
    const rulesById = new Map(rules.map((r) => [r.id, r]));
    const writes = buildAlertWrites(tenantId, rulesById, evaluation, data.openPairs, data.maintenance);
    // Also by the clock: a long synchronous evaluation keeps the budget timer from firing.
    checkBudget(ctx, signal, deadline);
    let result: WriteResult;
    try {
      result = await ctx.breakers.postgres.run(() => ctx.store.writeAlerts(tenantId, writes, tick.now));
    } catch (err) {
      throw err instanceof CircuitOpenError || isPostgresOutage(err)
        ? new DependencyUnavailableError("postgres", err)
        : err;
    }
    written = true;

    if (leased && evaluation.stateUpdates.length > 0) {
      try {
        const commit = await ctx.breakers.valkey.run(() =>
          ctx.state.commitTenantState(tenantId, evaluation.stateUpdates, { lease }),
        );
        if (!commit.applied) ctx.onCommitProblem(tenantId, { reason: commit.reason, holder: commit.holder });
      } catch (err) {
        // The alerts are written; the next tick re-derives the lost transitions and the
        // PostgreSQL dedup absorbs a repeated fire.
        ctx.onCommitProblem(tenantId, { err });
      }
    }
    return {
      kind: "evaluated",
      pairs: evaluation.conditions.length,
      writes,
      written: result,
      suppressedByCooldown: countCooldownSuppressed(evaluation, state),
      degraded: !leased,
      pairFailures: evaluation.failures,
      readings,
    };
  } catch (err) {
    if (leased && !written) await releaseQuietly(ctx, lease);
    throw err;
  }
}

/** fire actions the cooldown held back: a true condition on an inactive pair with cooldown left. */
function countCooldownSuppressed(evaluation: TenantEvaluation, state: TenantState): number {
  let n = 0;
  for (const c of evaluation.conditions) {
    if (c.status !== true) continue;
    const s = state.pairs.get(pairKey(c.ruleId, c.deviceId));
    if (s && !s.alert.active && s.cooldownRemainingMs > 0) n++;
  }
  return n;
}

function checkBudget(ctx: PipelineContext, signal: AbortSignal, deadline: number): void {
  signal.throwIfAborted();
  if (ctx.clock.now() > deadline) throw new BudgetExceededError(ctx.tenantBudgetMs ?? 0);
}

async function releaseQuietly(ctx: PipelineContext, lease: TickLease): Promise<void> {
  try {
    await ctx.breakers.valkey.run(() => ctx.state.releaseTickLease(lease));
  } catch {
    // Best effort: an unreleased lease expires on its own; the slot is then simply not evaluated
    // by anyone else, which the next slot makes up for.
  }
}

/**
 * TEST-ONLY faults (see `TestFaults`); a no-op unless the test environment variables are set. They
 * strike after the tick lease was taken, like a real slow or crashing evaluation would.
 */
async function injectFaults(
  ctx: PipelineContext,
  tenantId: string,
  rules: readonly Rule[],
  signal: AbortSignal,
): Promise<void> {
  const { delayTenant, poisonRuleId } = ctx.testFaults;
  if (delayTenant !== null && delayTenant.tenantId === tenantId) {
    await sleep(ctx.clock, delayTenant.ms, signal);
  }
  if (poisonRuleId !== null && rules.some((r) => r.id === poisonRuleId)) {
    throw new Error(`test fault: rule ${poisonRuleId} is poisoned`);
  }
}
