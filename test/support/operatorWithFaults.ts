#!/usr/bin/env node
/**
 * `evaluator-operator` with a crash hook, for the e2e crash tests only: the process kills itself
 * with SIGKILL when the reconcile reaches the fault point named by EO_FAULT_CRASH_AT (see
 * FaultPoint in operator/src/reconcile/reconcileShardSet.ts). The product's own entry point
 * (operator/bin/evaluator-operator.ts) has no such hook and reads no such variable.
 */
import { main } from "../../operator/src/main.ts";
import type { FaultPoint } from "../../operator/src/reconcile/reconcileShardSet.ts";

const crashAt = process.env["EO_FAULT_CRASH_AT"] as FaultPoint | undefined;
process.exit(
  await main(process.argv, {
    faults: (point) => {
      if (point !== crashAt) return;
      process.stdout.write(`${JSON.stringify({ level: 40, msg: "Fault injection: crashing", point })}\n`);
      process.kill(process.pid, "SIGKILL");
    },
  }),
);
