/**
 * Interleavings of several evaluators on the real components: real PostgreSQL (the fence, the
 * telemetry read, the alert writes), real Valkey/Redis Lua, the real tick runner and pipeline, and a
 * controllable clock. A schedule is data — a list of {@link Step}s — so a generated one (fast-check)
 * and a hand-written reproduction run through the same {@link runSchedule}, and every evaluation is
 * recorded for the history checker (`history.ts`).
 *
 * Evaluators play shard pods: `pods[i]` is a pod of shard `shards[i]`, so two pods of one shard
 * stand for a maxSurge rollout. What a step can do to them: tick, overrun (the tenant's commit hangs
 * past its budget, to finish later — or never, when the pod is killed), restart with a new interval,
 * lose Valkey (its circuit breaker trips), have a tenant's Valkey state flushed, move a tenant to
 * another shard (a reshard's commit), ingest readings, hold a reading in an open transaction
 * (committed late), and open a maintenance window. The `alert_events` rows are read with the alerts.
 */

import { randomUUID } from "node:crypto";
import fc from "fast-check";
import type { Cluster, Redis } from "ioredis";
import pg from "pg";
import pino from "pino";
import { Registry } from "prom-client";
import { createEvaluatorMetrics } from "../../evaluator/src/metrics.ts";
import { readRebuiltState } from "../../evaluator/src/state/rebuild.ts";
import { ValkeyState } from "../../evaluator/src/state/valkeyState.ts";
import { createPgStore, type EvaluatorStore } from "../../evaluator/src/store/pgStore.ts";
import { CircuitBreaker } from "../../evaluator/src/tick/circuitBreaker.ts";
import { ManualClock } from "../../evaluator/src/tick/clock.ts";
import { isValkeyOutage } from "../../evaluator/src/tick/outages.ts";
import { shardOffsetMs, slotOf } from "../../evaluator/src/tick/slotSchedule.ts";
import type { StateGateway } from "../../evaluator/src/tick/tenantPipeline.ts";
import { TickRunner } from "../../evaluator/src/tick/tickRunner.ts";
import { isPostgresOutage } from "../../runtime/postgresOutage.ts";
import {
  type AlertEventRow,
  type AlertRow,
  checkHistory,
  type ExpectedReading,
  formatViolations,
  HISTORY_ALERT_EVENTS_SQL,
  HISTORY_ALERTS_SQL,
  type HistoryInput,
  HistoryRecorder,
  type HistorySummary,
} from "./history.ts";
import { deleteTenantKeys } from "./valkey.ts";

/** One thing that happens in a schedule. Indexes wrap around (modulo the pods/tenants there are). */
export type Step =
  /** Pod `pod` runs a tick now. */
  | { readonly kind: "tick"; readonly pod: number }
  /** The next slot as the schedulers run it: every pod ticks at `s·I + its shard's offset`. */
  | { readonly kind: "slot" }
  /** Time passes (budget timers fire). */
  | { readonly kind: "advance"; readonly ms: number }
  /** A reading of `tenant`'s device `device` is inserted (and committed). */
  | { readonly kind: "ingest"; readonly tenant: number; readonly device: number; readonly value: number }
  /** The same, in a transaction left open until a `commitLate` (a slow ingest). */
  | { readonly kind: "ingestLate"; readonly tenant: number; readonly device: number; readonly value: number }
  /** The oldest open ingest transaction commits. */
  | { readonly kind: "commitLate" }
  /** A reshard moves `tenant` to shard `shard` (prev_shard_index, moved_at as the operator sets them). */
  | { readonly kind: "move"; readonly tenant: number; readonly shard: number }
  /** Pod `pod` ticks, and its first commit hangs past the tenant's budget (an overrun). */
  | { readonly kind: "overrun"; readonly pod: number }
  /** The oldest hung commit of a live pod goes on (late). */
  | { readonly kind: "release" }
  /** Pod `pod` is killed (its hung commits never finish) and starts again, with `intervalMs`. */
  | { readonly kind: "restart"; readonly pod: number; readonly intervalMs: number }
  /** Valkey's keys of `tenant` are lost (a flush, a failover without the data). */
  | { readonly kind: "flush"; readonly tenant: number }
  /** Pod `pod` loses (or regains) Valkey: its calls fail and its breaker trips. */
  | { readonly kind: "valkey"; readonly pod: number; readonly up: boolean }
  /** The suite's topology change `action` for `tenant` (see {@link InterleavingOptions.topology}). */
  | { readonly kind: "topology"; readonly action: number; readonly tenant: number }
  /**
   * A maintenance window of `tenant` opens now for `ms` (tick clock), over device `device` or, when
   * it is null, the whole tenant.
   */
  | {
      readonly kind: "maintenance";
      readonly tenant: number;
      readonly device: number | null;
      readonly ms: number;
    };

