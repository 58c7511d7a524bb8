import { describe, expect, it } from "vitest";
import type { FailureReason } from "../metrics.ts";
import { TickBacklog } from "./tickBacklog.ts";

const I = 10_000;
const T = 1_000 * I + 1_234;

describe("TickBacklog", () => {
  it("is 0 when every due evaluation reaches a result within the interval", () => {
    const b = new TickBacklog(T, I);
    b.due(3);
    b.done(T + 10);
    b.done(T + 5_000);
    b.done(T + I); // exactly at the deadline is still in time
    expect(b.deadline).toBe(T + I);
    expect(b.value).toBe(0);
  });

  it.each<[string, (b: TickBacklog) => void, number]>([
    ["a result after the deadline", (b) => b.done(T + I + 1), 1],
    ["cut at its budget", (b) => b.failed("over_budget"), 1],
    ["skipped, its previous evaluation still running", (b) => b.failed("still_running"), 1],
    ["never started (the tick was stopped)", () => undefined, 1],
    ["a defect", (b) => b.failed("error"), 0],
    ["PostgreSQL unavailable", (b) => b.failed("postgres_unavailable"), 0],
    ["Valkey unavailable (a tenant no longer owned)", (b) => b.failed("valkey_unavailable"), 0],
    ["held back by a tenant limit", (b) => b.heldBack(), 0],
  ])("one due evaluation, %s: backlog %i", (_, end, expected) => {
    const b = new TickBacklog(T, I);
    b.due(1);
    end(b);
    expect(b.value).toBe(expected);
  });

  it("adds up every kind of overload and ignores outages", () => {
    const b = new TickBacklog(T, I);
    b.due(250);
    b.due(250);
    for (let i = 0; i < 300; i++) b.done(T + i * 10);
    for (let i = 0; i < 100; i++) b.done(T + I + 1 + i);
    for (const reason of ["over_budget", "still_running", "error", "postgres_unavailable"] as FailureReason[])
      for (let i = 0; i < 20; i++) b.failed(reason);
    // 20 never started: 500 − 300 on time − 40 excused = 100 late + 40 capacity failures + 20 left.
    expect(b.value).toBe(160);
  });

  it("is 0 for a tick that never learnt what was due (membership read failed)", () => {
    expect(new TickBacklog(T, I).value).toBe(0);
  });
});
