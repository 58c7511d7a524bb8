import type { Reading, Rule } from "../rules/types.ts";
import type { Maintenance } from "../store/alertWrites.ts";

/**
 * Where the state an evaluation started from came from:
 * - `kept`: this process's copy of the state its own last commit wrote (the fence's seq matched);
 * - `valkey`: read from Valkey, whose state carried the fence's seq;
 * - `rebuilt`: Valkey held no state of that seq (flushed, failed over, a lagging commit, Valkey
 *   unreachable), so it was rebuilt from PostgreSQL (`telemetry`, `alerts`).
 */
export type StateSource = "kept" | "valkey" | "rebuilt";

/**
 * What one evaluation of one tenant judged, and how it ended: emitted by the tenant pipeline for
 * every evaluation that got as far as judging (`onEvaluation`), whether its commit was applied or
 * refused. It carries every input of the judgement, so a checker can replay the committed ones in
 * fence order on a single healthy evaluator and compare.
 */
export interface EvaluationRecord {
  readonly tenantId: string;
  /** Lease token of the evaluating process. */
  readonly evaluator: string;
  /** Tick timestamp (the rules' `now`). */
  readonly now: number;
  readonly slot: number;
  /** The fence's seq the evaluation started from (0: the tenant's first). */
  readonly loadedSeq: number;
  /**
   * `committed`: the fence moved loadedSeq → loadedSeq + 1 with this evaluation's alert writes;
   * `refused`: a newer evaluation had committed first, nothing was written;
   * `failed`: the commit failed (PostgreSQL error): nothing was written either.
   */
  readonly outcome: "committed" | "refused" | "failed";
  readonly stateSource: StateSource;
  /** The readings judged: every reading between the fence's position and this read's. */
  readonly readings: readonly Reading[];
  readonly rules: readonly Rule[];
  readonly deviceIds: readonly string[];
  readonly maintenance: Maintenance;
}
