import { describe, expect, it } from "vitest";
import { setCondition } from "./conditions.ts";

describe("setCondition", () => {
  const t0 = "2026-01-01T00:00:00Z";
  const t1 = "2026-01-01T00:05:00Z";

  it("adds a new condition with the current time", () => {
    const list = setCondition(
      [],
      { type: "Ready", status: "True", reason: "AllShardsReady", message: "3/3" },
      t0,
      4,
    );
    expect(list).toEqual([
      {
        type: "Ready",
        status: "True",
        reason: "AllShardsReady",
        message: "3/3",
        lastTransitionTime: t0,
        observedGeneration: 4,
      },
    ]);
  });

  it("keeps lastTransitionTime when the status stays, even if reason or message change", () => {
    const a = setCondition(
      [],
      { type: "Ready", status: "False", reason: "ShardsNotReady", message: "1/3" },
      t0,
    );
    const b = setCondition(
      a,
      { type: "Ready", status: "False", reason: "ShardsNotReady", message: "2/3" },
      t1,
    );
    expect(b[0]?.lastTransitionTime).toBe(t0);
    expect(b[0]?.message).toBe("2/3");
  });

  it("moves lastTransitionTime when the status flips, and leaves other conditions alone", () => {
    const a = setCondition(
      setCondition([], { type: "Degraded", status: "False", reason: "AsExpected", message: "" }, t0),
      { type: "Ready", status: "False", reason: "ShardsNotReady", message: "" },
      t0,
    );
    const b = setCondition(a, { type: "Ready", status: "True", reason: "AllShardsReady", message: "" }, t1);
    expect(b.find((c) => c.type === "Ready")?.lastTransitionTime).toBe(t1);
    expect(b.find((c) => c.type === "Degraded")?.lastTransitionTime).toBe(t0);
    expect(a.find((c) => c.type === "Ready")?.status).toBe("False");
  });
});
