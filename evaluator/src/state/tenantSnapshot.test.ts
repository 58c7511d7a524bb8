import { describe, expect, it } from "vitest";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import { patternRule, T0, thresholdRule, windowRule } from "../rules/fixtures.ts";
import { INACTIVE } from "../rules/lifecycle.ts";
import { planTenant } from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import type { Reading } from "../rules/types.ts";
import { advanceTick, applyCommit, commitOps, emptySnapshot, fullStateWrites } from "./tenantSnapshot.ts";
import { decodeBuffer, encodeBuffer, PackedBuffer } from "./valueEncoding.ts";

function planAt(now: number, readings: Reading[]) {
  return planTenant({
    tenantId: "t1",
    rules: [
      thresholdRule({ id: "t" }),
      windowRule({ id: "w", window_seconds: 300, params: { maxReadings: 3 } }),
      patternRule({ id: "a", params: { kind: "absent" } }),
    ],
    deviceIds: ["d1"],
    readingsByDeviceMetric: groupReadings(readings),
    now,
  });
}
const reading = (ts: number, value: number): Reading => ({ deviceId: "d1", metric: "temp", ts, value });
const plan = planAt(T0, [reading(T0 - 1000, 0.1), reading(T0, -2.5e-7)]);
/** Pair keys of the plan's threshold, window and absent pairs (the snapshot is keyed by them). */
const [T, W, A] = plan.pairs.map((p) => p.key) as [string, string, string];

