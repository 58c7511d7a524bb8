import type { Clock } from "../../../runtime/clock.ts";
import { isPostgresOutage } from "../../../runtime/postgresOutage.ts";
import { evaluateTenant, type PairFailure } from "../rules/evaluateTenant.ts";
import { parseRule } from "../rules/parseRule.ts";
import { planTenant, type TenantInput, type TenantPlan } from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import type { Reading, Rule } from "../rules/types.ts";
import type { TickLease } from "../state/scriptProtocol.ts";
import { advanceTick, applyCommit, commitOps, type TenantSnapshot } from "../state/tenantSnapshot.ts";
import type {
  FenceVersion,
  LeaseOption,
  ReleaseResult,
  StateDelta,
  StoreResult,
  TenantLoad,
} from "../state/valkeyState.ts";
import { type AlertWrites, buildAlertWrites } from "../store/alertWrites.ts";
import type { EvaluatorStore, MemberTenant, TenantData, TenantFence, WriteResult } from "../store/pgStore.ts";
import { BudgetExceededError } from "./budget.ts";
import { type CircuitBreaker, CircuitOpenError } from "./circuitBreaker.ts";
import type { EvaluationRecord, StateSource } from "./evaluationRecord.ts";
import type { EvaluatorFaults } from "./evaluatorFaults.ts";
import { DependencyUnavailableError } from "./outages.ts";
import { checkPairs, type LimitExceeded, type TenantLimits } from "./tenantLimits.ts";

/** The slice of `ValkeyState` a tick uses (so tests can wrap or replace it). */
export interface StateGateway {
  loadTenantState(plan: TenantPlan, fence: FenceVersion, options?: LeaseOption): Promise<TenantLoad>;
  storeTenantState(
    plan: TenantPlan,
    snapshot: TenantSnapshot,
    delta: StateDelta | null,
  ): Promise<StoreResult>;
  releaseTickLease(lease: Pick<TickLease, "tenantId" | "slot" | "token">): Promise<ReleaseResult>;
  /** Drops the kept state of a tenant whose evaluation was not committed. */
  forget(tenantId: string): void;
  /** Forgets whatever is kept in memory for tenants not in `tenantIds` (they left this shard). */
  retainTenants?(tenantIds: ReadonlySet<string>): void;
}

/**
 * Rebuilds a tenant's state as its last committed evaluation left it, from PostgreSQL; `now` is the
 * tick time (what cooldown ends are compared with).
 */
export type StateRebuilder = (plan: TenantPlan, fence: TenantFence, now: number) => Promise<TenantSnapshot>;

/** A malformed rule row set aside by `parseRule`. */
export interface QuarantinedRule {
  readonly ruleId: string | null;
  readonly reason: string;
}

/** What one tenant's pipeline needs. */
export interface PipelineContext {
  readonly store: EvaluatorStore;
  readonly state: StateGateway;
  /** The PostgreSQL rebuild of a state Valkey does not hold. */
  readonly rebuild: StateRebuilder;
  readonly clock: Clock;
  readonly breakers: { readonly postgres: CircuitBreaker; readonly valkey: CircuitBreaker };
  /** This process's lease token. */
  readonly token: string;
  readonly intervalMs: number;
  /** The per-tenant budget, also checked against the clock between steps (none when absent). */
  readonly tenantBudgetMs?: number;
  /** The tenant limits; only `maxPairs` is checked here (none when absent). */
  readonly limits?: TenantLimits;
  /** Test-only fault hooks (see {@link EvaluatorFaults}); absent in production. */
  readonly faults?: EvaluatorFaults;
  readonly onQuarantined: (tenantId: string, rule: QuarantinedRule) => void;
  /** Valkey failed for an owned tenant, which is then evaluated with its state rebuilt from PostgreSQL. */
  readonly onValkeyFallback: (tenantId: string, err: unknown) => void;
  /** The state was rebuilt from PostgreSQL (`stale`: Valkey held another seq). */
  readonly onRebuilt?: (tenantId: string, reason: "stale" | "valkey_unavailable") => void;
  /** Storing the state in Valkey after the commit failed, or found a newer state. */
  readonly onCommitProblem: (tenantId: string, problem: { err?: unknown; newer?: number | null }) => void;
  /** Every evaluation that judged, committed or not (the history checker's input; logs). */
  readonly onEvaluation?: (record: EvaluationRecord) => void;
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
      /** Evaluated while Valkey was unavailable (state rebuilt from PostgreSQL, not stored). */
      readonly degraded: boolean;
      readonly stateSource: StateSource;
      readonly pairFailures: readonly PairFailure[];
      /** Every reading judged. */
      readonly readings: readonly Reading[];
      /** The fence seq this evaluation committed. */
      readonly seq: number;
    }
  /** A newer evaluation of the tenant committed first (fence): this one wrote nothing. */
  | { readonly kind: "stale"; readonly loadedSeq: number }
  /** Another evaluator holds this tenant-slot's lease (a hand-off): it does the slot's work. */
  | { readonly kind: "conflict"; readonly holder: string | null }
  /** Not owned, and Valkey is unavailable: the lease fails closed. */
  | { readonly kind: "skipped"; readonly err: unknown }
  /** Over a tenant limit: not planned, nothing read, taken or written (the fence stays). */
  | { readonly kind: "over_limit"; readonly exceeded: LimitExceeded };

