import type { Clock } from "../../../runtime/clock.ts";
import { errorMessage } from "../../../runtime/errors.ts";
import { isPostgresOutage } from "../../../runtime/postgresOutage.ts";
import type { Logger } from "../log.ts";
import type { EvaluatorMetrics, FailureReason } from "../metrics.ts";
import type { EvaluatorStore, MemberTenant, ShardSetInfo, TenantData } from "../store/pgStore.ts";
import { BudgetExceededError, withBudget } from "./budget.ts";
import { type CircuitBreaker, CircuitOpenError } from "./circuitBreaker.ts";
import { forEachConcurrently } from "./concurrency.ts";
import type { EvaluationRecord } from "./evaluationRecord.ts";
import type { EvaluatorFaults } from "./evaluatorFaults.ts";
import { DependencyUnavailableError } from "./outages.ts";
import {
  checkReadings,
  DEFAULT_TENANT_LIMITS,
  type LimitExceeded,
  type TenantLimits,
} from "./tenantLimits.ts";
import {
  type PipelineContext,
  type QuarantinedRule,
  runTenantPipeline,
  type StateGateway,
  type StateRebuilder,
  type TenantOutcome,
} from "./tenantPipeline.ts";
import { TickBacklog } from "./tickBacklog.ts";
import type { TickRequest } from "./tickScheduler.ts";

/** Settings a tick needs (a slice of `EvaluatorConfig`). */
export interface TickSettings {
  readonly shardSet: string;
  readonly shardIndex: number;
  readonly intervalMs: number;
  readonly tenantBudgetMs: number;
  readonly concurrency: number;
  /** Bounds of one tenant's evaluation (default {@link DEFAULT_TENANT_LIMITS}). */
  readonly tenantLimits?: TenantLimits;
}

/** Dependencies of the tick runner (parameters, never globals). */
export interface TickRunnerDeps {
  readonly settings: TickSettings;
  readonly store: EvaluatorStore;
  readonly state: StateGateway;
  /** Rebuilds a tenant's state from PostgreSQL when Valkey holds none of the fence's seq. */
  readonly rebuild: StateRebuilder;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: EvaluatorMetrics;
  readonly breakers: { readonly postgres: CircuitBreaker; readonly valkey: CircuitBreaker };
  /** Lease token, unique per process. */
  readonly token: string;
  /** Tenants per batch read (default 250). */
  readonly batchSize?: number;
  /** Every evaluation that judged, committed or not (history checker, debugging). */
  readonly onEvaluation?: (record: EvaluationRecord) => void;
  /** Test-only fault hooks, from a test entry point (absent in production). */
  readonly faults?: EvaluatorFaults;
}

/** Figures of one tick (also logged as `tick_done`). */
export interface TickSummary {
  readonly slot: number;
  readonly ok: boolean;
  /** Tenants in the membership. */
  readonly members: number;
  /** Tenant evaluations due this tick. */
  readonly tenants: number;
  readonly evaluated: number;
  /** (rule, device) pairs evaluated. */
  readonly rules: number;
  /** fire actions written (new alerts). */
  readonly alerts: number;
  readonly resolved: number;
  readonly failed: number;
  readonly conflicts: number;
  /** Evaluations refused by the tenant fence (a newer one committed first): nothing written. */
  readonly stale: number;
  /** Owned tenants evaluated while Valkey was unavailable (state rebuilt from PostgreSQL). */
  readonly degraded: number;
  /** Tenants over a limit (pairs or readings), not evaluated: their fence stays where it was. */
  readonly overLimit: number;
  /**
   * Due evaluations not done within the interval (late, over budget, skipped while still running,
   * never started): `evaluator_queue_depth_held` (see {@link TickBacklog}).
   */
  readonly backlog: number;
  readonly durationMs: number;
}

type TickCounts = { -readonly [K in keyof Omit<TickSummary, "slot" | "ok" | "durationMs">]: number };

/**
 * How one due tenant evaluation ended: a result (evaluated, stale, lease conflict), held back by a
 * tenant limit, or why it failed.
 */
