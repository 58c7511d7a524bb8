import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { collectProcessMetrics, GAUGES_NAMED_AS_COUNTERS } from "./defaultMetrics.ts";

describe("collectProcessMetrics", () => {
  it("registers the default metrics but no gauge named like a counter", async () => {
    const registry = new Registry();
    collectProcessMetrics(registry);
    const metrics = await registry.getMetricsAsJSON();
    const names = metrics.map((m) => m.name);
    expect(names).toContain("nodejs_active_handles");
    expect(names).toContain("process_cpu_user_seconds_total");
    for (const name of GAUGES_NAMED_AS_COUNTERS) expect(names).not.toContain(name);
    const gaugesNamedTotal = metrics.filter((m) => String(m.type) === "gauge" && m.name.endsWith("_total"));
    expect(gaugesNamedTotal.map((m) => m.name)).toEqual([]);
  });
});
