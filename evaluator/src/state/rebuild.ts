/**
 * Rebuilding a tenant's evaluation state from PostgreSQL, the truth of which Valkey is a cache
 * (DESIGN §4): when Valkey holds no state of the fence's seq (flushed, failed over, a commit that
 * lagged PostgreSQL, Valkey unreachable), the state the tenant had after its last committed
 * evaluation is derived from `telemetry` (the readings those evaluations judged) and `alerts`.
 *
 * The result is what {@link advanceTick} expects to start from: state BEFORE this tick's new readings
 * are appended (advanceTick appends and trims them), for every pair of the plan.
 *
 * What is rebuilt, per pair, and how close it is to the state an uninterrupted cache would hold:
 * - window buffers (window rules, `rising` patterns): exact — see {@link rebuildSnapshot};
 * - anomaly statistics: the newest R judged readings replayed; equal when the pair has learned at
 *   most R readings, else within a documented bound;
 * - last-seen (`absent` patterns): exact when the pair ever had a reading, else approximate (within
 *   about one interval);
 * - lifecycle: exact from the open alert row, or the open suppression (a fire held back by a
 *   maintenance window, migration 000010); cooldowns from the newest of either.
 *
 * Limits (documented, not fixed):
 * - a fire of a device that reports without being registered writes no alert row (the commit
 *   skips it): its lifecycle and cooldown are not rebuilt (the pair looks inactive and cool; the
 *   next true condition fires again, and is skipped again);
 * - a severity that escalated while its fire was held back by maintenance is rebuilt at the
 *   suppressed fire's severity; the next tick escalates it again, as it is due;
 * - a fire that landed on an alert still open in PostgreSQL (Valkey had lost the lifecycle) kept
 *   that row's first_seen: the rebuilt `since` and cooldown start at the older time;
 * - cooldowns are exact only on the tick clock (the evaluator's since the cooldowns end `ttl` after
 *   the tick time, which is the alert's first_seen); a caller passing a wall clock as `wallNow`
 *   keeps or drops a cooldown by that clock instead;
 * - readings judged before the pair entered the plan (a rule created, or a device registered, after
 *   them) never reached the pair's buffer or statistics, but the rebuild counts them;
 * - a reading that arrived with a ts at or before the statistics' lastTs was skipped by the
 *   uninterrupted learning (anomalyCondition) but is replayed when it is among the newest R.
 */
import { readFileSync } from "node:fs";
import { type AnomalyStats, EMPTY_STATS, learnSample } from "../rules/anomaly.ts";
import type { PairPlan, TenantPlan } from "../rules/planTenant.ts";
import { type AnomalyParams, SEVERITIES, type Severity, type WindowEntry } from "../rules/types.ts";
import type { Queryable, Statement } from "../store/pgStore.ts";
import { emptySnapshot, type TenantSnapshot } from "./tenantSnapshot.ts";
import { encodeBuffer } from "./valueEncoding.ts";

/** The fence the rebuilt state belongs to (a `tenant_fences` row). */
export interface RebuildFence {
  /** The evaluation sequence the rebuilt state is the state of (the snapshot's `seq`). */
  readonly seq: number;
  /** `tenant_fences.judged` (pg_snapshot, as text): the readings visible in it were judged; `null`: none. */
  readonly judged: string | null;
  /** `tenant_fences.eval_ms`: tick time of evaluation `seq` (the snapshot's `at`; absent: unknown). */
  readonly evalMs?: number | null;
}

/** One row of `rebuild_state.sql`: what PostgreSQL holds of one pair of the plan. */
export interface RebuildRow {
  /** 1-based position of the pair in the plan. */
  readonly pair: number;
  /** `[ts ms, value]` of judged readings of (device, metric), in any order; `null`: none. */
  readonly readings: readonly (readonly [number, number])[] | null;
  /** Absent pairs without readings: the latest of the tenant's first evaluation, device and rule creation (ms). */
  readonly seen_fallback_ms: number | null;
  /**
   * The pair's open alert, else its open suppression, else the later-starting of its newest alert
   * and newest suppression: state (`open` / `resolved` / `ended`), severity, first_seen (ms).
   */
  readonly alert_state: string | null;
  readonly alert_severity: string | null;
  readonly alert_first_seen_ms: number | null;
}

/** Most readings replayed into one pair's anomaly statistics. */
export const MAX_ANOMALY_REPLAY = 20_000;

