import type { Operator } from "./types.ts";

/**
 * `value <operator> threshold`. Equality is exact (IEEE 754), as stored: a rule that needs a
 * tolerance should use a pair of inequalities instead.
 */
export function compare(value: number, operator: Operator, threshold: number): boolean {
  switch (operator) {
    case ">":
      return value > threshold;
    case ">=":
      return value >= threshold;
    case "<":
      return value < threshold;
    case "<=":
      return value <= threshold;
    case "==":
      return value === threshold;
    case "!=":
      return value !== threshold;
  }
}
