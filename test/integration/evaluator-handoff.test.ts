/**
 * Two evaluator processes with overlapping membership — every tenant moved from shard 1 to shard 0
 * (prev_shard_index = 1), so both consider it every tick — run 20+ ticks side by side. The Valkey
 * tick lease must make every tenant-slot evaluated exactly once across both processes, and the
 * alerts table must hold one row per fingerprint whose occurrences equal the evaluations.
 *
 * moved_at lies in the future on purpose: the hand-off overlap normally lasts one tick interval;
 * here it must last the whole test.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  createEvaluatorWorld,
  type EvaluatorProcess,
  type EvaluatorWorld,
  type LogLine,
  startEvaluator,
} from "../support/evaluatorProcess.ts";
import { uniqueTenantId } from "../support/valkey.ts";

let world: EvaluatorWorld;
const processes: EvaluatorProcess[] = [];

beforeEach(async () => {
  world = await createEvaluatorWorld("handoff", 2);
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
  await world.destroy();
});

const TENANTS = 10;
const TICKS = 20;

it("two evaluators with overlapping membership evaluate every tenant-slot exactly once", {
  timeout: 90_000,
}, async () => {
  const db = world.db.pool;
  const tenants = Array.from({ length: TENANTS }, () => world.track(uniqueTenantId()));
  await db.query(
    `INSERT INTO tenants (id, shard_set, shard_index, prev_shard_index, moved_at)
     SELECT unnest($1::text[]), $2, 0, 1, now() + interval '1 hour'`,
    [tenants, world.shardSet],
  );
  await db.query("INSERT INTO devices (tenant_id, id) SELECT unnest($1::text[]), 'd1'", [tenants]);
  // True on every evaluation once the one reading is in the buffer: fire once, then still-firing.
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, window_seconds, min_count)
     SELECT unnest($1::text[]), 'w', 'temp', 'window', '>', 10, 3600, 1`,
    [tenants],
  );
  await db.query(
    "INSERT INTO telemetry (tenant_id, device_id, metric, ts, value) SELECT unnest($1::text[]), 'd1', 'temp', now(), 50",
    [tenants],
  );

  const env = { TICK_INTERVAL_SECONDS: "1", CONCURRENCY: "4" };
  const a = startEvaluator(world.env(0, env));
  const b = startEvaluator(world.env(1, env));
  processes.push(a, b);
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
  const { rows } = await db.query<{ tenant_id: string; rows: number; occurrences: number; state: string }>(
    `SELECT tenant_id, count(*)::int AS rows, max(occurrences) AS occurrences, max(state) AS state
       FROM alerts GROUP BY tenant_id, fingerprint`,
  );
  expect(rows).toHaveLength(TENANTS);
  for (const r of rows) {
    const evaluated = all.filter((l) => l["tenant"] === r.tenant_id).length;
    expect(r).toMatchObject({ rows: 1, state: "open", occurrences: evaluated });
  }
});
