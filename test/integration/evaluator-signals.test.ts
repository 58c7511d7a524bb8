/**
 * The autoscaling signals of a real evaluator process, as a scrape sees them: the held queue depth
 * (`evaluator_queue_depth_held`) keeps the last tick's backlog between ticks, where the
 * instantaneous `evaluator_queue_depth` reads 0; it counts every due evaluation the tick could not
 * finish within the interval, and it drops back to 0 once the shard keeps up. No fixed sleeps: the
 * tests poll /metrics and match each scrape to the tick it reports (the n-th `tick_done` line for a
 * scrape whose `evaluator_ticks_total` is n: both are written in one synchronous step at the end of
 * a tick, so no scrape falls between them).
 */
import { describe, expect, it } from "vitest";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { type EvaluatorProcess, eventually, type LogLine, metricValue } from "../support/evaluatorProcess.ts";

const fx = useEvaluatorFixture("signals");

const HOT = { id: "hot", rule_type: "threshold", operator: ">", threshold: 30 } as const;

/** One scrape of /metrics, reduced to what these tests read. */
interface Scrape {
  readonly body: string;
  /** evaluator_queue_depth_held */
  readonly held: number;
  /** evaluator_queue_depth (instantaneous) */
  readonly depth: number;
  /** Ticks completed (evaluator_ticks_total, all triggers and results). */
  readonly ticks: number;
}

async function scrape(p: EvaluatorProcess): Promise<Scrape> {
  const { status, body } = await p.get("/metrics");
  expect(status).toBe(200);
  return {
    body,
    held: metricValue(body, "evaluator_queue_depth_held"),
    depth: metricValue(body, "evaluator_queue_depth"),
    ticks: metricValue(body, "evaluator_ticks_total"),
  };
}

/** The `tick_done` line of the process's n-th tick (1-based), once it has been read from stdout. */
function nthTickDone(p: EvaluatorProcess, n: number): Promise<LogLine> {
  return eventually(
    async () => p.logs.filter((l) => l.msg === "tick_done")[n - 1],
    10_000,
    `tick_done #${n}`,
  );
}

