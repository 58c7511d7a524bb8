import { describe, expect, it } from "vitest";
import { patternRule, T0, thresholdRule, windowRule } from "../rules/fixtures.ts";
import { planTenant } from "../rules/planTenant.ts";
import { groupReadings } from "../rules/readings.ts";
import type { Reading } from "../rules/types.ts";
import {
  buildReadCall,
  buildWriteCall,
  parseReadReply,
  parseWriteReply,
  splitWriteRequest,
  ValkeyStateProtocolError,
  type WriteRequest,
} from "./scriptProtocol.ts";
import { partialStateVersion, stateVersion } from "./valueEncoding.ts";

const lease = { tenantId: "t1", slot: 7, token: "tok", ttlMs: 120_000 };
const reading = (ts: number, value: number): Reading => ({ deviceId: "d1", metric: "temp", ts, value });
const plan = planTenant({
  tenantId: "t1",
  rules: [
    thresholdRule({ id: "t" }),
    windowRule({ id: "w", window_seconds: 300, params: { maxReadings: 3 } }),
    patternRule({ id: "a", params: { kind: "absent" } }),
  ],
  deviceIds: ["d1"],
  readingsByDeviceMetric: groupReadings([reading(T0 - 1000, 0.1), reading(T0, -2.5e-7)]),
  now: T0,
});
/** Pair keys of the plan's window and absent pairs (the snapshot is keyed by them). */
const [, W, A] = plan.pairs.map((p) => p.key) as [string, string, string];