describe("tenant snapshot", () => {
  it("advances a snapshot by one tick: buffers appended and trimmed, last-seen seeded, ended cooldowns dropped", () => {
    const s = emptySnapshot();
    s.cooldownUntil.set(W, 500);
    s.cooldownUntil.set(T, 2_000);
    const first = advanceTick(s, plan, 1_000);
    expect(first.values).toEqual([`${T0 - 1000}:0.1,+1000:-2.5e-7`, String(T0)]);
    expect(first.ops).toEqual([
      ...["f", "w:d1:cd", false, false],
      ...["b", "w:d1", 2, "600000"], // ARGV[2], TTL 2× the window
      ...["f", "a:d1:seen", 3, false], // the absent rule: the newest reading, ARGV[3]
    ]);
    expect(first.state.pairs.get(T)).toEqual({
      buffer: null,
      cooldownRemainingMs: 1_000,
      anomaly: null,
      lastSeen: null,
      alert: INACTIVE,
    });
    expect(first.state.pairs.get(W)?.buffer).toEqual([
      { ts: T0 - 1000, value: 0.1 },
      { ts: T0, value: -2.5e-7 },
    ]);
    expect(first.state.pairs.get(A)?.lastSeen).toBe(T0);

    // The same tick again (a retry): nothing changes, nothing is written.
    expect(advanceTick(s, plan, 1_000).ops).toEqual([]);

    // Later: one new reading pushes the oldest out of the 3-entry buffer; the stored form is
    // derived from the previous one and equals a fresh encoding.
    const later = planAt(T0 + 60_000, [reading(T0 + 30_000, 7), reading(T0 + 60_000, 8)]);
    const next = advanceTick(s, later, 2_500);
    expect(next.values).toEqual([`${T0}:-2.5e-7,+30000:7,+30000:8`, String(T0 + 60_000)]);
    expect(next.values[0]).toBe(encodeBuffer(s.buffers.get(W)!.entries));
    expect(next.ops).toContain("t:d1:cd");

    // Long after: the window empties and the buffer is deleted.
    const idle = advanceTick(s, planAt(T0 + 3_600_000, []), 3_000);
    expect(idle.ops.slice(0, 4)).toEqual(["b", "w:d1", false, false]);
    expect(s.buffers.size).toBe(0);
  });

  it("keeps every buffer's derived stored form equal to a fresh encoding, over many irregular ticks", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const s = emptySnapshot();
    for (let k = 1; k <= 200; k++) {
      const now = T0 + k * 60_000;
      // 0 to 3 readings in the last minute (some late, some repeated), now and then a long gap.
      const readings = Array.from({ length: Math.floor(random() * 4) }, () =>
        reading(now - Math.floor(random() * 90_000), Math.round(random() * 100)),
      );
      if (k % 37 === 0) readings.length = 0;
      const step = advanceTick(s, planAt(now, [...readings, ...readings.slice(0, 1)]), 0);
      const known = s.buffers.get(W);
      const i = step.ops.indexOf("w:d1");
      if (known) {
        expect(decodeBuffer(known.stored)).toEqual(known.entries);
        expect(known.stored).toBe(encodeBuffer(known.entries));
        if (i >= 0) expect(step.values[(step.ops[i + 1] as number) - 2]).toBe(known.stored);
      }
    }
  });

  it("keeps buffers packed between ticks, copied and compared as the plain buffers they stand for", () => {
    const s = emptySnapshot();
    const read = [
      { ts: T0 - 1000, value: 0.1 },
      { ts: T0, value: -2.5e-7 },
    ];
    s.buffers.set(W, { entries: read, stored: encodeBuffer(read) });
    // The same readings again: nothing written, but the buffer is packed from now on.
    expect(advanceTick(s, plan, 0).ops.filter((op) => op === "b")).toEqual([]);
    const packed = s.buffers.get(W);
    expect(packed).toBeInstanceOf(PackedBuffer);
    expect(packed?.entries).toEqual(read);
    expect((packed as PackedBuffer).length).toBe(2);
    // A new reading: the same object, updated in place; the stored form follows.
    advanceTick(s, planAt(T0 + 60_000, [reading(T0 + 30_000, 7)]), 0);
    expect(s.buffers.get(W)).toBe(packed);
    const now = [...read, { ts: T0 + 30_000, value: 7 }];
    expect(packed?.entries).toEqual(now);
    expect(packed?.stored).toBe(encodeBuffer(now));
    expect(fullStateWrites(s, plan, 0).ops.slice(0, 4)).toEqual(["b", "w:d1", 2, "600000"]);
    // Each read builds the entries afresh (nothing holds on to them between ticks).
    expect(packed?.entries).not.toBe(packed?.entries);
    // A copy or a comparison sees the plain buffer: entries and stored form.
    const plain = { entries: now, stored: encodeBuffer(now) };
    expect(structuredClone(packed)).toEqual(plain);
    expect(packed).toEqual(plain);
    expect(packed).not.toEqual({ entries: read, stored: plain.stored });
    expect(new PackedBuffer(now, plain.stored)).toEqual(packed);
  });

  it("turns state updates into cooldowns with PX and hash field set/delete ops, and applies them", () => {
    const ref = { pairKey: "k", ruleId: "w", deviceId: "d1" };
    const stats = { n: 1, mean: 2, variance: 0, lastTs: T0 };
    const updates: StateUpdate[] = [
      { ...ref, kind: "cooldown", ttlMs: 60_000 },
      { ...ref, kind: "alert", state: INACTIVE },
      { ...ref, kind: "anomaly", stats },
    ];
    expect(commitOps(updates, 10)).toEqual({
      ops: [
        ...["c", "w:d1", "60000", "60010"],
        ...["f", "w:d1:cond", false, false],
        ...["f", "w:d1:anom", 2, false],
      ],
      values: [`1,2,0,${T0}`],
    });
    const s = emptySnapshot();
    s.alerts.set("k", { active: true, since: T0, severity: "info" });
    applyCommit(s, updates, 10);
    expect([...s.cooldownUntil]).toEqual([["k", 60_010]]);
    expect(s.alerts.size).toBe(0);
    expect(s.anomalies.get("k")).toEqual(stats);
  });

  it("a full write holds the whole state of the plan's pairs", () => {
    const plan = planTenant({
      tenantId: "t1",
      rules: [windowRule({ id: "w", tenant_id: "t1", device_id: null, window_seconds: 60, min_count: 1 })],
      deviceIds: ["d1", "d2"],
      readingsByDeviceMetric: new Map(),
      now: T0,
    });
    const s = emptySnapshot();
    const [k1, k2] = plan.pairs.map((p) => p.key);
    s.buffers.set(k1!, { entries: [{ ts: T0, value: 1 }], stored: `${T0}:1` });
    s.alerts.set(k1!, { active: true, since: T0, severity: "info" });
    s.cooldownUntil.set(k1!, 1_500);
    s.cooldownUntil.set(k2!, 900);
    // Tick time 1000: the key lives for the 500 ms left.
    const writes = fullStateWrites(s, plan, 1_000);
    expect(writes.ops).toEqual([
      ...["b", "w:d1", 2, "120000"],
      ...["f", "w:d1:cond", 3, false],
      ...["c", "w:d1", "500", "1500"],
      // An empty buffer is deleted, an ended cooldown not written.
      ...["b", "w:d2", false, false],
    ]);
    expect(writes.values).toEqual([`${T0}:1`, JSON.stringify({ since: T0, severity: "info" })]);
  });
});
