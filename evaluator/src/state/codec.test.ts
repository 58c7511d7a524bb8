import { describe, expect, it } from "vitest";
import type { StateUpdate } from "../rules/evaluateTenant.ts";
import { T0, thresholdRule, windowRule } from "../rules/fixtures.ts";
import { INACTIVE } from "../rules/lifecycle.ts";
import { planTenant } from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import {
  buildCommitCall,
  buildTickCall,
  decodeAlertState,
  decodeAnomalyStats,
  decodeMember,
  encodeAlertState,
  encodeAnomalyStats,
  encodeMember,
  parseTickReply,
  ValkeyStateProtocolError,
} from "./codec.ts";

const plan = planTenant({
  tenantId: "t1",
  rules: [thresholdRule({ id: "t" }), windowRule({ id: "w", window_seconds: 300 })],
  deviceIds: ["d1"],
  readingsByDeviceMetric: groupReadings([
    { deviceId: "d1", metric: "temp", ts: T0 - 1000, value: 0.1 },
    { deviceId: "d1", metric: "temp", ts: T0, value: -2.5e-7 },
  ]),
  now: T0,
});

describe("codec", () => {
  it("round-trips members, lifecycle states and statistics exactly", () => {
    for (const [ts, value] of [
      [T0, 0.1 + 0.2],
      [T0, -2.5e-7],
      [T0, 1e21],
      [1, 0],
    ] as const) {
      expect(decodeMember(encodeMember(ts, value))).toEqual({ ts, value });
    }
    const state = { active: true, since: T0, severity: "critical" } as const;
    expect(decodeAlertState(encodeAlertState(state))).toEqual(state);
    const stats = { n: 3, mean: 1 / 3, variance: 2 / 9, lastTs: T0 };
    expect(decodeAnomalyStats(encodeAnomalyStats(stats))).toEqual(stats);
  });

  it("reads garbage as 'nothing stored' instead of failing the tenant", () => {
    expect(decodeMember("nonsense")).toBeNull();
    expect(decodeAlertState("{")).toBe(INACTIVE);
    expect(decodeAlertState('{"since":1,"severity":"fatal"}')).toBe(INACTIVE);
    expect(decodeAnomalyStats('{"n":1}')).toBeNull();
  });

  it("declares one key in the tenant's hash slot, sends rules and devices once, and numbers as strings", () => {
    const call = buildTickCall(plan, { tenantId: "t1", slot: 7, token: "tok", ttlMs: 120_000 });
    expect(call.keys).toEqual(["tick:{t1}:7"]);
    const request = JSON.parse(call.args[0]!);
    expect(request.lease).toEqual(["tok", "120000"]);
    expect(request.statePx).toBe("604800000");
    // Only the window pair is sent: the threshold pair's state comes from the tenant's hash.
    expect(request.rules).toEqual([["w", String(T0 - 300_000), "1000", "600000", false]]);
    expect(request.devices).toEqual(["d1"]);
    expect(request.pairs).toEqual([1, 1, 2, `${T0 - 1000}:0.1`, `${T0}:-2.5e-7`]);
    // Without a lease, the tenant's state hash routes the call.
    expect(buildTickCall(plan).keys).toEqual(["tstate:{t1}"]);
  });

  it("refuses a lease of another tenant", () => {
    expect(() => buildTickCall(plan, { tenantId: "t2", slot: 1, token: "x", ttlMs: 1 })).toThrow(RangeError);
  });

  it("parses a reply into per-pair state, and a lease conflict", () => {
    const reply = [
      1,
      // A field of a pair outside the plan (a deleted device) is ignored.
      ["w:d1:cond", JSON.stringify({ since: T0, severity: "info" }), "w:gone:cond", "{}"],
      ["w:d1", 4500],
      [],
      [2, `${T0 - 1000}:0.1`, `${T0}:-2.5e-7`],
    ];
    const load = parseTickReply(plan, reply);
    expect(load.acquired).toBe(true);
    if (!load.acquired) return;
    const [threshold, window] = plan.pairs.map((p) => load.state.pairs.get(p.key));
    expect(threshold).toEqual({
      buffer: null,
      cooldownRemainingMs: 0,
      anomaly: null,
      lastSeen: null,
      alert: INACTIVE,
    });
    expect(window).toEqual({
      buffer: [
        { ts: T0 - 1000, value: 0.1 },
        { ts: T0, value: -2.5e-7 },
      ],
      cooldownRemainingMs: 4500,
      anomaly: null,
      lastSeen: null,
      alert: { active: true, since: T0, severity: "info" },
    });
    expect(parseTickReply(plan, [0, "other"])).toEqual({ acquired: false, holder: "other" });
  });

  it("rejects a reply that does not match the plan", () => {
    expect(() => parseTickReply(plan, [1])).toThrow(ValkeyStateProtocolError);
    expect(() => parseTickReply(plan, "OK")).toThrow(ValkeyStateProtocolError);
    // A malformed field list, a cooldown that is no number, a last-seen time the plan has no pair
    // for, and a buffer list longer than the plan's window pairs.
    expect(() => parseTickReply(plan, [1, [3], [], [], [0]])).toThrow(ValkeyStateProtocolError);
    expect(() => parseTickReply(plan, [1, [], ["w:d1", "x"], [], [0]])).toThrow(ValkeyStateProtocolError);
    expect(() => parseTickReply(plan, [1, [], [], [1, "5"], [0]])).toThrow(ValkeyStateProtocolError);
    expect(() => parseTickReply(plan, [1, [], [], [], [0, 0]])).toThrow(ValkeyStateProtocolError);
  });

  it("turns state updates into cooldowns with PX and hash field set/delete ops, fenced by the lease", () => {
    const ref = { pairKey: "k", ruleId: "w", deviceId: "d1" };
    const updates: StateUpdate[] = [
      { ...ref, kind: "cooldown", ttlMs: 60_000 },
      { ...ref, kind: "alert", state: INACTIVE },
      { ...ref, kind: "anomaly", stats: { n: 1, mean: 2, variance: 0, lastTs: T0 } },
    ];
    const call = buildCommitCall("t1", updates, { tenantId: "t1", slot: 7, token: "tok", ttlMs: 1 });
    expect(call?.keys).toEqual(["tick:{t1}:7"]);
    expect(JSON.parse(call!.args[0]!)).toEqual({
      lease: "tok",
      statePx: "604800000",
      ops: [
        ...["cooldown", "w", "d1", "1", "60000"],
        ...["cond", "w", "d1", false, false],
        ...["anom", "w", "d1", encodeAnomalyStats({ n: 1, mean: 2, variance: 0, lastTs: T0 }), false],
      ],
    });
    // Without a lease, the tenant's state hash routes the call.
    expect(buildCommitCall("t1", updates)?.keys).toEqual(["tstate:{t1}"]);
    expect(buildCommitCall("t1", [])).toBeNull();
  });
});