describe("script protocol", () => {
  it("reads: declares every key it may touch, all in the tenant's hash slot, lease first", () => {
    const call = buildReadCall(plan, lease);
    expect(call.keys).toEqual(["tick:{t1}:7", "tstate:{t1}", "wbuf:{t1}:w:d1"]);
    expect(JSON.parse(call.args[0]!)).toEqual({ lease: ["tok", "120000"], buffers: ["w:d1"], cooldowns: [] });
    // Without a lease, the tenant's state hash comes first.
    expect(buildReadCall(plan).keys).toEqual(["tstate:{t1}", "wbuf:{t1}:w:d1"]);
    expect(() => buildReadCall(plan, { ...lease, tenantId: "t2" })).toThrow(RangeError);
    // A rule with a cooldown declares the pair's cooldown key (after the buffers), named in "cooldowns".
    const cooling = planTenant({
      tenantId: "t{1}",
      rules: [
        thresholdRule({ id: "c:1", tenant_id: "t{1}", cooldown_seconds: 60 }),
        windowRule({ id: "w", tenant_id: "t{1}", window_seconds: 300 }),
      ],
      deviceIds: ["d1"],
      readingsByDeviceMetric: groupReadings([]),
      now: T0,
    });
    const read = buildReadCall(cooling);
    expect(read.keys).toEqual(["tstate:{t%7B1%7D}", "wbuf:{t%7B1%7D}:w:d1", "cooldown:{t%7B1%7D}:c%3A1:d1"]);
    expect(JSON.parse(read.args[0]!)).toEqual({ buffers: ["w:d1"], cooldowns: ["c%3A1:d1"] });
  });

  it("parses a read into a snapshot, and a lease conflict", () => {
    const reply = [
      1,
      `5:${T0}`,
      [
        "w:d1:cond",
        JSON.stringify({ since: T0, severity: "info" }),
        "w:d1:anom",
        "{",
        "a:d1:seen",
        String(T0 - 5000),
        "x:y:future",
        "?",
      ],
      ["w:d1", 4500, "1"],
      [`${T0 - 1000}:0.1`],
    ];
    const read = parseReadReply(plan, reply, 1_000);
    expect(read.acquired).toBe(true);
    if (!read.acquired) return;
    const s = read.snapshot;
    expect([s.seq, s.at]).toEqual([5, T0]);
    // Fields are named by the scripts' pair parts; the snapshot is keyed by the plan's pair keys,
    // and a field of a pair outside the plan ("x:y") is not kept.
    expect([...s.alerts]).toEqual([[W, { active: true, since: T0, severity: "info" }]]);
    expect(s.anomalies.size).toBe(0); // unreadable: learning starts over
    expect([...s.seen]).toEqual([[A, String(T0 - 5000)]]);
    expect([...s.cooldownUntil]).toEqual([[W, 5_500]]);
    expect(s.buffers.get(W)?.entries).toEqual([{ ts: T0 - 1000, value: 0.1 }]);
    expect(parseReadReply(plan, [1, null, [], [], [null]], 0)).toMatchObject({
      acquired: true,
      snapshot: { seq: 0, at: null },
    });
    expect(parseReadReply(plan, [0, "other"], 0)).toEqual({ acquired: false, holder: "other" });
  });

  it("rejects a read reply that does not match the plan", () => {
    expect(() => parseReadReply(plan, [1], 0)).toThrow(ValkeyStateProtocolError);
    expect(() => parseReadReply(plan, "OK", 0)).toThrow(ValkeyStateProtocolError);
    expect(() => parseReadReply(plan, [1, null, [3], [], [null]], 0)).toThrow(ValkeyStateProtocolError);
    expect(() => parseReadReply(plan, [1, null, [], ["w:d1", "x"], [null]], 0)).toThrow(
      ValkeyStateProtocolError,
    );
    expect(() => parseReadReply(plan, [1, null, [], [], [null, null]], 0)).toThrow(ValkeyStateProtocolError);
  });

  it("writes: the state hash and each op's key declared, values travel as ARGV, the version names the evaluation", () => {
    const call = buildWriteCall("t1", {
      mode: "delta",
      expect: stateVersion(4, T0 - 60_000),
      seq: 5,
      version: stateVersion(5, T0),
      statePx: 5,
      ops: ["b", "w:d1", 2, "9", "f", "w:d1:cond", false, false, "c", "w:d1", "60", "9"],
      values: ["1:2"],
    });
    // The hash, then one key per b or c op in the order of the ops (an f op is a field of the hash).
    expect(call.keys).toEqual(["tstate:{t1}", "wbuf:{t1}:w:d1", "cooldown:{t1}:w:d1"]);
    expect(call.args.slice(1)).toEqual(["1:2"]);
    expect(JSON.parse(call.args[0]!)).toEqual({
      mode: "delta",
      expect: `4:${T0 - 60_000}`,
      seq: "5",
      version: `5:${T0}`,
      statePx: "5",
      ops: ["b", "w:d1", 2, "9", "f", "w:d1:cond", false, false, "c", "w:d1", "60", "9"],
    });

    expect(parseWriteReply([1])).toEqual({ kind: "applied" });
    expect(parseWriteReply([2, `7:${T0}`])).toEqual({ kind: "stale", stored: 7 });
    expect(parseWriteReply([2, null])).toEqual({ kind: "stale", stored: null });
    expect(() => parseWriteReply("OK")).toThrow(ValkeyStateProtocolError);
    // Refused after the first call of several: the marker of another write, or a newer version.
    expect(parseWriteReply([2, partialStateVersion(`8:${T0}`)])).toEqual({ kind: "stale", stored: 8 });
  });

  it("reads a slice of a plan by its pairs' fields, not the whole hash", () => {
    expect(JSON.parse(buildReadCall(plan, undefined, true).args[0]!)).toEqual({
      buffers: ["w:d1"],
      cooldowns: [],
      pairs: ["t:d1", "w:d1", "a:d1"],
    });
    // A state being written in several calls is read as what it is: no version.
    const read = parseReadReply(plan, [1, partialStateVersion(`5:${T0}`), [], [], [null]], 0);
    expect(read).toMatchObject({ acquired: true, partial: true, stored: `5:${T0}:partial` });
    expect(parseReadReply(plan, [1, `5:${T0}`, [], [], [null]], 0)).toMatchObject({ partial: false });
  });

  it("splits a write into calls of at most N ops, renumbering the values, first and last marked", () => {
    const request: WriteRequest = {
      mode: "full",
      expect: "",
      seq: 5,
      version: stateVersion(5, T0),
      statePx: 9,
      // b with a value, f deleted, c (a px in the value slot), f with a value, b deleted
      ops: [
        "b",
        "w:1",
        2,
        "600",
        "f",
        "x:cond",
        false,
        false,
        "c",
        "w:1",
        "5000",
        "77",
        "f",
        "a:seen",
        3,
        false,
        "b",
        "w:2",
        false,
        false,
      ],
      values: ["1:2", "123"],
    };
    expect(splitWriteRequest(request, 5)).toEqual([request]);
    const calls = splitWriteRequest(request, 2);
    const marker = partialStateVersion(`5:${T0}`);
    expect(calls.map((c) => [c.ops, c.values, c.chunk])).toEqual([
      [["b", "w:1", 2, "600", "f", "x:cond", false, false], ["1:2"], { marker, first: true, last: false }],
      [["c", "w:1", "5000", "77", "f", "a:seen", 2, false], ["123"], { marker, first: false, last: false }],
      [["b", "w:2", false, false], [], { marker, first: false, last: true }],
    ]);
    expect(JSON.parse(buildWriteCall("t1", calls[1]!).args[0]!)).toMatchObject({
      marker,
      first: false,
      last: false,
      version: `5:${T0}`,
    });
    // One call carries no marker: the script behaves as it always did.
    expect(JSON.parse(buildWriteCall("t1", request).args[0]!)).not.toHaveProperty("marker");
  });
});