type Weighted = { readonly weight: number; readonly arbitrary: fc.Arbitrary<Step> };

/**
 * The generated schedules' steps, over 3 pods, 3 tenants and 2 devices each: ticks, time passing,
 * ingests (some committed late), moves, overruns and their late commits, and restarts with one of
 * `restartIntervalsMs`; `extra` adds steps of a suite's own (Valkey faults, maintenance windows).
 */
export function scheduleStep(
  restartIntervalsMs: readonly number[],
  extra: readonly Weighted[] = [],
): fc.Arbitrary<Step> {
  const ingest = <K extends "ingest" | "ingestLate">(kind: K) =>
    fc.record({
      kind: fc.constant(kind),
      tenant: fc.nat(2),
      device: fc.nat(1),
      value: fc.integer({ min: 0, max: 100 }),
    });
  return fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant("tick" as const), pod: fc.nat(2) }) },
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant("advance" as const),
        ms: fc.integer({ min: 1_000, max: 45_000 }),
      }),
    },
    { weight: 8, arbitrary: ingest("ingest") },
    { weight: 1, arbitrary: ingest("ingestLate") },
    { weight: 1, arbitrary: fc.constant({ kind: "commitLate" as const }) },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant("move" as const), tenant: fc.nat(2), shard: fc.nat(1) }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("overrun" as const), pod: fc.nat(2) }) },
    { weight: 2, arbitrary: fc.constant({ kind: "release" as const }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("restart" as const),
        pod: fc.nat(2),
        intervalMs: fc.constantFrom(...restartIntervalsMs),
      }),
    },
    ...extra,
  );
}

/** The tenants' default rules: one of each stateful kind and a threshold with a cooldown. */
export const RULES: readonly Record<string, unknown>[] = [
  { id: "hot", rule_type: "threshold", operator: ">", threshold: 70, cooldown_seconds: 90 },
  { id: "win", rule_type: "window", operator: ">", threshold: 50, window_seconds: 120, min_count: 2 },
  {
    id: "anom",
    rule_type: "anomaly",
    operator: null,
    threshold: null,
    params: { minSamples: 3, k: 2, minStddev: 1 },
  },
  { id: "rise", rule_type: "pattern", operator: null, threshold: null, window_seconds: 180, min_count: 2 },
];

/** Settings of one run. */
export interface InterleavingOptions {
  readonly db: pg.Pool;
  /** Connection string of `db` (late ingests open connections of their own). */
  readonly dbUrl: string;
  /** One server, or a Valkey Cluster (see {@link topology}). */
  readonly valkey: Redis | Cluster;
  readonly tenants: number;
  /** Shard of each pod (two pods of one shard: a rollout's overlap). */
  readonly shards: readonly number[];
  readonly intervalMs: number;
  readonly budgetMs: number;
  /** `alert_rules` columns of each tenant's rules (default {@link RULES}; metric "temp", no cooldown unless given). */
  readonly rules?: readonly Record<string, unknown>[];
  /**
   * Plays a `topology` step: a change of the Valkey servers under the evaluators (a Cluster's slot
   * migration or failover), for the tenant the step names. It runs beside the steps that follow
   * and is awaited before the next topology step and before the run quiesces.
   */
  readonly topology?: (action: number, tenantId: string) => Promise<void>;
  /** Called after the run, before its Valkey keys are deleted (to look at the stored state). */
  readonly inspect?: (tenantIds: readonly string[]) => Promise<void>;
}

interface HeldCommit {
  readonly pod: Pod;
  readonly release: () => void;
  /** Settles when the released commit has been made (or refused). */
  readonly committed: Promise<unknown>;
}

interface Pod {
  readonly index: number;
  readonly shard: number;
  readonly token: string;
  readonly runner: TickRunner;
  readonly intervalMs: number;
  /** Valkey calls fail while false. */
  valkeyUp: boolean;
  /** The next commit of this pod hangs (an overrun armed). */
  armed: ((held: HeldCommit) => void) | null;
  alive: boolean;
}

/** The outcome of one run: what the checker needs, and the steps as they were applied. */
export interface InterleavingRun {
  readonly check: HistoryInput;
  readonly log: readonly string[];
  /** The largest offset of the pods' shards (invariant (c): no gap above I plus it). */
  readonly maxOffsetMs: number;
}

