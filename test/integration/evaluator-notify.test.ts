/**
 * NOTIFY wake-ups in the real process: a burst of 500 `telemetry_ingest` notifications wakes the
 * evaluator early, but coalesces — over the following two intervals it runs at most one tick more
 * per minimum interval the burst lasted than the timer alone would, and the regular ticks stay where they were (an
 * early tick is an extra tick in the slot it runs in; it never takes a regular tick's place).
 */
import pg from "pg";
import { expect, it } from "vitest";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually, metricValue } from "../support/evaluatorProcess.ts";

const fx = useEvaluatorFixture("notify");

const INTERVAL_MS = 4000;

it("a burst of 500 NOTIFYs wakes the loop early, at most once per minimum interval", async () => {
  await fx.tenant({ devices: [] });
  const p = fx.start({ TICK_INTERVAL_SECONDS: String(INTERVAL_MS / 1000), MIN_INTERVAL_SECONDS: "1" });
  await p.waitForLog((l) => l.msg === "listen_started");
  const ticks = () => p.logs.filter((l) => l.msg === "tick_start");
  // Wait for a regular (timer) tick after start-up, then for the minimum interval to pass.
  const regular = await p.waitForLog((l) => l.msg === "tick_start" && ticks().indexOf(l) >= 1, 15_000);
  await p.waitForLog((l) => l.msg === "tick_done" && l["slot"] === regular["slot"]);
  await eventually(
    async () => Date.now() > (regular["time"] as number) + 1200,
    5_000,
    "the minimum interval after the regular tick's start",
  );

  const burstStart = Date.now();
  const notifier = new pg.Pool({ connectionString: fx.db.url, max: 10 });
  notifier.on("error", () => {});
  try {
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          notifier.query("SELECT pg_notify('telemetry_ingest', $1)", [`${batch}-${i}`]),
        ),
      );
    }
  } finally {
    await notifier.end();
  }
  const burstMs = Date.now() - burstStart;

  await eventually(async () => metricValue((await p.get("/metrics")).body, "evaluator_wakeups_total") >= 500);
  const windowEnd = burstStart + 2 * INTERVAL_MS;
  await eventually(
    async () => Date.now() > windowEnd + 300,
    3 * INTERVAL_MS,
    "two intervals after the burst",
  );

  const inWindow = ticks().filter(
    (l) => (l["time"] as number) >= burstStart && (l["time"] as number) < windowEnd,
  );
  // The timer alone runs at most ceil(2I / I) = 2 ticks in two intervals; the burst adds at most one
  // early tick per minimum interval (1 s) it lasted, however many NOTIFYs it sent.
  const early = inWindow.filter((l) => l["trigger"] === "notify");
  expect(early.length).toBeGreaterThanOrEqual(1);
  expect(early.length).toBeLessThanOrEqual(1 + Math.ceil(burstMs / 1000));
  expect(inWindow.length - early.length).toBeLessThanOrEqual(2);
  // No two ticks closer than the minimum interval (less a little for log timestamps).
  for (let i = 1; i < inWindow.length; i++) {
    expect((inWindow[i]!["time"] as number) - (inWindow[i - 1]!["time"] as number)).toBeGreaterThanOrEqual(
      950,
    );
  }
  // It did wake the loop early: the first tick after the burst was a NOTIFY tick, well before the
  // next regular tick was due.
  expect(inWindow[0]).toMatchObject({ trigger: "notify", slot: regular["slot"] as number });
  // The early tick runs in the regular tick's slot; every slot still gets its regular (timer) tick.
  const timerSlots = ticks()
    .filter((l) => l["trigger"] === "timer")
    .map((l) => l["slot"] as number);
  for (let i = 1; i < timerSlots.length; i++) expect(timerSlots[i]).toBe(timerSlots[i - 1]! + 1);
  const metrics = (await p.get("/metrics")).body;
  expect(metricValue(metrics, "evaluator_ticks_total", { trigger: "notify" })).toBeLessThanOrEqual(2);
});

it("LISTENs again after its connection is killed, and NOTIFYs wake it again", async () => {
  const p = fx.start({ TICK_INTERVAL_SECONDS: "30", MIN_INTERVAL_SECONDS: "0.5" });
  await p.waitForLog((l) => l.msg === "listen_started");
  await p.waitForLog((l) => l.msg === "tick_done");
  const { rowCount } = await fx.pool.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'`,
  );
  expect(rowCount).toBe(1);
  await p.waitForLog((l) => l.msg === "listen_connection_lost");
  await p.waitForLog(
    (l) =>
      l.msg === "listen_started" &&
      p.logs.indexOf(l) > p.logs.findIndex((x) => x.msg === "listen_connection_lost"),
  );
  // Notifications sent while it was away are lost, so the reconnect itself wakes the loop once
  // (an early tick, between the regular ones).
  await p.waitForLog((l) => l.msg === "tick_start" && l["trigger"] === "notify");
  // And notifications arrive on the new connection.
  const wakeups = async () => metricValue((await p.get("/metrics")).body, "evaluator_wakeups_total");
  const before = await wakeups();
  await fx.pool.query("NOTIFY telemetry_ingest");
  await eventually(async () => (await wakeups()) === before + 1, 10_000, "the NOTIFY to arrive");
});
