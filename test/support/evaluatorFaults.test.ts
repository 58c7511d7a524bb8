import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../evaluator/src/config/evaluatorConfig.ts";
import { thresholdRule } from "../../evaluator/src/rules/fixtures.ts";
import { ManualClock } from "../../evaluator/src/tick/clock.ts";
import {
  CLOCK_SKEW_DIR_ENV,
  clockSkewMs,
  createEvaluatorFaults,
  delayOf,
  parseEvaluatorFaults,
  skewedClock,
} from "./evaluatorFaults.ts";

const parseError = (env: Record<string, string>): string => {
  try {
    parseEvaluatorFaults(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
};

describe("parseEvaluatorFaults", () => {
  it("is null without fault variables, or with blank ones", () => {
    expect(parseEvaluatorFaults({})).toBeNull();
    expect(
      parseEvaluatorFaults({ EVALUATOR_TEST_DELAY_TENANT: " ", EVALUATOR_TEST_POISON_RULE: "" }),
    ).toBeNull();
  });

  it("reads the single-entry form, whose tenant id may contain colons", () => {
    expect(
      parseEvaluatorFaults({
        EVALUATOR_TEST_DELAY_TENANT: "tenant:with:colons:250",
        EVALUATOR_TEST_POISON_RULE: "r9",
      }),
    ).toEqual({ delays: [{ tenant: "tenant:with:colons", prefix: false, ms: 250 }], poisonRuleId: "r9" });
  });

  it("reads a comma-separated list with prefix entries", () => {
    expect(parseEvaluatorFaults({ EVALUATOR_TEST_DELAY_TENANT: "t1:5, slow-*:60000,*:0" })).toEqual({
      delays: [
        { tenant: "t1", prefix: false, ms: 5 },
        { tenant: "slow-", prefix: true, ms: 60_000 },
        { tenant: "", prefix: true, ms: 0 },
      ],
      poisonRuleId: null,
    });
  });

  it.each([
    ["t1", /no :<ms>/],
    ["t1:", /"" is not a number of ms/],
    ["t1:-5", /"-5" is not a number of ms/],
    ["t1:1e3", /"1e3" is not a number of ms/],
    [":100", /no tenant id/],
    ["t1:5,,t2:5", /entry ""/],
    ["sl*w:5", /only allowed at the end/],
  ])("rejects %j with a message naming the variable and the entry", (value, problem) => {
    const message = parseError({ EVALUATOR_TEST_DELAY_TENANT: value });
    expect(message.startsWith("EVALUATOR_TEST_DELAY_TENANT: ")).toBe(true);
    expect(message).toMatch(problem);
    expect(message).toContain("<tenant id>:<ms>");
  });
});

describe("delayOf", () => {
  const spec = parseEvaluatorFaults({ EVALUATOR_TEST_DELAY_TENANT: "slow-1:10,slow-*:20" })!;

  it("matches exact ids and prefixes; the first matching entry wins", () => {
    expect(delayOf(spec, "slow-1")).toBe(10);
    expect(delayOf(spec, "slow-2")).toBe(20);
    expect(delayOf(spec, "slow-")).toBe(20);
    expect(delayOf(spec, "fast-1")).toBeNull();
    expect(delayOf(spec, "slow")).toBeNull();
  });
});

describe("createEvaluatorFaults", () => {
  const rules = (...ids: string[]) => ids.map((id) => thresholdRule({ id }));

  it("delays a matching tenant on the clock, and not the others", async () => {
    const clock = new ManualClock(0);
    const faults = createEvaluatorFaults(
      parseEvaluatorFaults({ EVALUATOR_TEST_DELAY_TENANT: "slow-*:1000" })!,
      clock,
    );
    await faults.beforeEvaluate({ tenantId: "fast", rules: [] }, new AbortController().signal);
    let done = false;
    const delayed = faults
      .beforeEvaluate({ tenantId: "slow-7", rules: [] }, new AbortController().signal)
      .then(() => {
        done = true;
      });
    await clock.advance(999);
    expect(done).toBe(false);
    await clock.advance(1);
    await delayed;
    expect(done).toBe(true);
  });

  it("ends a delay when the budget aborts", async () => {
    const clock = new ManualClock(0);
    const faults = createEvaluatorFaults(
      parseEvaluatorFaults({ EVALUATOR_TEST_DELAY_TENANT: "t1:60000" })!,
      clock,
    );
    const budget = new AbortController();
    const delayed = faults.beforeEvaluate({ tenantId: "t1", rules: [] }, budget.signal);
    budget.abort(new Error("over budget"));
    await expect(delayed).rejects.toThrow("over budget");
  });

  it("throws for a tenant that has the poisoned rule only", async () => {
    const faults = createEvaluatorFaults(
      parseEvaluatorFaults({ EVALUATOR_TEST_POISON_RULE: "r9" })!,
      new ManualClock(0),
    );
    const signal = new AbortController().signal;
    await expect(
      faults.beforeEvaluate({ tenantId: "t1", rules: rules("r1") }, signal),
    ).resolves.toBeUndefined();
    await expect(faults.beforeEvaluate({ tenantId: "t1", rules: rules("r1", "r9") }, signal)).rejects.toThrow(
      "test fault: rule r9 is poisoned",
    );
  });
});

describe("clockSkewMs and skewedClock", () => {
  it("reads shard-<SHARD_INDEX> of the skew folder; 0 without the folder or the file; a non-number is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "eo-skew-"));
    try {
      writeFileSync(join(dir, "shard-2"), "20000\n");
      writeFileSync(join(dir, "shard-3"), "soon");
      expect(clockSkewMs({ [CLOCK_SKEW_DIR_ENV]: dir, SHARD_INDEX: "2" })).toBe(20_000);
      expect(clockSkewMs({ [CLOCK_SKEW_DIR_ENV]: dir, SHARD_INDEX: "1" })).toBe(0);
      expect(clockSkewMs({ SHARD_INDEX: "2" })).toBe(0);
      expect(() => clockSkewMs({ [CLOCK_SKEW_DIR_ENV]: dir, SHARD_INDEX: "3" })).toThrow(
        /shard-3 holds "soon"/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a skewed clock reads ahead by the skew and keeps the timers of the clock it wraps", () => {
    const base = { now: () => 1_000, setTimeout: () => "handle", clearTimeout: () => undefined };
    const skewed = skewedClock(base, -250);
    expect(skewed.now()).toBe(750);
    expect(skewed.setTimeout(() => undefined, 5)).toBe("handle");
  });
});