/**
 * How many of the newest judged readings are replayed into an anomaly pair's statistics:
 * R = min(max(20·span, minSamples), {@link MAX_ANOMALY_REPLAY}).
 *
 * Why 20·span: `learnSample` is exact (Welford) for the first `span` samples, then an exponentially
 * weighted mean/variance with α = 1/span. Started from EMPTY_STATS on the newest R readings, the
 * replay runs the same recursion as the uninterrupted statistics over the last R − span of them;
 * a difference in the mean after the first `span` replayed samples (at most the range of the
 * values) shrinks by (1 − α) per step, so the rebuilt mean differs from the uninterrupted one by at
 * most w·range, w = (1 − 1/span)^(R − span) — the weight left on the forgotten history, ≤ e^−19
 * ≈ 6·10^−9 for R = 20·span; the variance, whose recursion also sees that mean difference, by at
 * most (1 + 2(R − span)/span)·w·range² (39·w·range² for R = 20·span). When the pair has learned at most R
 * readings in all, the replay is the same sequence of operations: the statistics are equal.
 * `n` then counts only the replayed samples (it only gates `minSamples`, hence the max with it:
 * a rebuilt pair is not silenced while it re-counts).
 * Beyond the cap (span > 1000) the bound does not hold: the rebuilt statistics are those of the
 * newest 20 000 readings only.
 */
export function anomalyReplayCount(params: Pick<AnomalyParams, "span" | "minSamples">): number {
  return Math.min(Math.max(20 * params.span, params.minSamples), MAX_ANOMALY_REPLAY);
}

/** How many of the newest judged readings of the pair's (device, metric) the rebuild reads. */
function readingsToRead(pair: PairPlan): number {
  if (pair.window) return pair.window.maxLen;
  if (pair.rule.type === "anomaly") return anomalyReplayCount(pair.rule.params);
  if (pair.lastSeen) return 1;
  return 0;
}

let rebuildSql: string | null = null;

/** The SQL text, read on first use (not at import time) from the store's sql folder. */
function rebuildStateSql(): string {
  rebuildSql ??= readFileSync(new URL("../store/sql/rebuild_state.sql", import.meta.url), "utf8");
  return rebuildSql;
}

/**
 * The `rebuild_state.sql` statement for a plan (the pairs as parallel arrays, in plan order);
 * `null` for a plan without pairs, which has nothing to read.
 */
export function buildRebuildStatement(plan: TenantPlan, fence: RebuildFence): Statement | null {
  const pairs = plan.pairs;
  if (pairs.length === 0) return null;
  return {
    name: "eo_rebuild_state",
    text: rebuildStateSql(),
    values: [
      plan.tenantId,
      fence.judged,
      plan.now,
      pairs.map((p) => p.rule.id),
      pairs.map((p) => p.deviceId),
      pairs.map((p) => p.rule.metric),
      pairs.map((p) => p.window?.windowMs ?? null),
      pairs.map(readingsToRead),
      pairs.map((p) => p.lastSeen),
    ],
  };
}

/** Finite readings of a row, oldest first (the statement sends them newest first). */
function entriesOf(row: RebuildRow): WindowEntry[] {
  const out: WindowEntry[] = [];
  const readings = row.readings ?? [];
  for (let i = readings.length - 1; i >= 0; i--) {
    const [ts, value] = readings[i]!;
    if (Number.isFinite(ts) && Number.isFinite(value)) out.push({ ts, value });
  }
  // Already sorted when the rows came in the statement's order; the sort only guards the contract.
  return out.sort((a, b) => a.ts - b.ts);
}