/** A Valkey outage as ioredis reports one (a connection refused). */
function valkeyDown(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379 (test outage)"), {
    code: "ECONNREFUSED",
  });
}

/**
 * Runs `steps` against a fresh shard set and fresh tenants, then quiesces (hung commits of live pods
 * finish, Valkey comes back, open ingests commit, every pod ticks until every reading is judged),
 * and returns the history for {@link checkHistory}. Cleans its Valkey keys up.
 */
export async function runSchedule(
  opts: InterleavingOptions,
  steps: readonly Step[],
): Promise<InterleavingRun> {
  const { db, valkey } = opts;
  const runId = randomUUID().slice(0, 8);
  const shardSet = `interleave/run-${runId}`;
  const shardCount = Math.max(...opts.shards) + 1;
  const I = opts.intervalMs;
  // Slot-aligned, so slot arithmetic reads well in failures.
  const start = Math.floor(Date.now() / I) * I;
  const clock = new ManualClock(start);
  const history = new HistoryRecorder();
  const log: string[] = [];
  const note = (kind: string, detail: string, tenantId?: string) => {
    history.note(kind, detail, clock.now(), tenantId);
    log.push(`${clock.now() - start}ms ${kind} ${detail}`);
  };

  await db.query("INSERT INTO shard_sets (name, shard_count) VALUES ($1, $2)", [shardSet, shardCount]);
  const tenantIds = Array.from({ length: opts.tenants }, (_, i) => `il-${runId}-${i}`);
  const devices = ["d1", "d2"];
  for (const [i, id] of tenantIds.entries()) {
    await db.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ($1, $2, $3)", [
      id,
      shardSet,
      opts.shards[i % opts.shards.length]!,
    ]);
    for (const d of devices) await db.query("INSERT INTO devices (tenant_id, id) VALUES ($1, $2)", [id, d]);
    for (const r of opts.rules ?? RULES) {
      const row: Record<string, unknown> = { metric: "temp", cooldown_seconds: 0, ...r };
      const names = Object.keys(row);
      await db.query(
        `INSERT INTO alert_rules (tenant_id, ${names.join(", ")})
         VALUES ($1, ${names.map((_, k) => `$${k + 2}`).join(", ")})`,
        [id, ...names.map((n) => (n === "params" ? JSON.stringify(row[n]) : row[n]))],
      );
    }
  }

  const held: HeldCommit[] = [];
  const lateIngests: { client: pg.Client; reading: ExpectedReading }[] = [];
  const expected: ExpectedReading[] = [];
  let lastTs = start - 60_000;

  const makePod = (index: number, intervalMs: number): Pod => {
    const shard = opts.shards[index]!;
    const token = `${shardSet}#${shard}#pod${index}-${randomUUID().slice(0, 6)}`;
    const state = new ValkeyState(valkey, { wallClock: () => clock.now() });
    const pgStore = createPgStore(db);
    const pod: Pod = {
      index,
      shard,
      token,
      intervalMs,
      valkeyUp: true,
      armed: null,
      alive: true,
      runner: undefined as unknown as TickRunner,
    };
    const guard =
      <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        if (!pod.valkeyUp) throw valkeyDown();
        return fn(...a);
      };
    const gateway: StateGateway = {
      loadTenantState: guard((plan, fence, o) => state.loadTenantState(plan, fence, o)),
      storeTenantState: guard((plan, snapshot, delta) => state.storeTenantState(plan, snapshot, delta)),
      releaseTickLease: guard((lease) => state.releaseTickLease(lease)),
      forget: (t) => state.forget(t),
      retainTenants: (ids) => state.retainTenants(ids),
    };
    const store: EvaluatorStore = {
      ...pgStore,
      async commitEvaluation(tenantId, writes, commit) {
        const arm = pod.armed;
        if (!arm) return pgStore.commitEvaluation(tenantId, writes, commit);
        pod.armed = null;
        let done: (v: unknown) => void = () => {};
        const committed = new Promise((r) => {
          done = r;
        });
        // Hangs until released (late), or forever when the pod is killed meanwhile.
        await new Promise<void>((release) => arm({ pod, release, committed }));
        if (!pod.alive) await new Promise<never>(() => {});
        try {
          return await pgStore.commitEvaluation(tenantId, writes, commit);
        } finally {
          done(undefined);
        }
      },
    };
    const breaker = (isOutage: (e: unknown) => boolean) =>
      new CircuitBreaker({ name: "x", clock, failureThreshold: 2, cooldownMs: 20_000, isOutage });
    (pod as { runner: TickRunner }).runner = new TickRunner({
      settings: {
        shardSet,
        shardIndex: shard,
        intervalMs,
        tenantBudgetMs: opts.budgetMs,
        concurrency: 4,
      },
      store,
      state: gateway,
      rebuild: (plan, fence, now) => readRebuiltState(db, plan, fence, now),
      clock,
      log: pino({ level: "silent" }),
      metrics: createEvaluatorMetrics(new Registry()),
      breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
      token,
      onEvaluation: history.record,
    });
    return pod;
  };

  const pods = opts.shards.map((_, i) => makePod(i, I));
  /** The topology change under way (see {@link InterleavingOptions.topology}). */
  let topologyChange: Promise<unknown> = Promise.resolve();
  const tick = (pod: Pod) =>
    pod.runner.runTick({ slot: slotOf(clock.now(), pod.intervalMs), now: clock.now(), trigger: "timer" });

  const ingest = async (tenant: number, device: number, value: number, late: boolean) => {
    lastTs = Math.max(lastTs + 1, clock.now() - 1000);
    const reading: ExpectedReading = {
      tenantId: tenantIds[tenant % tenantIds.length]!,
      deviceId: devices[device % devices.length]!,
      metric: "temp",
      ts: lastTs,
      value,
    };
    const sql = `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
                 VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), $5)`;
    const args = [reading.tenantId, reading.deviceId, reading.metric, reading.ts, reading.value];
    if (!late) {
      await db.query(sql, args);
      expected.push(reading);
      return;
    }
    // A connection of its own (not the pool's: the evaluators need every pooled one).
    const client = new pg.Client({ connectionString: opts.dbUrl });
    await client.connect();
    await client.query("BEGIN");
    await client.query(sql, args);
    lateIngests.push({ client, reading });
  };
  const commitLate = async () => {
    const late = lateIngests.shift();
    if (!late) return;
    await late.client.query("COMMIT");
    await late.client.end();
    expected.push(late.reading);
  };

  for (const step of steps) {
    if (process.env["EO_INTERLEAVING_DEBUG"]) console.error(runId, JSON.stringify(step));
    switch (step.kind) {
      case "tick": {
        const pod = pods[step.pod % pods.length]!;
        note("tick", `pod ${pod.index} (shard ${pod.shard}, I=${pod.intervalMs})`);
        await tick(pod);
        break;
      }
      case "advance":
        await clock.advance(step.ms);
        break;
      case "slot": {
        const s = Math.floor(clock.now() / I) + 1;
        const order = [...pods].sort(
          (a, b) =>
            shardOffsetMs(shardSet, a.shard, a.intervalMs) - shardOffsetMs(shardSet, b.shard, b.intervalMs),
        );
        for (const pod of order) {
          const at = s * pod.intervalMs + shardOffsetMs(shardSet, pod.shard, pod.intervalMs);
          if (at > clock.now()) await clock.advance(at - clock.now());
          note("tick", `pod ${pod.index} (shard ${pod.shard}) at its offset`);
          await tick(pod);
        }
        break;
      }
      case "ingest":
      case "ingestLate":
        await ingest(step.tenant, step.device, step.value, step.kind === "ingestLate");
        break;
      case "commitLate":
        await commitLate();
        break;
      case "move": {
        const id = tenantIds[step.tenant % tenantIds.length]!;
        const shard = step.shard % shardCount;
        const { rowCount } = await db.query(
          `UPDATE tenants SET prev_shard_index = shard_index, shard_index = $2,
                              moved_at = to_timestamp($3::float8 / 1000)
            WHERE id = $1 AND shard_index <> $2`,
          [id, shard, clock.now()],
        );
        if (rowCount) note("hand-off", `to shard ${shard}`, id);
        break;
      }
      case "overrun": {
        const pod = pods[step.pod % pods.length]!;
        let reached: (h: HeldCommit) => void = () => {};
        const hung = new Promise<HeldCommit>((r) => {
          reached = r;
        });
        pod.armed = reached;
        note("overrun", `pod ${pod.index}`);
        const running = tick(pod);
        const first = await Promise.race([running.then(() => null), hung]);
        if (first === null) {
          pod.armed = null; // nothing to commit this tick
          break;
        }
        held.push(first);
        // The other tenants of the tick finish; the hung one is abandoned at its budget.
        await Promise.race([running, new Promise((r) => setTimeout(r, 200))]);
        await clock.advance(opts.budgetMs + 1);
        await running;
        break;
      }
      case "release": {
        const h = held.shift();
        if (!h) break;
        note("release", `pod ${h.pod.index}'s late commit`);
        h.release();
        if (h.pod.alive) {
          await h.committed;
          // Its Valkey store follows the commit.
          await new Promise((r) => setTimeout(r, 20));
        }
        break;
      }
      case "restart": {
        const i = step.pod % pods.length;
        const old = pods[i]!;
        old.alive = false;
        for (const h of held.filter((x) => x.pod === old)) h.release(); // released into a dead pod
        pods[i] = makePod(i, step.intervalMs);
        note("restart", `pod ${i} killed, started with I=${step.intervalMs}`);
        break;
      }
      case "flush": {
        const id = tenantIds[step.tenant % tenantIds.length]!;
        await deleteTenantKeys(valkey, id);
        note("flush", "Valkey keys lost", id);
        break;
      }
      case "valkey": {
        const pod = pods[step.pod % pods.length]!;
        if (pod.valkeyUp !== step.up) note("outage", `pod ${pod.index} Valkey ${step.up ? "back" : "down"}`);
        pod.valkeyUp = step.up;
        break;
      }
      case "topology": {
        const id = tenantIds[step.tenant % tenantIds.length]!;
        if (!opts.topology) throw new Error("a topology step needs InterleavingOptions.topology");
        await topologyChange;
        note("topology", `change ${step.action} begins`, id);
        // Runs beside the next steps; a failure fails the run when awaited.
        const change = opts
          .topology(step.action, id)
          .then(() => note("topology", `change ${step.action} done`, id));
        change.catch(() => undefined);
        topologyChange = change;
        break;
      }
      case "maintenance": {
        const id = tenantIds[step.tenant % tenantIds.length]!;
        const device = step.device === null ? null : devices[step.device % devices.length]!;
        await db.query(
          `INSERT INTO maintenance_windows (tenant_id, device_id, starts_at, ends_at)
           VALUES ($1, $2, to_timestamp($3::float8 / 1000), to_timestamp($4::float8 / 1000))`,
          [id, device, clock.now(), clock.now() + step.ms],
        );
        note("maintenance", `${device ?? "every device"} for ${step.ms} ms`, id);
        break;
      }
    }
  }

  if (process.env["EO_INTERLEAVING_DEBUG"]) console.error(runId, "quiesce");
  // Quiesce: a topology change finishes, hung commits of live pods finish, Valkey is back, open
  // ingests commit; then every pod ticks a few intervals (hand-offs expire, every reading is read
  // and judged).
  await topologyChange;
  for (const h of held.splice(0)) h.release();
  for (const pod of pods) await pod.runner.drain();
  while (lateIngests.length > 0) await commitLate();
  for (const pod of pods) pod.valkeyUp = true;
  const longest = Math.max(...pods.map((p) => p.intervalMs));
  for (let round = 0; round < 3; round++) {
    await clock.advance(longest);
    for (const pod of pods) await tick(pod);
  }
  if (process.env["EO_INTERLEAVING_DEBUG"]) console.error(runId, "drain");
  for (const pod of pods) await pod.runner.drain();

  const { rows } = await db.query<AlertRow>(HISTORY_ALERTS_SQL, [tenantIds]);
  const { rows: alertEvents } = await db.query<AlertEventRow>(HISTORY_ALERT_EVENTS_SQL, [tenantIds]);
  try {
    await opts.inspect?.(tenantIds);
  } finally {
    for (const id of tenantIds) await deleteTenantKeys(valkey, id);
  }
  return {
    check: {
      records: history.records,
      events: history.events,
      expectedReadings: expected,
      alerts: rows,
      alertEvents,
      tenants: tenantIds,
    },
    log,
    maxOffsetMs: Math.max(...opts.shards.map((s) => shardOffsetMs(shardSet, s, I))),
  };
}

/**
 * {@link runSchedule}, then the history checker over what it recorded: throws with the violations
 * and the steps as they were applied when an invariant fails, else returns the run and its summary.
 */
export async function runAndCheck(
  opts: InterleavingOptions,
  steps: readonly Step[],
): Promise<InterleavingRun & { readonly summary: HistorySummary }> {
  const run = await runSchedule(opts, steps);
  const result = checkHistory(run.check);
  if (result.violations.length > 0) {
    throw new Error(`${formatViolations(result.violations)}\n--- steps ---\n${run.log.join("\n")}`);
  }
  return { ...run, summary: result.summary };
}
