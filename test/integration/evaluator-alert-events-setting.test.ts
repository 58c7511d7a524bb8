/**
 * ALERT_EVENTS in the real process: on (the default) every alert change is an outbox row; off, the
 * alerts are written as before and `alert_events` is left alone. Judged by what each process wrote
 * for its own tenant (the alert rows and the events by kind), not by counts of ticks.
 */
import { expect, it } from "vitest";
import { type RuleSeed, useEvaluatorFixture } from "../support/evaluatorFixture.ts";

const fx = useEvaluatorFixture("alert-events-setting");

const hot: RuleSeed = { id: "hot", rule_type: "threshold", operator: ">", threshold: 30 };

it("writes an event per alert change by default, and none with ALERT_EVENTS=off", async () => {
  const withEvents = await fx.tenant({ rules: [hot] });
  const withoutEvents = await fx.tenant({ rules: [hot] });
  const alertsOf = async (t: string) =>
    (await fx.pool.query<{ state: string }>("SELECT state FROM alerts WHERE tenant_id = $1", [t])).rows.map(
      (r) => r.state,
    );
  const eventsOf = async (t: string) =>
    (
      await fx.pool.query<{ kind: string }>(
        "SELECT kind FROM alert_events WHERE tenant_id = $1 ORDER BY id",
        [t],
      )
    ).rows.map((r) => r.kind);
  /** Inserts a reading for `t` and waits until `p` has evaluated it. */
  const step = async (p: ReturnType<typeof fx.start>, t: string, value: number) => {
    const before = p.logs.length;
    await fx.reading(t, value);
    await p.waitForLog(
      (l) =>
        l.msg === "tenant_evaluated" &&
        l["tenant"] === t &&
        (l["readings"] as number) > 0 &&
        p.logs.indexOf(l) >= before,
      15_000,
    );
  };

  // One process at a time (both shard 0 of a one-shard set): each judges the tenant it is given.
  const on = fx.start({ TICK_INTERVAL_SECONDS: "1", ALLOWED_LATENESS_SECONDS: "0" });
  await on.waitForLog((l) => l.msg === "tick_done");
  await step(on, withEvents, 42);
  await step(on, withEvents, 10);
  expect(await alertsOf(withEvents)).toEqual(["resolved"]);
  expect(await eventsOf(withEvents)).toEqual(["fired", "resolved"]);
  await on.stop();

  const off = fx.start({ TICK_INTERVAL_SECONDS: "1", ALLOWED_LATENESS_SECONDS: "0", ALERT_EVENTS: "off" });
  await off.waitForLog((l) => l.msg === "tick_done");
  await step(off, withoutEvents, 42);
  await step(off, withoutEvents, 10);
  expect(await alertsOf(withoutEvents)).toEqual(["resolved"]);
  expect(await eventsOf(withoutEvents)).toEqual([]);
  // The first tenant's history is untouched by the second process.
  expect(await eventsOf(withEvents)).toEqual(["fired", "resolved"]);
});

it("refuses a value other than on or off, naming the setting", async () => {
  const p = fx.start({ ALERT_EVENTS: "maybe" });
  expect((await p.exited).code).toBe(2);
  expect(p.stderrText()).toMatch(/ALERT_EVENTS.*expected on or off, got "maybe"/);
});
