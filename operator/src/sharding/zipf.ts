/**
 * Heavy-tailed tenant weights for tests and the planner benchmark: real tenant loads follow
 * Zipf's law (a few tenants carry much of the load), which is where balancing is hard.
 */

/**
 * Quantile function of Zipf's law with exponent `exponent` truncated to weights 1 .. `maxWeight`,
 * in its usual continuous approximation (a power law on [1, maxWeight + 1), rounded down). Feed it
 * a uniform `u` in [0, 1) to draw a weight: P(weight ≥ k) falls like k^(1 − exponent).
 */
export function zipfQuantile(u: number, exponent: number, maxWeight: number): number {
  const top = maxWeight + 1;
  const clamped = Math.min(Math.max(u, 0), 1);
  // exponent 1 is the limit of the general formula (x = top^u); elsewhere invert the CDF directly.
  const x =
    Math.abs(exponent - 1) < 1e-12
      ? top ** clamped
      : (1 + clamped * (top ** (1 - exponent) - 1)) ** (1 / (1 - exponent));
  return Math.min(maxWeight, Math.max(1, Math.floor(x)));
}
