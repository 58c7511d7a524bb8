import { describe, expect, it } from "vitest";
import {
  deviceId,
  episodes,
  HIGH_READINGS,
  HIGH_VALUE,
  JITTER,
  LOW_READINGS,
  LOW_VALUE,
  RULE,
  slotTs,
  THRESHOLD,
  tenantId,
  valueAt,
} from "./telemetry.ts";

const SLOTS = 400;
const DEVICES = [
  [tenantId(0), deviceId(0)],
  [tenantId(7), deviceId(3)],
  [tenantId(999), deviceId(199)],
] as const;

/** Run lengths of a device's values over the first SLOTS slots, as [high, length]. */
function runs(tenant: string, device: string): [boolean, number][] {
  const out: [boolean, number][] = [];
  for (let k = 0; k < SLOTS; k++) {
    const high = valueAt(tenant, device, k) > THRESHOLD;
    const last = out.at(-1);
    if (last && last[0] === high) last[1]++;
    else out.push([high, 1]);
  }
  return out;
}

describe("ids and the rule", () => {
  it("pads tenant and device numbers", () => {
    expect(tenantId(7)).toBe("chaos-t0007");
    expect(tenantId(1234)).toBe("chaos-t1234");
    expect(deviceId(3)).toBe("d003");
  });

  it("seeds one threshold rule temp > 50, warning, with no cooldown and no escalation", () => {
    expect(RULE).toEqual({
      id: "hot",
      metric: "temp",
      rule_type: "threshold",
      operator: ">",
      threshold: 50,
      severity: "warning",
      cooldown_seconds: 0,
      escalation: null,
    });
  });

  it("times slot k at run start + k reading intervals", () => {
    expect(slotTs(1_000_000, 5, 3)).toBe(1_015_000);
  });
});

describe("valueAt", () => {
  it("is deterministic and differs between devices", () => {
    const a = Array.from({ length: 50 }, (_, k) => valueAt(tenantId(1), deviceId(0), k));
    expect(Array.from({ length: 50 }, (_, k) => valueAt(tenantId(1), deviceId(0), k))).toEqual(a);
    expect(Array.from({ length: 50 }, (_, k) => valueAt(tenantId(1), deviceId(1), k))).not.toEqual(a);
    expect(Array.from({ length: 50 }, (_, k) => valueAt(tenantId(2), deviceId(0), k))).not.toEqual(a);
  });

  it.each(DEVICES)(
    "%s/%s: LOW first, then alternating episodes of the promised lengths",
    (tenant, device) => {
      const r = runs(tenant, device);
      expect(r[0]![0]).toBe(false);
      // The last run may be cut by the window.
      for (const [high, length] of r.slice(0, -1)) {
        const range = high ? HIGH_READINGS : LOW_READINGS;
        expect(length).toBeGreaterThanOrEqual(range.min);
        expect(length).toBeLessThanOrEqual(range.max);
      }
      // Every length of the range occurs in a long enough stretch (the draws are not stuck).
      expect(
        new Set(
          r
            .slice(0, -1)
            .filter(([high]) => high)
            .map(([, n]) => n),
        ),
      ).toEqual(new Set([3, 4, 5, 6]));
    },
  );

  it("keeps every value within the jitter of LOW or HIGH, far from the threshold", () => {
    const values = DEVICES.flatMap(([t, d]) => Array.from({ length: SLOTS }, (_, k) => valueAt(t, d, k)));
    for (const v of values) {
      const base = v > THRESHOLD ? HIGH_VALUE : LOW_VALUE;
      expect(Math.abs(v - base)).toBeLessThanOrEqual(JITTER + 1e-9);
      expect(Math.abs(v - THRESHOLD)).toBeGreaterThan(5);
    }
    // There is jitter.
    expect(new Set(values).size).toBeGreaterThan(10);
  });

  it("refuses a slot that is not a whole number ≥ 0", () => {
    expect(() => valueAt("t", "d", -1)).toThrow(RangeError);
    expect(() => valueAt("t", "d", 1.5)).toThrow(RangeError);
  });
});

describe("episodes", () => {
  it.each(DEVICES)("%s/%s: exactly the HIGH slots, as [start, end) runs", (tenant, device) => {
    const high = new Set<number>();
    for (const e of episodes(tenant, device, 0, SLOTS)) {
      expect(e.endSlot).toBeGreaterThan(e.startSlot);
      for (let k = e.startSlot; k < e.endSlot; k++) high.add(k);
    }
    for (let k = 0; k < SLOTS; k++) expect(high.has(k)).toBe(valueAt(tenant, device, k) > THRESHOLD);
  });

  it("clips the episodes that cross the window's edges", () => {
    const [tenant, device] = DEVICES[1];
    const all = episodes(tenant, device, 0, SLOTS);
    const e = all[2]!;
    const from = e.startSlot + 1;
    const to = all[3]!.startSlot + 1;
    expect(episodes(tenant, device, from, to)).toEqual([
      { startSlot: from, endSlot: e.endSlot },
      { startSlot: all[3]!.startSlot, endSlot: to },
    ]);
    expect(episodes(tenant, device, e.endSlot, all[3]!.startSlot)).toEqual([]);
  });
});
