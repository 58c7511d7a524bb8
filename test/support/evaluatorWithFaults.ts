#!/usr/bin/env node
import { ConfigError } from "../../evaluator/src/config/evaluatorConfig.ts";
import { main } from "../../evaluator/src/main.ts";
/**
 * `evaluator` with fault hooks, for the integration tests only: reads EVALUATOR_TEST_DELAY_TENANT
 * and EVALUATOR_TEST_POISON_RULE (see ./evaluatorFaults.ts) and injects them into `main`. The
 * product's own entry point (evaluator/bin/evaluator.ts) has no such hooks and reads no such
 * variable. test/support/evaluatorProcess.ts starts this one only when a test sets one of them.
 */
import { systemClock } from "../../runtime/clock.ts";
import { createEvaluatorFaults, type EvaluatorFaultSpec, parseEvaluatorFaults } from "./evaluatorFaults.ts";

let spec: EvaluatorFaultSpec | null;
try {
  spec = parseEvaluatorFaults(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // Exit like the evaluator does for an invalid setting.
  process.stderr.write(`evaluator: invalid configuration: ${err.message}\n`);
  process.exit(2);
}
// The same clock the evaluator's program runs on, so a delay and the budget measure alike.
process.exit(await main(process.argv, spec ? { faults: createEvaluatorFaults(spec, systemClock) } : {}));
