/**
 * Two evaluator processes with overlapping membership — every tenant moved from shard 1 to shard 0
 * (prev_shard_index = 1), so both consider it every tick — run 20+ ticks side by side. The Valkey
 * tick lease must make every tenant-slot evaluated exactly once across both processes, and the
 * alerts table must hold one row per fingerprint whose occurrences equal the evaluations.
 *
 * moved_at lies in the future on purpose: the hand-off overlap normally lasts one tick interval;
 * here it must last the whole test.
 */
import { expect, it } from "vitest";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import type { EvaluatorProcess, LogLine } from "../support/evaluatorProcess.ts";

const fx = useEvaluatorFixture("handoff", { shards: 2 });

const TENANTS = 10;
const TICKS = 20;

it("two evaluators with overlapping membership evaluate every tenant-slot exactly once", {
  timeout: 90_000,
}, async () => {
  const tenants = await fx.tenants(TENANTS, {
    shardIndex: 0,
    prevShardIndex: 1,
    movedAtMs: Date.now() + 3_600_000,
    // True on every evaluation once the one reading is in the buffer: fire once, then still-firing.
    rules: [
      { id: "w", rule_type: "window", operator: ">", threshold: 10, window_seconds: 3600, min_count: 1 },
    ],
  });
  await fx.reading(tenants, 50);

  const env = { TICK_INTERVAL_SECONDS: "1", CONCURRENCY: "4" };
  const a = fx.start(env, { shard: 0 });
  const b = fx.start(env, { shard: 1 });
  const ticksDone = (p: EvaluatorProcess) => p.logs.filter((l) => l.msg === "tick_done");
  await a.waitForLog(() => ticksDone(a).length > TICKS, 60_000);
  await b.waitForLog(() => ticksDone(b).length > TICKS, 60_000);
  expect(await a.stop()).toEqual({ code: 0, signal: null });
  expect(await b.stop()).toEqual({ code: 0, signal: null });

  const evaluations = (p: EvaluatorProcess) => p.logs.filter((l) => l.msg === "tenant_evaluated");
  const all: LogLine[] = [...evaluations(a), ...evaluations(b)];
  const perTenantSlot = new Map<string, number>();
  for (const l of all) {
    const key = `${l["tenant"]}@${l["slot"]}`;
    perTenantSlot.set(key, (perTenantSlot.get(key) ?? 0) + 1);
  }
  // No tenant-slot evaluated twice.
  const duplicates = [...perTenantSlot].filter(([, n]) => n > 1);
  expect(duplicates).toEqual([]);

  // None missed: in every slot both processes ticked, every tenant was evaluated by one of them.
  const slotsOf = (p: EvaluatorProcess) => new Set(ticksDone(p).map((l) => l["slot"] as number));
  const slotsA = slotsOf(a);
  const common = [...slotsOf(b)].filter((s) => slotsA.has(s));
  expect(common.length).toBeGreaterThanOrEqual(TICKS - 2);
  for (const slot of common) {
    for (const t of tenants) expect(perTenantSlot.get(`${t}@${slot}`), `tenant ${t} slot ${slot}`).toBe(1);
  }
  // The overlap was real: both processes had every tenant due in their ticks, and the lease
  // turned the losing attempts into conflicts (which process wins a slot depends on the shard
  // offsets, so one of them may win them all).
  for (const p of [a, b]) expect(ticksDone(p).some((l) => l["tenants"] === TENANTS)).toBe(true);
  const conflicts = [...ticksDone(a), ...ticksDone(b)].reduce((n, l) => n + (l["conflicts"] as number), 0);
  expect(conflicts).toBeGreaterThanOrEqual(common.length * TENANTS);

  // One alert row per fingerprint, bumped once per evaluation.
  const { rows } = await fx.pool.query<{
    tenant_id: string;
    rows: number;
    occurrences: number;
    state: string;
  }>(
    `SELECT tenant_id, count(*)::int AS rows, max(occurrences) AS occurrences, max(state) AS state
       FROM alerts GROUP BY tenant_id, fingerprint`,
  );
  expect(rows).toHaveLength(TENANTS);
  for (const r of rows) {
    const evaluated = all.filter((l) => l["tenant"] === r.tenant_id).length;
    expect(r).toMatchObject({ rows: 1, state: "open", occurrences: evaluated });
  }
});
