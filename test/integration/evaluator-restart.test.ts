/**
 * Window state lives in Valkey, not in the process: a window rule that has seen two of its three
 * qualifying readings keeps them across a restart of the evaluator, and the next qualifying
 * reading after the restart fires it. The first two readings are deleted from telemetry before the
 * restart, so the new process can only know them from Valkey.
 */
import { expect, it } from "vitest";
import { windowBufferKey } from "../../evaluator/src/state/keys.ts";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually } from "../support/evaluatorProcess.ts";
import { windowBufferLength } from "../support/valkey.ts";

const fx = useEvaluatorFixture("restart");

it("a window rule keeps accumulating across an evaluator restart and fires on the next qualifying reading", async () => {
  const t = await fx.tenant({
    rules: [
      { id: "w", rule_type: "window", operator: ">", threshold: 50, window_seconds: 600, min_count: 3 },
    ],
  });
  const db = fx.pool;
  const valkey = fx.valkey();
  const buffer = windowBufferKey(t, "w", "d1");
  const env = { TICK_INTERVAL_SECONDS: "1", ALLOWED_LATENESS_SECONDS: "0" };
  const insert = (value: number) => fx.reading(t, value);

  const first = fx.start(env);
  await first.waitForLog((l) => l.msg === "tick_done");
  await insert(60);
  await eventually(
    async () => (await windowBufferLength(valkey, buffer)) === 1,
    10_000,
    "first reading in the window buffer",
  );
  await insert(70);
  await eventually(
    async () => (await windowBufferLength(valkey, buffer)) === 2,
    10_000,
    "second reading in the window buffer",
  );
  expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });

  // Only Valkey remembers them now; and two of three do not fire.
  await db.query("DELETE FROM telemetry WHERE tenant_id = $1", [t]);
  expect((await db.query("SELECT count(*)::int AS n FROM alerts WHERE tenant_id = $1", [t])).rows[0].n).toBe(
    0,
  );

  const second = fx.start(env);
  await second.waitForLog((l) => l.msg === "tick_done");
  expect((await db.query("SELECT count(*)::int AS n FROM alerts WHERE tenant_id = $1", [t])).rows[0].n).toBe(
    0,
  );
  await insert(80);
  const alert = await eventually(
    async () =>
      (await db.query("SELECT rule_id, device_id, state, value FROM alerts WHERE tenant_id = $1", [t]))
        .rows[0],
    10_000,
    "the window alert",
  );
  // value = the matching count: all three readings, two of them from before the restart.
  expect(alert).toEqual({ rule_id: "w", device_id: "d1", state: "open", value: 3 });
  expect(await windowBufferLength(valkey, buffer)).toBe(3);
});
