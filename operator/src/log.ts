import pino from "pino";

export type Logger = pino.Logger;

/** The operator's JSON logger (pino). Fields, not interpolated strings: `log.info({ shard }, "Applied Deployment")`. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { component: "evaluator-operator" } }, destination);
}