/**
 * Lease TTL: until the end of the slot after the claimed one. A tick may run early in a slot (a
 * NOTIFY), and another evaluator may tick the same slot as late as its end plus an overrun, so
 * the lease outlives every moment at which anyone could still try the slot.
 */
export function leaseTtlMs(slot: number, now: number, intervalMs: number): number {
  return Math.max(intervalMs, (slot + 2) * intervalMs - now);
}

/**
 * One tenant, one tick (DESIGN §4–5). Exactly-once rests on the tenant's fence in PostgreSQL
 * (`data.fence`, read in the same statement as the readings): the readings are those no committed
 * evaluation judged, and the commit moves the fence `seq → seq + 1` with the alert writes, or —
 * when a newer evaluation committed first — writes nothing (`stale`).
 * 1. parse the rule rows — a malformed row is quarantined alone;
 * 2. plan the (rule, device) pairs (pure) — unless they are more than `limits.maxPairs`, counted
 *    without building them: the tenant is then `over_limit`, and nothing is read or written;
 * 3. the state the fence's evaluation left: this process's copy or Valkey's when it carries the
 *    fence's seq, else rebuilt from PostgreSQL (a flush, a failover, a failed store, Valkey down —
 *    so a Valkey loss changes no decision). A tenant in a hand-off takes the tick lease first: held
 *    by someone else → `conflict` (that evaluator does the slot). Valkey unavailable → an owned
 *    tenant is evaluated on the rebuilt state; a tenant this shard no longer owns is `skipped`;
 * 4. advance the state by this tick's readings and evaluate (pure);
 * 5. commit: fence and all alert writes of the tenant in one statement;
 * 6. store the new state in Valkey, labelled with the new seq (a cache: a failure here loses
 *    nothing, the next evaluation rebuilds).
 * An error before the commit gives a taken lease back, so another evaluator may take the slot; the
 * budget (`signal`, and `deadline` on the clock) is checked before evaluating and before writing.
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
  const fence = data.fence;
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
  // Before planning: a plan, its state and its evaluation grow with the pairs, all on the event
  // loop, where no budget timer can cut them short.
  const exceeded = ctx.limits ? checkPairs(input, ctx.limits) : null;
  if (exceeded) return { kind: "over_limit", exceeded };
  const plan = planTenant(input);
  // Only a tenant another shard may be evaluating too needs the lease (work of a slot done once);
  // correctness never rests on it, the fence refuses whatever is stale.
  const lease: TickLease | undefined =
    member.handoff || !member.owned
      ? {
          tenantId,
          slot: tick.slot,
          token: ctx.token,
          ttlMs: leaseTtlMs(tick.slot, tick.now, ctx.intervalMs),
        }
      : undefined;

  let snapshot: TenantSnapshot;
  let source: StateSource;
  /** `null`: Valkey was unavailable (the state is rebuilt, nothing is stored). */
  let load: TenantLoad | null = null;
  let leased = false;
  try {
    try {
      load = await ctx.breakers.valkey.run(() => ctx.state.loadTenantState(plan, fence, { lease }));
    } catch (err) {
      if (!member.owned) {
        // A read can fail after it took the lease: give it back, so the tenant's owner is not
        // refused the slot. Owned tenants go on (their state is rebuilt below).
        if (lease) await releaseQuietly(ctx, lease);
        return { kind: "skipped", err };
      }
      ctx.onValkeyFallback(tenantId, err);
    }
    if (load?.kind === "held") return { kind: "conflict", holder: load.holder };
    leased = lease !== undefined && load !== null;
    if (load?.kind === "state") {
      snapshot = load.snapshot;
      source = load.source;
    } else {
      ctx.onRebuilt?.(tenantId, load === null ? "valkey_unavailable" : "stale");
      snapshot = await postgres(ctx, () => ctx.rebuild(plan, fence, tick.now));
      snapshot.seq = fence.seq;
      snapshot.at = fence.evalMs;
      source = "rebuilt";
    }
  } catch (err) {
    if (leased && lease) await releaseQuietly(ctx, lease);
    throw err;
  }

  const degraded = load === null;
  let committed = false;
  try {
    // Test-only: strikes after the state load and the lease, like a real slow or crashing evaluation.
    if (ctx.faults) await ctx.faults.beforeEvaluate({ tenantId, rules }, signal);
    checkBudget(ctx, signal, deadline);
    // Cooldowns run on the tick clock (the rules' `now`), so every evaluator, a replay and a
    // rebuild from PostgreSQL agree on when one ends.
    // Advances `snapshot` in place: from here it is this evaluation's, and dropped unless committed.
    const step = advanceTick(snapshot, plan, tick.now);
    const evaluation = evaluateTenant({ ...input, state: step.state, plan });
    const rulesById = new Map(rules.map((r) => [r.id, r]));
    const writes = buildAlertWrites(tenantId, rulesById, evaluation, data.openPairs, data.maintenance);
    // Also by the clock: a long synchronous evaluation keeps the budget timer from firing.
    checkBudget(ctx, signal, deadline);
    const record = (outcome: EvaluationRecord["outcome"]) =>
      ctx.onEvaluation?.({
        tenantId,
        evaluator: ctx.token,
        now: tick.now,
        slot: tick.slot,
        loadedSeq: fence.seq,
        outcome,
        stateSource: source,
        readings,
        rules,
        deviceIds: data.deviceIds,
        maintenance: data.maintenance,
      });
    let result: WriteResult;
    try {
      result = await postgres(ctx, () =>
        ctx.store.commitEvaluation(tenantId, writes, { fence, nowMs: tick.now, evaluator: ctx.token }),
      );
    } catch (err) {
      record("failed");
      throw err;
    }
    committed = true;
    if (!result.applied) {
      record("refused");
      ctx.state.forget(tenantId);
      return { kind: "stale", loadedSeq: fence.seq };
    }
    record("committed");

    applyCommit(snapshot, evaluation.stateUpdates, tick.now);
    snapshot.seq = fence.seq + 1;
    snapshot.at = tick.now;
    if (!degraded) {
      // A delta on the state it was computed from; after a rebuild, the whole state.
      const delta: StateDelta | null =
        source === "rebuilt"
          ? null
          : {
              from: { seq: fence.seq, at: fence.evalMs },
              writes: commitOps(evaluation.stateUpdates, tick.now, step),
            };
      try {
        const stored = await ctx.breakers.valkey.run(() => ctx.state.storeTenantState(plan, snapshot, delta));
        if (!stored.stored) ctx.onCommitProblem(tenantId, { newer: stored.newer });
      } catch (err) {
        // Committed in PostgreSQL; Valkey keeps the previous seq, so the next evaluation rebuilds.
        ctx.state.forget(tenantId);
        ctx.onCommitProblem(tenantId, { err });
      }
    }
    return {
      kind: "evaluated",
      pairs: evaluation.conditions.length,
      writes,
      written: result,
      suppressedByCooldown: evaluation.suppressedByCooldown,
      degraded,
      stateSource: source,
      pairFailures: evaluation.failures,
      readings,
      seq: fence.seq + 1,
    };
  } catch (err) {
    ctx.state.forget(tenantId);
    if (leased && lease && !committed) await releaseQuietly(ctx, lease);
    throw err;
  }
}

/** Runs a PostgreSQL step; an outage (or an open breaker) becomes a DependencyUnavailableError. */
async function postgres<T>(ctx: PipelineContext, step: () => Promise<T>): Promise<T> {
  try {
    return await ctx.breakers.postgres.run(step);
  } catch (err) {
    throw err instanceof CircuitOpenError || isPostgresOutage(err)
      ? new DependencyUnavailableError("postgres", err)
      : err;
  }
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
