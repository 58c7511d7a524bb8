import { describe, expect, it } from "vitest";
import { BudgetExceededError, withBudget } from "./budget.ts";
import { ManualClock, sleep } from "./clock.ts";

describe("withBudget", () => {
  it("passes the work's result through when in time", async () => {
    const clock = new ManualClock(0);
    const { result } = withBudget(clock, 100, async () => 42);
    await expect(result).resolves.toBe(42);
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects at the budget, aborts the work's signal, and tracks the abandoned work", async () => {
    const clock = new ManualClock(0);
    let sawAbort: unknown;
    const { result, settled } = withBudget(clock, 100, async (signal) => {
      try {
        await sleep(clock, 10_000, signal);
      } catch (err) {
        sawAbort = err;
        throw err;
      }
    });
    const outcome = result.catch((e: unknown) => e);
    await clock.advance(100);
    expect(await outcome).toBeInstanceOf(BudgetExceededError);
    await settled;
    expect(sawAbort).toBeInstanceOf(BudgetExceededError);
  });

  it("forwards an outer abort (shutdown) to the work", async () => {
    const clock = new ManualClock(0);
    const outer = new AbortController();
    const { result } = withBudget(clock, 1000, (signal) => sleep(clock, 10_000, signal), outer.signal);
    outer.abort(new Error("stop"));
    await expect(result).rejects.toThrow("stop");
  });
});
