import { describe, expect, it } from "vitest";
import { T0 } from "../rules/fixtures.ts";
import { INACTIVE } from "../rules/lifecycle.ts";
import {
  decodeAlertState,
  decodeAnomalyStats,
  decodeBuffer,
  decodeMember,
  encodeAlertState,
  encodeAnomalyStats,
  encodeBuffer,
  encodeBufferFrom,
  encodeMember,
  parseStateVersion,
  parseStoredVersion,
  partialStateVersion,
  stateVersion,
} from "./valueEncoding.ts";

describe("value encodings", () => {
  it("round-trips members, buffers, lifecycle states and statistics exactly", () => {
    for (const [ts, value] of [
      [T0, 0.1 + 0.2],
      [T0, -2.5e-7],
      [T0, 1e21],
      [1, 0],
    ] as const) {
      expect(decodeMember(encodeMember(ts, value))).toEqual({ ts, value });
    }
    const entries = [
      { ts: T0 - 5, value: 0.1 + 0.2 },
      { ts: T0, value: -3 },
    ];
    // After the first member, timestamps are deltas to the one before, when whole milliseconds.
    expect(encodeBuffer(entries)).toBe(`${T0 - 5}:0.30000000000000004,+5:-3`);
    expect(decodeBuffer(encodeBuffer(entries))).toEqual(entries);
    const fractional = [
      { ts: 1.5, value: 1 },
      { ts: 2, value: 2 },
      { ts: 7, value: 3 },
    ];
    expect(encodeBuffer(fractional)).toBe("1.5:1,2:2,+5:3");
    expect(decodeBuffer(encodeBuffer(fractional))).toEqual(fractional);
    // Absolute members anywhere (the sorted sets of an earlier release, joined) read the same.
    expect(decodeBuffer(`${T0 - 5}:0.30000000000000004,${T0}:-3`)).toEqual(entries);
    const state = { active: true, since: T0, severity: "critical" } as const;
    expect(decodeAlertState(encodeAlertState(state))).toEqual(state);
    const stats = { n: 3, mean: 1 / 3, variance: 2 / 9, lastTs: T0 };
    expect(decodeAnomalyStats(encodeAnomalyStats(stats))).toEqual(stats);
    const learning = { n: 0, mean: 0, variance: 0, lastTs: null };
    expect(decodeAnomalyStats(encodeAnomalyStats(learning))).toEqual(learning);
    // The JSON form of earlier releases is still read.
    expect(decodeAnomalyStats(JSON.stringify(stats))).toEqual(stats);
  });

  it("reads garbage as 'nothing stored' instead of failing the tenant", () => {
    expect(decodeMember("nonsense")).toBeNull();
    expect(decodeBuffer(`+5:0,x,${T0}:1,:,${T0 - 1}:2`)).toEqual([
      { ts: T0 - 1, value: 2 },
      { ts: T0, value: 1 },
    ]);
    expect(decodeAlertState("{")).toBe(INACTIVE);
    expect(decodeAlertState('{"since":1,"severity":"fatal"}')).toBe(INACTIVE);
    expect(decodeAnomalyStats('{"n":1}')).toBeNull();
    expect(decodeAnomalyStats("1,2,3")).toBeNull();
    expect(decodeAnomalyStats("1,,0,")).toBeNull();
  });

  it("derives a buffer's stored form from the previous one, equal to a fresh encoding", () => {
    const [a, b, c, d] = [T0, T0 + 1000, T0 + 1500.5, T0 + 3000].map((ts, i) => ({ ts, value: i }));
    const prev = { entries: [a!, b!, c!], stored: encodeBuffer([a!, b!, c!]) };
    for (const next of [[a!, b!, c!, d!], [b!, c!, d!], [c!, d!], [d!], [], [{ ...b! }, c!]]) {
      expect(encodeBufferFrom(prev, next)).toBe(encodeBuffer(next));
    }
    expect(encodeBufferFrom(undefined, [a!, b!])).toBe(encodeBuffer([a!, b!]));
  });

  it("names a state by its evaluation: seq and tick time, or 0 for none", () => {
    expect(stateVersion(5, T0)).toBe(`5:${T0}`);
    expect(stateVersion(0, null)).toBe("0");
    expect(parseStateVersion(`5:${T0}`)).toEqual({ seq: 5, at: T0 });
    expect(parseStateVersion("0")).toEqual({ seq: 0, at: null });
    expect(parseStateVersion("s.1")).toBeNull();
  });

  it("marks a state being written in several calls so that it is never read as a version", () => {
    const marker = partialStateVersion(stateVersion(5, T0));
    expect(parseStateVersion(marker)).toBeNull();
    expect(parseStoredVersion(marker)).toEqual({ seq: 5, at: T0, partial: true });
    expect(parseStoredVersion(`5:${T0}`)).toEqual({ seq: 5, at: T0, partial: false });
    // It starts with its seq: the script's full-mode check reads it with '^%d+'.
    expect(/^\d+/.exec(marker)?.[0]).toBe("5");
  });
});
