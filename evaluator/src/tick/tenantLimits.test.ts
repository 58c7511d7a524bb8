import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anomalyRule, T0, thresholdRule, windowRule } from "../rules/fixtures.ts";
import { countPairs, planTenant, type TenantInput } from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import type { Reading, Rule } from "../rules/types.ts";
import { checkPairs, checkReadings, DEFAULT_TENANT_LIMITS } from "./tenantLimits.ts";

function input(rules: Rule[], deviceIds: string[], readings: Reading[] = []): TenantInput {
  return { tenantId: "t1", rules, deviceIds, readingsByDeviceMetric: groupReadings(readings), now: T0 };
}

const unbound = (id: string, metric = "temp") => thresholdRule({ id, device_id: null, metric });
const reading = (deviceId: string, metric = "temp"): Reading => ({
  deviceId,
  metric,
  ts: T0 - 1000,
  value: 1,
});

describe("countPairs", () => {
  it("counts rules × matching devices: a bound rule one pair, an unbound one every device plus unregistered senders of its metric", () => {
    const rules = [
      thresholdRule({ id: "bound" }), // d1 only
      unbound("all-temp"), // 3 registered + x1 (temp)
      unbound("all-hum", "hum"), // 3 registered + x2 (hum)
      windowRule({ id: "w", device_id: null }), // temp: 3 + x1
    ];
    const i = input(
      rules,
      ["d1", "d2", "d3"],
      [reading("x1"), reading("x1"), reading("x2", "hum"), reading("d2"), reading("d2", "hum")],
    );
    expect(countPairs(i)).toBe(1 + 4 + 4 + 4);
    expect(countPairs(i)).toBe(planTenant(i).pairs.length);
  });

  it("equals the plan's size over generated tenants (distinct rule ids)", () => {
    const device = fc.constantFrom("d1", "d2", "d3", "x1", "x2");
    const metric = fc.constantFrom("temp", "hum");
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            id: fc.constantFrom("r1", "r2", "r3", "r4", "r5", "r6"),
            bound: fc.option(device),
            metric,
          }),
          {
            selector: (r) => r.id,
            maxLength: 6,
          },
        ),
        fc.uniqueArray(device, { maxLength: 3 }),
        fc.array(fc.record({ deviceId: device, metric }), { maxLength: 20 }),
        (ruleSpecs, deviceIds, sent) => {
          const rules = ruleSpecs.map((r, k) =>
            (k % 2 ? anomalyRule : thresholdRule)({ id: r.id, device_id: r.bound, metric: r.metric }),
          );
          const i = input(
            rules,
            deviceIds,
            sent.map((s) => reading(s.deviceId, s.metric)),
          );
          expect(countPairs(i)).toBe(planTenant(i).pairs.length);
        },
      ),
    );
  });

  it("does not build the plan: a million pairs are counted without allocating them", () => {
    const devices = Array.from({ length: 100_000 }, (_, k) => `d${k}`);
    const rules = Array.from({ length: 10 }, (_, k) => unbound(`r${k}`));
    expect(countPairs(input(rules, devices))).toBe(1_000_000);
  });
});

describe("tenant limits", () => {
  const limits = { maxPairs: 4, maxReadings: 3 };

  it("let a tenant at the limits through", () => {
    expect(checkReadings(3, limits)).toBeNull();
    expect(checkPairs(input([unbound("r")], ["a", "b", "c", "d"]), limits)).toBeNull();
  });

  it("name the limit, the cap and the count of a tenant over one", () => {
    expect(checkReadings(4, limits)).toEqual({ limit: "readings", cap: 3, count: 4 });
    // Unregistered devices add pairs: 4 registered + 1 sender.
    expect(checkPairs(input([unbound("r")], ["a", "b", "c", "d"], [reading("x")]), limits)).toEqual({
      limit: "pairs",
      cap: 4,
      count: 5,
    });
  });

  it("default to limits above the largest tenant the product runs (2,000 sensors × a few rules, an hour of readings)", () => {
    const sensors = 2_000;
    expect(DEFAULT_TENANT_LIMITS.maxPairs).toBeGreaterThanOrEqual(sensors * 5);
    // A first evaluation reads the last hour: one reading a minute per sensor.
    expect(DEFAULT_TENANT_LIMITS.maxReadings).toBeGreaterThanOrEqual(sensors * 60);
    // Ten unbound rules over 100,000 devices are refused.
    expect(DEFAULT_TENANT_LIMITS.maxPairs).toBeLessThan(10 * 100_000);
  });
});
