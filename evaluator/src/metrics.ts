import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { TENANT_LIMIT_NAMES } from "./tick/tenantLimits.ts";

/** Why a tenant evaluation did not complete (a bounded label set, never the tenant id). */
const FAILURE_REASONS = [
  /** The pipeline threw (a defect, bad data, a failed alert write). */
  "error",
  /** Over the per-tenant wall-clock budget. */
  "over_budget",
  /** PostgreSQL was unreachable (or its circuit breaker open) for the alert write. */
  "postgres_unavailable",
  /** A tenant this shard no longer owns was skipped because Valkey (its tick lease) was unavailable. */
  "valkey_unavailable",
  /** The previous tick's evaluation of this tenant was still running (abandoned after its budget). */
  "still_running",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/**
 * Upper bounds (seconds) of `evaluator_tick_duration_seconds`. Fixed, not derived from the tick
 * interval, so that every shard and every release exports the same `le` values and
 * `sum by (le)` over any set of evaluators stays a valid histogram (bounds that moved with
 * TICK_INTERVAL_SECONDS would break it during an interval change and across shard sets).
 *
 * `histogram_quantile` cannot answer above the largest finite bound (a quantile in the `+Inf`
 * bucket reads as that bound), so the bounds reach 14,400 s: four times the longest interval an
 * EvaluatorShardSet allows (3,600 s) and 240 times the default (60 s). So a p95 above the interval
 * is measured, not clipped, for every allowed interval. Between 10 s and 1 h neighbouring bounds
 * are at most 1.5× apart, so an interpolated quantile is off by less than one bucket's width there
 * (at most 15 s around the default interval's 45–75 s).
 */
export const TICK_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 75, 90, 120, 180, 240, 300, 450, 600, 900, 1200,
  1800, 2700, 3600, 5400, 7200, 10_800, 14_400,
]);

/**
 * The evaluator's metrics, registered on the registry passed in (never prom-client's default).
 * Names are the contract the operator's autoscaler queries; `shardset`, `namespace` and `shard`
 * are set as the registry's default labels by the caller, so every series carries them.
 */
