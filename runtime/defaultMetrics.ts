import { collectDefaultMetrics, type Registry } from "prom-client";

/**
 * prom-client's default gauges that end in `_total`. promtool rejects them (the suffix is for
 * counters); the per-type gauges without the suffix (`nodejs_active_handles` and friends) carry
 * the same numbers.
 */
export const GAUGES_NAMED_AS_COUNTERS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;

/**
 * Registers prom-client's process and Node.js metrics on `registry`, minus the gauges that
 * `promtool check metrics` rejects, so every process of the project exposes the same lint-clean set.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of GAUGES_NAMED_AS_COUNTERS) registry.removeSingleMetric(name);
}
