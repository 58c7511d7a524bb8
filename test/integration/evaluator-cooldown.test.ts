/**
 * Cooldowns in the real process: after a rule fires for a device, a new fire of it is held back for
 * `cooldown_seconds` even when its condition flaps (true → false → true) — counted from the
 * evaluator's own per-tenant evaluation log and metrics, not from alert rows, which the PostgreSQL
 * dedup would keep at one anyway. Once the cooldown has passed, the same flap fires again.
 */
import { expect, it } from "vitest";
import { type RuleSeed, useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually, type LogLine, metricValue } from "../support/evaluatorProcess.ts";

const fx = useEvaluatorFixture("cooldown");

it("a rule that fired does not fire again within its cooldown, and does after it", async () => {
  const hot = (cooldown_seconds: number): RuleSeed => ({
    id: "hot",
    rule_type: "threshold",
    operator: ">",
    threshold: 30,
    cooldown_seconds,
  });
  const long = await fx.tenant({ rules: [hot(300)] }); // cooldown 300 s: the re-fire is held back
  const short = await fx.tenant({ rules: [hot(2)] }); // cooldown 2 s: the re-fire happens once it passed
  const p = fx.start({ TICK_INTERVAL_SECONDS: "1", ALLOWED_LATENESS_SECONDS: "0" });
  await p.waitForLog((l) => l.msg === "tick_done");

  const evaluationsOf = (t: string) =>
    p.logs.filter((l) => l.msg === "tenant_evaluated" && l["tenant"] === t);
  const sum = (lines: LogLine[], field: string) => lines.reduce((n, l) => n + (l[field] as number), 0);
  const insert = (t: string, value: number) => fx.reading(t, value);
  /** Inserts a reading and waits until a tick has evaluated it. */
  const step = async (t: string, value: number) => {
    const before = evaluationsOf(t).length;
    await insert(t, value);
    await p.waitForLog(
      (l) =>
        l.msg === "tenant_evaluated" &&
        l["tenant"] === t &&
        (l["readings"] as number) > 0 &&
        evaluationsOf(t).indexOf(l) >= before,
      10_000,
    );
  };
  const rows = async (t: string) =>
    (
      await fx.pool.query<{ state: string; first_seen: Date }>(
        "SELECT state, first_seen FROM alerts WHERE tenant_id = $1 ORDER BY id",
        [t],
      )
    ).rows;

  // Flap within the cooldown: fire, resolve, condition true again → held back.
  await step(long, 42);
  await step(long, 10);
  await step(long, 43);
  expect(sum(evaluationsOf(long), "fired")).toBe(1);
  expect(sum(evaluationsOf(long), "resolved")).toBe(1);
  expect(sum(evaluationsOf(long), "suppressedByCooldown")).toBe(1);
  expect((await rows(long)).map((r) => r.state)).toEqual(["resolved"]);
  // Still evaluated every tick meanwhile (so it can resolve); only the new fire is held back.
  expect(evaluationsOf(long).length).toBeGreaterThanOrEqual(3);

  // Flap after the cooldown: fire, resolve, wait until 2 s after the fire, true again → fires.
  await step(short, 42);
  await step(short, 10);
  const [first] = await rows(short);
  await eventually(
    async () => Date.now() > first!.first_seen.getTime() + 2500,
    10_000,
    "the cooldown to pass",
  );
  await step(short, 44);
  expect(sum(evaluationsOf(short), "fired")).toBe(2);
  expect(sum(evaluationsOf(short), "suppressedByCooldown")).toBe(0);
  expect((await rows(short)).map((r) => r.state)).toEqual(["resolved", "open"]);

  const metrics = (await p.get("/metrics")).body;
  expect(metricValue(metrics, "evaluator_alerts_total", { action: "fire" })).toBe(3);
  expect(metricValue(metrics, "evaluator_alerts_suppressed_total", { reason: "cooldown" })).toBe(1);
});