describe("evaluator_queue_depth_held", () => {
  it("holds the last tick's backlog between ticks, where the instantaneous queue depth reads 0", async () => {
    const [slow, ...others] = await fx.tenants(3, { rules: [HOT] });
    await fx.reading([slow!, ...others], 42);
    // The slow tenant is cut at its 200 ms budget every tick: one evaluation per tick not done. The
    // others finish in milliseconds, so each tick ends long before the next one (1.5 s apart).
    const p = fx.start({
      TICK_INTERVAL_SECONDS: "1.5",
      TENANT_BUDGET_MS: "200",
      EVALUATOR_TEST_DELAY_TENANT: `${slow}:60000`,
      LOG_LEVEL: "info",
    });

    // Scrape until the gaps after two different ticks have been seen.
    const scrapes: Scrape[] = [];
    const gapsAfter = new Set<number>();
    await eventually(
      async () => {
        const s = await scrape(p);
        if (s.ticks >= 1) {
          scrapes.push(s);
          if (s.depth === 0) gapsAfter.add(s.ticks);
        }
        return gapsAfter.size >= 2;
      },
      30_000,
      "scrapes between two pairs of ticks",
    );

    for (const s of scrapes) {
      const done = await nthTickDone(p, s.ticks);
      // Every scrape reads the backlog of the last completed tick, whatever the moment.
      expect(s.held, `scrape after tick #${s.ticks}`).toBe(done["backlog"]);
      expect(s.held).toBeGreaterThanOrEqual(1);
      expect(done).toMatchObject({ tenants: 3, failed: expect.any(Number) });
      expect(done["failed"] as number).toBeGreaterThanOrEqual(1);
    }
    // Between ticks the instantaneous gauge misses the backlog; the held one does not.
    const between = scrapes.filter((s) => s.depth === 0);
    expect(between.length).toBeGreaterThanOrEqual(2);
    expect(between.every((s) => s.held >= 1)).toBe(true);
    // Two scrapes of one gap read the same value: it is held, not decayed or reset.
    const sameGap = scrapes.filter((s) => s.ticks === scrapes.at(-1)!.ticks);
    expect(new Set(sameGap.map((s) => s.held)).size).toBe(1);

    // Labelled like every evaluator series (the registry's default labels).
    const [namespace, name] = fx.shardSet.split("/") as [string, string];
    const line = scrapes[0]!.body.split("\n").find((l) => l.startsWith("evaluator_queue_depth_held{"));
    expect(line).toContain(`namespace="${namespace}"`);
    expect(line).toContain(`shardset="${name}"`);
    expect(line).toContain(`shard="0"`);
    expect(scrapes[0]!.body).toContain("# TYPE evaluator_queue_depth_held gauge");
    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  });

  it("counts every evaluation a tick cannot finish within the interval, and drops to 0 once it can", async () => {
    const ids = await fx.tenants(5, { rules: [HOT] });
    await fx.reading(ids, 42);
    // The tick evaluates its tenants in id order (membership.sql); the first one is made slow.
    const { rows } = await fx.pool.query<{ id: string }>(
      "SELECT id FROM tenants WHERE shard_set = $1 ORDER BY id LIMIT 1",
      [fx.shardSet],
    );
    const first = rows[0]!.id;
    // One worker, and the first tenant holds it for its whole budget, a whole interval: it is cut
    // only after the tick's deadline (tick start + 1 s), and the other four finish after that.
    const p = fx.start({
      TICK_INTERVAL_SECONDS: "1",
      TENANT_BUDGET_MS: "1000",
      CONCURRENCY: "1",
      EVALUATOR_TEST_DELAY_TENANT: `${first}:60000`,
      LOG_LEVEL: "info",
    });

    const over = await eventually(
      async () => {
        const s = await scrape(p);
        return s.held > 0 ? s : undefined;
      },
      30_000,
      "a backlog while the shard is overloaded",
    );
    const overTick = await nthTickDone(p, over.ticks);
    expect(overTick).toMatchObject({ tenants: 5, evaluated: 4, failed: 1, backlog: 5 });
    expect(over.held).toBe(5);
    // The overrunning ticks (longer than the 1 s interval) land in finite buckets above it, so
    // histogram_quantile can read a p95 above the interval.
    const bucket = (le: string) => metricValue(over.body, "evaluator_tick_duration_seconds_bucket", { le });
    expect(over.body).toContain('le="14400"');
    expect(bucket("2.5") - bucket("1")).toBeGreaterThanOrEqual(1);

    // The shard sheds the slow tenant (as a reshard would): the next tick keeps up.
    await fx.pool.query("UPDATE tenants SET shard_index = NULL WHERE id = $1", [first]);
    const healthy = await eventually(
      async () => {
        const s = await scrape(p);
        if (s.held !== 0 || s.ticks <= over.ticks) return undefined;
        const done = await nthTickDone(p, s.ticks);
        return done["tenants"] === 4 ? { s, done } : undefined;
      },
      30_000,
      "the backlog back at 0 once the shard keeps up",
    );
    expect(healthy.done).toMatchObject({ tenants: 4, evaluated: 4, failed: 0, backlog: 0 });
    // And it holds at 0 between ticks too.
    const later = await eventually(
      async () => {
        const s = await scrape(p);
        return s.ticks > healthy.s.ticks && s.depth === 0 ? s : undefined;
      },
      30_000,
      "a scrape between two healthy ticks",
    );
    expect(later.held).toBe(0);
    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  });

  it("counts a tenant in hand-off on its new owner only, not on the shard it left", async () => {
    // Both tenants are slow (cut at their budget every tick). `mine` is shard 0's; `leaving` was
    // moved to shard 1, and shard 0 still evaluates it while the hand-off lasts (moved_at is set
    // ahead, so the hand-off outlasts the test).
    const [mine] = await fx.tenants(1, { rules: [HOT] });
    const [leaving] = await fx.tenants(1, {
      rules: [HOT],
      shardIndex: 1,
      prevShardIndex: 0,
      movedAtMs: Date.now() + 600_000,
    });
    await fx.reading([mine!, leaving!], 42);
    const p = fx.start({
      TICK_INTERVAL_SECONDS: "1.5",
      TENANT_BUDGET_MS: "200",
      EVALUATOR_TEST_DELAY_TENANT: `${mine}:60000,${leaving}:60000`,
      LOG_LEVEL: "info",
    });
    const s = await eventually(
      async () => {
        const got = await scrape(p);
        return got.ticks >= 2 ? got : undefined;
      },
      30_000,
      "two ticks",
    );
    const done = await nthTickDone(p, s.ticks);
    // Both were due on shard 0 and neither finished; only its own counts as its backlog.
    expect(done).toMatchObject({ tenants: 2, evaluated: 0, backlog: 1 });
    expect(s.held).toBe(1);
    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  });
});
