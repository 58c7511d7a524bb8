/**
 * Fault hooks for tests, injected at the composition root: `main(argv, { faults })`, called only by
 * a test entry point (test/support/evaluatorWithFaults.ts). The product's entry point
 * (evaluator/bin/evaluator.ts) passes none, and nothing in the evaluator reads a fault from its
 * configuration or environment.
 */
import type { Rule } from "../rules/types.ts";

/** A tenant about to be evaluated, as a fault hook sees it. */
export interface TenantUnderEvaluation {
  readonly tenantId: string;
  /** The tenant's rules that parsed (quarantined rows are not among them). */
  readonly rules: readonly Rule[];
}

/** Test-only hooks into the tick; absent in production, where the pipeline calls nothing. */
export interface EvaluatorFaults {
  /**
   * Called for every tenant once its state is loaded (and its tick lease, if any, taken), before
   * the budget check and the evaluation, like a real slow or crashing evaluation. It may wait (a
   * slow tenant: `signal` aborts when the tenant's budget is spent) and throw (a crashing one: the
   * tenant fails and gives its lease back).
   */
  beforeEvaluate(tenant: TenantUnderEvaluation, signal: AbortSignal): Promise<void>;
}
