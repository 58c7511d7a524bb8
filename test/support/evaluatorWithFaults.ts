#!/usr/bin/env node
import { ConfigError } from "../../evaluator/src/config/evaluatorConfig.ts";
import { main } from "../../evaluator/src/main.ts";
/**
 * `evaluator` with fault hooks, for the tests and the chaos run only: reads EVALUATOR_TEST_DELAY_TENANT,
 * EVALUATOR_TEST_POISON_RULE and EVALUATOR_TEST_CLOCK_SKEW_DIR (see ./evaluatorFaults.ts) and
 * injects them into `main`. The
 * product's own entry point (evaluator/bin/evaluator.ts) has no such hooks and reads no such
 * variable. test/support/evaluatorProcess.ts starts this one only when a test sets one of them.
 */
import { systemClock } from "../../runtime/clock.ts";
import {
  clockSkewMs,
  createEvaluatorFaults,
  type EvaluatorFaultSpec,
  parseEvaluatorFaults,
  skewedClock,
} from "./evaluatorFaults.ts";

let spec: EvaluatorFaultSpec | null;
let skewMs: number;
try {
  spec = parseEvaluatorFaults(process.env);
  skewMs = clockSkewMs(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // Exit like the evaluator does for an invalid setting.
  process.stderr.write(`evaluator: invalid configuration: ${err.message}\n`);
  process.exit(2);
}
// The same clock the evaluator's program runs on, so a delay and the budget measure alike.
const clock = skewMs === 0 ? systemClock : skewedClock(systemClock, skewMs);
process.exit(
  await main(process.argv, {
    ...(spec ? { faults: createEvaluatorFaults(spec, clock) } : {}),
    ...(skewMs === 0 ? {} : { clock }),
  }),
);