type TenantEnd = "done" | "over_limit" | FailureReason;

const QUARANTINE_LOG_MEMORY = 10_000;

/**
 * How far back a tenant's FIRST evaluation reads (it has no fence yet): older readings are not
 * judged, so a tenant with a long history does not judge all of it at once. Every later evaluation
 * reads from its fence's position, whatever the readings' age.
 */
export function firstReadLookbackMs(intervalMs: number): number {
  return Math.max(3_600_000, 2 * intervalMs);
}

/**
 * Runs ticks: membership → batched reads → every due tenant through its own isolation (try/catch,
 * wall-clock budget, bounded concurrency) → summary. A tick never throws: a PostgreSQL failure
 * fails the tick cleanly (logged `tick_failed`, counted), and the next tick retries.
 *
 * A tenant is never evaluated while its previous evaluation — abandoned after its budget — is
 * still running in this process. Across processes, the tenant's fence in PostgreSQL orders the
 * evaluations and refuses a stale one (see `runTenantPipeline`).
 */
export class TickRunner {
  readonly #d: TickRunnerDeps;
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #quarantineLogged = new Set<string>();
  readonly #pipeline: PipelineContext;
  readonly #limits: TenantLimits;
  #shardSet: ShardSetInfo | null | undefined;

  constructor(deps: TickRunnerDeps) {
    this.#d = deps;
    const s = deps.settings;
    this.#limits = s.tenantLimits ?? DEFAULT_TENANT_LIMITS;
    this.#pipeline = {
      store: deps.store,
      state: deps.state,
      rebuild: deps.rebuild,
      clock: deps.clock,
      breakers: deps.breakers,
      token: deps.token,
      intervalMs: s.intervalMs,
      tenantBudgetMs: s.tenantBudgetMs,
      limits: this.#limits,
      onQuarantined: (tenant, rule) => this.#quarantined(tenant, rule),
      onValkeyFallback: (tenant, err) => {
        deps.metrics.degraded.inc();
        deps.log.debug({ tenant, err: errorMessage(err) }, "valkey_fallback");
      },
      onRebuilt: (tenant, reason) => {
        deps.metrics.stateRebuilds.inc({ reason });
        deps.log.debug({ tenant, reason }, "state_rebuilt");
      },
      onCommitProblem: (tenant, problem) => {
        deps.metrics.stateCommitFailures.inc();
        deps.log.warn(
          {
            tenant,
            err: problem.err === undefined ? undefined : errorMessage(problem.err),
            newer: problem.newer,
          },
          "state_store_failed",
        );
      },
      ...(deps.onEvaluation ? { onEvaluation: deps.onEvaluation } : {}),
      ...(deps.faults ? { faults: deps.faults } : {}),
    };
  }

  /** Waits for tenant evaluations abandoned after their budget (shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.#inFlight.values()]);
  }

  /**
   * Runs one tick for `tick.slot` at `tick.now`. `stop` (shutdown) stops starting new tenants;
   * the ones running finish (each within its budget).
   */
  async runTick(tick: TickRequest, stop?: AbortSignal): Promise<TickSummary> {
    const { clock, log, metrics, settings } = this.#d;
    const started = clock.now();
    const counts: TickCounts = {
      members: 0,
      tenants: 0,
      evaluated: 0,
      rules: 0,
      alerts: 0,
      resolved: 0,
      failed: 0,
      conflicts: 0,
      stale: 0,
      degraded: 0,
      overLimit: 0,
      backlog: 0,
    };
    const backlog = new TickBacklog(tick.now, settings.intervalMs);
    let ok = true;
    log.info(
      { slot: tick.slot, trigger: tick.trigger, tickTs: new Date(tick.now).toISOString() },
      "tick_start",
    );
    try {
      await this.#readShardSet();
      const members = await this.#d.breakers.postgres.run(() =>
        this.#d.store.readMembership(settings.shardSet, settings.shardIndex, tick.now - settings.intervalMs),
      );
      counts.members = members.length;
      metrics.tenants.set(members.length);
      this.#forgetOthers(members);
      const due = members;
      counts.tenants = due.length;
      metrics.queueDepth.set(due.length);
      // The backlog is the owner's: a tenant handed off to another shard, which this one may still
      // evaluate during the hand-off, counts on its new owner only (else one slow tenant would read
      // as two during every reshard, and the autoscaler would see load that is not there).
      backlog.due(due.filter((m) => m.owned).length);
      await this.#evaluateBatches(due, tick, counts, backlog, stop);
    } catch (err) {
      ok = false;
      log.error({ slot: tick.slot, reason: this.#pgReason(err), err: errorMessage(err) }, "tick_failed");
    } finally {
      metrics.queueDepth.set(0);
    }
    if (counts.degraded > 0) {
      // One line per tick, not one per tenant: during a Valkey outage every owned tenant degrades.
      log.warn({ slot: tick.slot, tenants: counts.degraded }, "tick_degraded");
    }
    // Set once the tick has completed and held until the next one does, so that a scrape at any
    // moment sees the last tick's backlog (the instantaneous queue depth is 0 between ticks). A tick
    // that failed before reading its membership knew nothing due: 0, as outages never count.
    counts.backlog = backlog.value;
    metrics.queueDepthHeld.set(counts.backlog);
    const durationMs = clock.now() - started;
    metrics.tickDuration.observe(durationMs / 1000);
    metrics.ticks.inc({ trigger: tick.trigger, result: ok ? "ok" : "failed" });
    const summary: TickSummary = { slot: tick.slot, ok, ...counts, durationMs };
    log.info(
      {
        slot: tick.slot,
        ok,
        tenants: counts.tenants,
        evaluated: counts.evaluated,
        rules: counts.rules,
        alerts: counts.alerts,
        resolved: counts.resolved,
        failed: counts.failed,
        conflicts: counts.conflicts,
        stale: counts.stale,
        degraded: counts.degraded,
        overLimit: counts.overLimit,
        backlog: counts.backlog,
        durationMs,
      },
      "tick_done",
    );
    return summary;
  }

  async #readShardSet(): Promise<void> {
    const { settings, log, metrics } = this.#d;
    const info = await this.#d.breakers.postgres.run(() => this.#d.store.readShardSet(settings.shardSet));
    const prev = this.#shardSet;
    this.#shardSet = info;
    if (info) {
      metrics.shardCount.set(info.shardCount);
      metrics.epoch.set(info.epoch);
    }
    const changed =
      prev === undefined ||
      (prev === null) !== (info === null) ||
      (prev !== null && info !== null && (prev.shardCount !== info.shardCount || prev.epoch !== info.epoch));
    if (changed) {
      log.info(
        {
          SHARD_INDEX: settings.shardIndex,
          SHARD_COUNT: info?.shardCount ?? null,
          epoch: info?.epoch ?? null,
        },
        "shard_config",
      );
      // Membership still comes from the tenants table; a missing row only means no operator yet.
      if (info === null) log.warn({ shardSet: settings.shardSet }, "shard_set_missing");
    }
  }

  #forgetOthers(members: readonly MemberTenant[]): void {
    const ids = new Set(members.map((m) => m.id));
    this.#d.state.retainTenants?.(ids);
    this.#d.store.retainTenants?.(ids);
  }

  /** Batches read in sequence, the next one prefetched while the current one is evaluated. */
  async #evaluateBatches(
    due: readonly MemberTenant[],
    tick: TickRequest,
    counts: TickCounts,
    backlog: TickBacklog,
    stop: AbortSignal | undefined,
  ): Promise<void> {
    const size = this.#d.batchSize ?? 250;
    const batches: MemberTenant[][] = [];
    for (let i = 0; i < due.length; i += size) batches.push(due.slice(i, i + size));
    const firstReadAfter = tick.now - firstReadLookbackMs(this.#d.settings.intervalMs);
    const load = (batch: readonly MemberTenant[]) => {
      const ids = batch.map((m) => m.id);
      const p = this.#d.breakers.postgres.run(() =>
        this.#d.store.readTenantData(ids, tick.now, firstReadAfter, this.#limits.maxReadings),
      );
      p.catch(() => undefined); // awaited below; avoid an unhandled rejection while prefetching
      return p;
    };
    let next = batches[0] ? load(batches[0]) : null;
    for (let b = 0; b < batches.length; b++) {
      const batch = batches[b]!;
      if (stop?.aborted || next === null) break;
      let data: Map<string, TenantData>;
      try {
        data = await next;
      } catch (err) {
        // The batch read failed (PostgreSQL): this batch's tenants fail; later batches are tried
        // (they fail fast while the breaker is open).
        const reason = this.#pgReason(err);
        // One line per batch (a PostgreSQL outage would otherwise log every tenant).
        this.#d.log.error(
          { slot: tick.slot, tenants: batch.length, reason, err: errorMessage(err) },
          "batch_failed",
        );
        for (const m of batch) {
          const failure = this.#failed(m.id, tick, reason, err, counts, false);
          if (m.owned) backlog.failed(failure);
        }
        this.#d.metrics.queueDepth.dec(batch.length);
        next = batches[b + 1] ? load(batches[b + 1]!) : null;
        continue;
      }
      next = batches[b + 1] && !stop?.aborted ? load(batches[b + 1]!) : null;
      await forEachConcurrently(
        batch,
        this.#d.settings.concurrency,
        async (member) => {
          try {
            const end = await this.#evaluateIsolated(member, data.get(member.id)!, tick, counts);
            if (!member.owned) return;
            if (end === "done") backlog.done(this.#d.clock.now());
            else if (end === "over_limit") backlog.heldBack();
            else backlog.failed(end);
          } finally {
            this.#d.metrics.queueDepth.dec();
          }
        },
        stop,
      );
    }
  }

  async #evaluateIsolated(
    member: MemberTenant,
    data: TenantData,
    tick: TickRequest,
    counts: TickCounts,
  ): Promise<TenantEnd> {
    const { clock, log, metrics, settings } = this.#d;
    const tenant = member.id;
    if (this.#inFlight.has(tenant)) {
      return this.#failed(tenant, tick, "still_running", undefined, counts);
    }
    // Before a reading is parsed: the batch read sent none of a tenant over the limit.
    const tooManyReadings = checkReadings(data.readingCount, this.#limits);
    if (tooManyReadings) return this.#overLimit(tenant, tick, tooManyReadings, counts);
    const readings = data.readings();
    const { result, settled } = withBudget(clock, settings.tenantBudgetMs, (signal) =>
      runTenantPipeline(this.#pipeline, member, data, readings, tick, signal),
    );
    this.#inFlight.set(tenant, settled);
    void settled.then(() => {
      if (this.#inFlight.get(tenant) === settled) this.#inFlight.delete(tenant);
    });
    let outcome: TenantOutcome;
    try {
      outcome = await result;
    } catch (err) {
      if (err instanceof BudgetExceededError) {
        log.warn({ tenant, slot: tick.slot, budgetMs: err.budgetMs }, "tenant_over_budget");
        return this.#failed(tenant, tick, "over_budget", err, counts, false);
      }
      const reason =
        err instanceof DependencyUnavailableError && err.dependency === "postgres"
          ? "postgres_unavailable"
          : "error";
      return this.#failed(tenant, tick, reason, err, counts);
    }
    switch (outcome.kind) {
      case "conflict":
        counts.conflicts++;
        metrics.leaseConflicts.inc();
        log.debug({ tenant, slot: tick.slot, holder: outcome.holder }, "tick_lease_conflict");
        return "done"; // the lease holder does the slot
      case "stale":
        counts.stale++;
        metrics.staleEvaluations.inc();
        log.info({ tenant, slot: tick.slot, seq: outcome.loadedSeq }, "evaluation_stale");
        return "done"; // a newer evaluation already committed
      case "skipped":
        return this.#failed(tenant, tick, "valkey_unavailable", outcome.err, counts);
      case "over_limit":
        return this.#overLimit(tenant, tick, outcome.exceeded, counts);
      case "evaluated": {
        const w = outcome.writes;
        counts.evaluated++;
        if (outcome.degraded) counts.degraded++;
        counts.rules += outcome.pairs;
        counts.alerts += w.counts.fire;
        counts.resolved += w.counts.resolve;
        metrics.tenantsEvaluated.inc();
        metrics.rulesEvaluated.inc(outcome.pairs);
        if (w.counts.fire > 0) metrics.alerts.inc({ action: "fire" }, w.counts.fire);
        if (w.counts.stillFiring > 0) metrics.alerts.inc({ action: "still_firing" }, w.counts.stillFiring);
        if (w.counts.resolve > 0) metrics.alerts.inc({ action: "resolve" }, w.counts.resolve);
        if (w.suppressedByMaintenance > 0) {
          metrics.alertsSuppressed.inc({ reason: "maintenance" }, w.suppressedByMaintenance);
        }
        if (outcome.suppressedByCooldown > 0) {
          metrics.alertsSuppressed.inc({ reason: "cooldown" }, outcome.suppressedByCooldown);
        }
        for (const f of outcome.pairFailures) {
          log.error(
            { tenant, rule: f.ruleId, device: f.deviceId, err: errorMessage(f.error) },
            "rule_failed",
          );
        }
        log.debug(
          {
            tenant,
            slot: tick.slot,
            rules: outcome.pairs,
            fired: w.counts.fire,
            stillFiring: w.counts.stillFiring,
            resolved: w.counts.resolve,
            suppressedByCooldown: outcome.suppressedByCooldown,
            suppressedByMaintenance: w.suppressedByMaintenance,
            degraded: outcome.degraded,
            state: outcome.stateSource,
            seq: outcome.seq,
            readings: outcome.readings.length,
          },
          "tenant_evaluated",
        );
        return "done";
      }
    }
  }

  #failed(
    tenant: string,
    tick: TickRequest,
    reason: FailureReason,
    err: unknown,
    counts: { failed: number },
    logIt = true,
  ): FailureReason {
    counts.failed++;
    this.#d.metrics.tenantFailures.inc({ reason });
    if (logIt) {
      this.#d.log.error(
        { tenant, slot: tick.slot, reason, err: err === undefined ? undefined : errorMessage(err) },
        "tenant_failed",
      );
    }
    return reason;
  }

  /**
   * A tenant over a limit is quarantined for this tick: not evaluated, nothing taken or written, so
   * its fence stays and its readings are judged by the first evaluation under the limit. Logged
   * every tick it lasts (an operator has to act: raise the limit, or shrink the tenant).
   */
  #overLimit(tenant: string, tick: TickRequest, exceeded: LimitExceeded, counts: TickCounts): "over_limit" {
    counts.overLimit++;
    this.#d.metrics.tenantsOverLimit.inc({ limit: exceeded.limit });
    this.#d.log.warn(
      { tenant, slot: tick.slot, limit: exceeded.limit, cap: exceeded.cap, count: exceeded.count },
      "tenant_over_limit",
    );
    return "over_limit";
  }

  /** Reason of a failed PostgreSQL read (membership, shard set, batch). */
  #pgReason(err: unknown): FailureReason {
    return err instanceof CircuitOpenError || isPostgresOutage(err) ? "postgres_unavailable" : "error";
  }

  #quarantined(tenant: string, rule: QuarantinedRule): void {
    this.#d.metrics.rulesQuarantined.inc();
    const key = JSON.stringify([tenant, rule.ruleId, rule.reason]);
    // Logged once per process per (rule, reason), not every tick; the metric counts every time.
    if (this.#quarantineLogged.has(key)) return;
    if (this.#quarantineLogged.size >= QUARANTINE_LOG_MEMORY) this.#quarantineLogged.clear();
    this.#quarantineLogged.add(key);
    this.#d.log.warn({ tenant, rule: rule.ruleId, reason: rule.reason }, "rule_quarantined");
  }
}