/**
 * The pure part of a rebuild: the state of the plan's pairs after the tenant's last committed
 * evaluation, from the rows `rebuild_state.sql` returned for `buildRebuildStatement(plan, fence)`.
 * `wallNow` is the clock cooldown end times are on: the tick time (`plan.now`) in the evaluator,
 * whose cooldowns end `cooldown_seconds` after the tick that fired, i.e. after the alert's
 * first_seen. Per pair:
 *
 * - window buffer (`pair.window`): the newest `maxLen` judged readings with ts > plan.now − windowMs
 *   (no upper bound: readings from the future count, as in appendToWindow), oldest first. This is
 *   what the uninterrupted buffer holds once this tick's trim is applied. By induction over the
 *   ticks, appendToWindow leaves B_k = newest maxLen of (J_k ∩ (now_k − W, ∞)), J_k the readings
 *   judged through tick k: B_k is the newest maxLen of (B_(k−1) ∪ new_k) ∩ (now_k − W, ∞), and a
 *   judged reading that B_(k−1) (or the append) left out was either outside the window already
 *   (so still outside: now_k ≥ now_(k−1)) or older than maxLen readings B_(k−1) kept, which are in
 *   the window whenever it is, so it is not among the newest maxLen now either. A reading
 *   identical to a stored one is stored once; (device, metric, ts) is the telemetry primary key, so
 *   judged readings never tie. The buffer the last evaluation stored may differ from
 *   this one only by entries at or before plan.now − W, which advanceTick trims from both.
 * - anomaly statistics (`pair.anomaly`): the newest R judged readings ({@link anomalyReplayCount})
 *   replayed oldest first through `learnSample` from EMPTY_STATS, skipping a reading at or before
 *   the statistics' lastTs as anomalyCondition does; none → no statistics (learning starts over).
 * - last-seen (`pair.lastSeen`): the newest judged reading's ts, whatever its age. With none, when
 *   the pair was first seen (advanceTick seeded it with that tick's time) is not stored: the latest
 *   of the tenant's first evaluation and the device's and rule's creation stands for it. The pair
 *   was first planned on the first tick after all three, so the seed is later by less than one
 *   interval (more if the rule was enabled long after its creation), or earlier by how late the
 *   tenant's first evaluation committed (first_evaluated_at is its commit time, the seed its tick
 *   time): an `absent` fires that much earlier, or later. None of them → absent (advanceTick seeds
 *   it with this tick's time).
 *   A reading judged with a ts older than a seed it did not move is not told apart either.
 * - lifecycle: an open alert row, or an open suppression row (a fire held back by maintenance:
 *   the lifecycle fired, no alert opened) → firing since its first_seen, with its severity.
 * - cooldown: rules with cooldown_seconds > 0 end it at the newest alert or suppression row's
 *   first_seen + cooldown, kept only when after `wallNow`.
 *
 * `covered` is every pair of the plan, `seq` and `at` the fence's: the snapshot is the state of that
 * evaluation.
 * Rows of positions outside the plan are ignored.
 */
export function rebuildSnapshot(
  plan: TenantPlan,
  rows: readonly RebuildRow[],
  fence: RebuildFence,
  wallNow: number,
): TenantSnapshot {
  const snapshot = emptySnapshot();
  snapshot.seq = fence.seq;
  snapshot.at = fence.evalMs ?? null;
  for (const pair of plan.pairs) snapshot.covered.add(pair.key);
  for (const row of rows) {
    const pair = plan.pairs[row.pair - 1];
    if (pair === undefined) continue;
    const key = pair.key;
    const entries = entriesOf(row);
    if (pair.window) {
      const cutoff = plan.now - pair.window.windowMs;
      // The statement bounds ts at the instant; sub-millisecond ts truncated onto the cutoff are
      // outside the window in milliseconds, as appendToWindow sees them.
      let from = 0;
      while (from < entries.length && !(entries[from]!.ts > cutoff)) from++;
      from = Math.max(from, entries.length - pair.window.maxLen);
      const kept = from === 0 ? entries : entries.slice(from);
      if (kept.length > 0) snapshot.buffers.set(key, { entries: kept, stored: encodeBuffer(kept) });
    }
    if (pair.anomaly && pair.rule.type === "anomaly") {
      const span = pair.rule.params.span;
      let stats: AnomalyStats = EMPTY_STATS;
      for (const e of entries) {
        if (stats.lastTs !== null && e.ts <= stats.lastTs) continue;
        stats = learnSample(stats, e.value, e.ts, span);
      }
      if (stats.n > 0) snapshot.anomalies.set(key, stats);
    }
    if (pair.lastSeen) {
      const seen = entries.at(-1)?.ts ?? row.seen_fallback_ms;
      if (seen !== null && Number.isFinite(seen)) snapshot.seen.set(key, String(seen));
    }
    const since = row.alert_first_seen_ms;
    if (since === null || !Number.isFinite(since)) continue;
    const severity = row.alert_severity as Severity | null;
    if (row.alert_state === "open" && severity !== null && SEVERITIES.includes(severity)) {
      snapshot.alerts.set(key, { active: true, since, severity });
    }
    if (pair.rule.cooldownSeconds > 0) {
      const until = since + pair.rule.cooldownSeconds * 1000;
      if (until > wallNow) snapshot.cooldownUntil.set(key, until);
    }
  }
  return snapshot;
}

/**
 * Rebuilds the state of the plan's pairs from PostgreSQL as of the fence (see
 * {@link rebuildSnapshot}): ONE statement (`rebuild_state.sql`, prepared per connection as
 * `eo_rebuild_state`) whatever the number of pairs; a plan without pairs makes none.
 */
export async function readRebuiltState(
  db: Queryable,
  plan: TenantPlan,
  fence: RebuildFence,
  wallNow: number,
): Promise<TenantSnapshot> {
  const statement = buildRebuildStatement(plan, fence);
  const rows =
    statement === null ? [] : (await db.query<RebuildRow & Record<string, unknown>>(statement)).rows;
  return rebuildSnapshot(plan, rows, fence, wallNow);
}