export function createEvaluatorMetrics(registry: Registry) {
  const registers = [registry];
  const tickDuration = new Histogram({
    name: "evaluator_tick_duration_seconds",
    help: "Wall-clock duration of one tick (all tenants of the shard).",
    buckets: [...TICK_DURATION_BUCKETS],
    registers,
  });
  const queueDepth = new Gauge({
    name: "evaluator_queue_depth",
    help: "Tenant evaluations due in the current tick and not yet done (0 when idle).",
    registers,
  });
  // The autoscaler's queue signal. The instantaneous gauge above is non-zero only while a tick
  // runs, a few seconds per interval, so most scrapes miss it; this one holds between ticks.
  const queueDepthHeld = new Gauge({
    name: "evaluator_queue_depth_held",
    help: "Backlog of the last completed tick, held until the next one completes: tenant evaluations due in it that did not reach a result within the tick interval (finished late, cut at their budget, skipped while an earlier evaluation still ran, or never started). Failures from defects or outages do not count. 0 when healthy.",
    registers,
  });
  const tenantsEvaluated = new Counter({
    name: "evaluator_tenants_evaluated_total",
    help: "Tenant evaluations completed (one per tenant per tick slot won).",
    registers,
  });
  const tenantFailures = new Counter({
    name: "evaluator_tenant_failures_total",
    help: "Tenant evaluations that did not complete, by reason.",
    labelNames: ["reason"] as const,
    registers,
  });
  const rulesEvaluated = new Counter({
    name: "evaluator_rules_evaluated_total",
    help: "Rule evaluations: one per (rule, device) pair per tenant evaluation.",
    registers,
  });
  const alerts = new Counter({
    name: "evaluator_alerts_total",
    help: "Alert actions decided and written to PostgreSQL, by action (fire, still_firing, resolve).",
    labelNames: ["action"] as const,
    registers,
  });
  const alertsSuppressed = new Counter({
    name: "evaluator_alerts_suppressed_total",
    help: "Alert actions held back, by reason (cooldown: a new fire within the rule's cooldown; maintenance: an active maintenance window).",
    labelNames: ["reason"] as const,
    registers,
  });
  const leaseConflicts = new Counter({
    name: "evaluator_tick_lease_conflicts_total",
    help: "Tenant evaluations skipped because another evaluator holds the tenant's tick lease for the slot.",
    registers,
  });
  const ticksMissed = new Counter({
    name: "evaluator_ticks_missed_total",
    help: "Tick slots skipped because a tick overran (no catch-up bursts).",
    registers,
  });
  const ticks = new Counter({
    name: "evaluator_ticks_total",
    help: "Ticks run, by trigger (timer, notify) and result (ok, failed).",
    labelNames: ["trigger", "result"] as const,
    registers,
  });
  const wakeups = new Counter({
    name: "evaluator_wakeups_total",
    help: "telemetry_ingest notifications received.",
    registers,
  });
  const rulesQuarantined = new Counter({
    name: "evaluator_rules_quarantined_total",
    help: "Malformed rule rows set aside (each time a tenant evaluation met one).",
    registers,
  });
  const degraded = new Counter({
    name: "evaluator_tenants_degraded_total",
    help: "Owned tenants evaluated while Valkey was unavailable (state rebuilt from PostgreSQL, not stored).",
    registers,
  });
  const stateCommitFailures = new Counter({
    name: "evaluator_state_commit_failures_total",
    help: "Valkey state stores that failed or found a newer state after the evaluation was committed.",
    registers,
  });
  const staleEvaluations = new Counter({
    name: "evaluator_stale_evaluations_total",
    help: "Evaluations refused by the tenant fence in PostgreSQL (a newer evaluation committed first): nothing written.",
    registers,
  });
  const stateRebuilds = new Counter({
    name: "evaluator_state_rebuilds_total",
    help: "Tenant states rebuilt from PostgreSQL because Valkey held no state of the fence's seq.",
    labelNames: ["reason"] as const,
    registers,
  });
  const tenantsOverLimit = new Counter({
    name: "evaluator_tenants_over_limit_total",
    help: "Tenant evaluations held back because the tenant was over a limit (pairs: TENANT_MAX_PAIRS; readings: TENANT_MAX_READINGS): not evaluated, fence unmoved, its readings judged once it is under the limit.",
    labelNames: ["limit"] as const,
    registers,
  });
  const tenants = new Gauge({
    name: "evaluator_tenants",
    help: "Tenants in this shard's membership at the last tick (owned plus handed-off ones).",
    registers,
  });
  const shardCount = new Gauge({
    // Not "…_shard_count": promtool reserves the _count suffix for histograms and summaries.
    name: "evaluator_shard_set_shards",
    help: "shard_count of the shard set, as read from PostgreSQL at the last tick.",
    registers,
  });
  const epoch = new Gauge({
    name: "evaluator_shard_set_epoch",
    help: "Fencing epoch of the shard set, as read from PostgreSQL at the last tick.",
    registers,
  });
  // What the alerting rules compare the tick latency with (monitoring/alerts.rules.yaml): an
  // interval set per shard set, so a fixed threshold in the rules would fit only one of them.
  const tickInterval = new Gauge({
    name: "evaluator_tick_interval_seconds",
    help: "Tick interval this evaluator runs at (TICK_INTERVAL_SECONDS).",
    registers,
  });
  const breakerOpen = new Gauge({
    name: "evaluator_circuit_breaker_open",
    help: "1 while the circuit breaker of a dependency is open or half-open.",
    labelNames: ["dependency"] as const,
    registers,
  });

  // Pre-create the bounded label values so every series exists from the first scrape (rate() of
  // a series that appears on its first increment misses that increment).
  for (const reason of FAILURE_REASONS) tenantFailures.inc({ reason }, 0);
  for (const action of ["fire", "still_firing", "resolve"] as const) alerts.inc({ action }, 0);
  for (const reason of ["cooldown", "maintenance"]) alertsSuppressed.inc({ reason }, 0);
  for (const trigger of ["timer", "notify"])
    for (const result of ["ok", "failed"]) ticks.inc({ trigger, result }, 0);
  for (const dependency of ["postgres", "valkey"]) breakerOpen.set({ dependency }, 0);
  for (const reason of ["stale", "valkey_unavailable"]) stateRebuilds.inc({ reason }, 0);
  for (const limit of TENANT_LIMIT_NAMES) tenantsOverLimit.inc({ limit }, 0);

  return {
    tickDuration,
    queueDepth,
    queueDepthHeld,
    tenantsEvaluated,
    tenantFailures,
    rulesEvaluated,
    alerts,
    alertsSuppressed,
    leaseConflicts,
    ticksMissed,
    ticks,
    wakeups,
    rulesQuarantined,
    degraded,
    stateCommitFailures,
    staleEvaluations,
    stateRebuilds,
    tenantsOverLimit,
    tenants,
    shardCount,
    epoch,
    tickInterval,
    breakerOpen,
  };
}

export type EvaluatorMetrics = ReturnType<typeof createEvaluatorMetrics>;
