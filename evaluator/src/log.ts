import pino from "pino";

export type Logger = pino.Logger;

/**
 * The evaluator's JSON logger (pino). Messages are stable snake_case names (`tick_done`,
 * `tenant_failed` …) that dashboards and tests match on; details go in fields, never interpolated.
 *
 * The default destination is stdout written synchronously: pino's default asynchronous writer can
 * reorder the last lines when the process exits (a write in flight while the exit flush writes the
 * rest), and the shutdown lines are exactly the ones an operator reads.
 */
export function createLogger(
  level: string,
  bindings: Record<string, unknown>,
  destination: pino.DestinationStream = pino.destination({ dest: 1, sync: true }),
): Logger {
  return pino({ level, base: { component: "evaluator", ...bindings } }, destination);
}
