import type { FailureReason } from "../metrics.ts";

/**
 * Failure reasons that are a shortage of capacity: the evaluation did not get done in its slot
 * because the shard had too much to do. The other reasons (a defect, a dependency outage) are not
 * cured by more shards, so they never count as backlog; `evaluator_tenant_failures_total` shows them.
 */
const CAPACITY_REASONS: ReadonlySet<FailureReason> = new Set<FailureReason>(["over_budget", "still_running"]);

/**
 * The backlog of one tick, which `evaluator_queue_depth_held` reports once the tick completes:
 * the evaluations of the tenants the shard owns (a tenant handed off to another shard counts on
 * its new owner only; the tick runner passes owned tenants alone) due in the tick that did not
 * reach a result by the tick's deadline
 * (tick start + interval, when the next slot's work is due). That is every due evaluation except
 *  - those that reached a result (evaluated, refused as stale, or left to the evaluator holding
 *    the tenant's lease) at or before the deadline, and
 *  - those that failed for a reason more capacity would not cure (error, PostgreSQL or Valkey
 *    unavailable).
 * So it counts the evaluations that finished late (queued behind others past the deadline), were
 * cut at their budget (still running, abandoned), were skipped because an earlier evaluation of
 * the tenant was still running, or were never started (the tick was stopped). A healthy tick has 0.
 *
 * Pure bookkeeping: the caller passes the times, so it is tested without a clock.
 */
export class TickBacklog {
  readonly #deadline: number;
  #due = 0;
  #onTime = 0;
  #excused = 0;

  /** @param tickNow the tick's start (epoch ms); @param intervalMs the tick interval. */
  constructor(tickNow: number, intervalMs: number) {
    this.#deadline = tickNow + intervalMs;
  }

  /** The moment by which every due evaluation should have reached a result (epoch ms). */
  get deadline(): number {
    return this.#deadline;
  }

  /** `count` more tenant evaluations are due in this tick. */
  due(count: number): void {
    this.#due += count;
  }

  /** A due evaluation reached a result (evaluated, stale or lease conflict) at `at` (epoch ms). */
  done(at: number): void {
    if (at <= this.#deadline) this.#onTime++;
  }

  /** A due evaluation failed with `reason`. */
  failed(reason: FailureReason): void {
    if (!CAPACITY_REASONS.has(reason)) this.#excused++;
  }

  /**
   * A due evaluation was held back because its tenant is over a limit (pairs, readings). Never
   * backlog: a tenant is evaluated by one shard, so more shards would not get it evaluated.
   */
  heldBack(): void {
    this.#excused++;
  }

  /** Due evaluations not done by the deadline (see the class). */
  get value(): number {
    return Math.max(0, this.#due - this.#onTime - this.#excused);
  }
}
