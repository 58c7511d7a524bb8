/**
 * Evaluator benchmark: one shard's tick end to end, in process, against the real PostgreSQL and
 * Valkey, on synthetic data in a throwaway database; then the window-rule state path (per tenant:
 * load → advance → evaluate → store, with a fence kept in memory) against the original per-pair
 * GET + JSON + SET baseline on the same readings.
 *
 *   node bench/evaluator.bench.ts          this tree only
 *   npm run bench -- evaluator             also the release before the fence, side by side
 *                                          (bench/evaluator-baseline.sh)
 *
 * Settings (environment): DATABASE_URL (an existing database to connect to for CREATE DATABASE;
 * default postgres://postgres@127.0.0.1:5432/test), VALKEY_URL (default redis://127.0.0.1:6379/0),
 * BENCH_TENANTS (1000), BENCH_DEVICES (200 per tenant), BENCH_TICKS (4: the first warms up),
 * BENCH_CONCURRENCY (8), BENCH_SEQ_TENANTS (100: tenants of the sequential baseline). Each tenant
 * has 2 rules over all its devices (threshold or anomaly; window or rising pattern) and every device
 * sends one reading per tick. Lower BENCH_TENANTS if loading takes too long on a small machine (the
 * load time is printed).
 *
 * Tick k runs at T0 + k·I with T0 the current minute, and its readings are inserted (and committed)
 * just before it, stamped within the interval before it: the evaluator reads them by insert
 * transaction (the fence), and a tenant's first evaluation reads only readings younger than
 * `firstReadLookbackMs` (one hour) before its tick time, which tick 0's readings are.
 *
 * Figures: device-rule pairs evaluated per second for a whole tick (membership, batched reads with
 * the fences, Valkey state, evaluation, one commit statement per tenant, state stores); Valkey round
 * trips per tick, counted on the client and cross-checked with INFO commandstats deltas
 * (EVALSHA/EVAL calls; commands run inside scripts are not round trips; other users of a shared
 * server inflate the delta); PostgreSQL statements per tick; where a tenant's state came from
 * (kept copy, Valkey, rebuilt from PostgreSQL); the time tenants spent awaiting each step; memory:
 * peak RSS (sampled, and the OS high-water mark VmHWM), the V8 heap after a full collection once the
 * last tick is done (what the shard keeps between ticks), both also in bytes per pair, and the V8
 * heap limit the run had (BENCH_MAX_OLD_SPACE_MIB in bench/evaluator-baseline.sh caps it, as a
 * container's memory limit does: Node sizes the old space to half the limit it finds in its cgroup).
 * Then window rules only: pairs/s and round trips of the Lua path vs two baselines — (1) sequential,
 * one tenant and one pair after another as the original design ran (on the first BENCH_SEQ_TENANTS
 * window tenants, its pairs/s extrapolated), and (2) the same code at the Lua path's concurrency —
 * their ratios, and a check that all paths — and the alerts the end-to-end ticks wrote — agree on
 * which (tenant, rule, device) fire.
 *
 * The last line is `BENCH_RESULT {json}` (the headline figures). With BENCH_BASELINE_OUTPUT naming
 * a file that holds the output of the baseline release's run of this benchmark (same settings),
 * the figures are also printed before/after with their ratios (see bench/evaluator-baseline.sh).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import v8 from "node:v8";
import type { Redis } from "ioredis";
import pg from "pg";
import pino from "pino";
import { Registry } from "prom-client";
import { compileEvaluatorConfig } from "../evaluator/src/config/evaluatorConfig.ts";
import { connectClients } from "../evaluator/src/main.ts";
import { createEvaluatorMetrics } from "../evaluator/src/metrics.ts";
import { evaluateTenant, type TenantEvaluation } from "../evaluator/src/rules/evaluateTenant.ts";
import { parseRule } from "../evaluator/src/rules/parseRule.ts";
import { planTenant, type TenantInput, type TenantState } from "../evaluator/src/rules/planTenant.ts";
import { groupReadings } from "../evaluator/src/rules/readings.ts";
import type { Reading, Rule } from "../evaluator/src/rules/types.ts";
import { readRebuiltState } from "../evaluator/src/state/rebuild.ts";
import { advanceTick, applyCommit, commitOps } from "../evaluator/src/state/tenantSnapshot.ts";
import { type FenceVersion, ValkeyState } from "../evaluator/src/state/valkeyState.ts";
import { createPgStore, type EvaluatorStore, type Queryable } from "../evaluator/src/store/pgStore.ts";
import { CircuitBreaker } from "../evaluator/src/tick/circuitBreaker.ts";
import { forEachConcurrently } from "../evaluator/src/tick/concurrency.ts";
import type { StateSource } from "../evaluator/src/tick/evaluationRecord.ts";
import { isValkeyOutage } from "../evaluator/src/tick/outages.ts";
import type { StateGateway } from "../evaluator/src/tick/tenantPipeline.ts";
import { firstReadLookbackMs, TickRunner, type TickSummary } from "../evaluator/src/tick/tickRunner.ts";
import { migrateUp } from "../operator/src/migrate/runMigrations.ts";
import { systemClock } from "../runtime/clock.ts";
import { isPostgresOutage } from "../runtime/postgresOutage.ts";
import { baselineWindowStore } from "./baselineWindowStore.ts";

const env = process.env;
const ADMIN_URL = env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const VALKEY_URL = env["VALKEY_URL"] ?? "redis://127.0.0.1:6379/0";
const TENANTS = Number(env["BENCH_TENANTS"] ?? 1000);
const DEVICES = Number(env["BENCH_DEVICES"] ?? 200);
const TICKS = Math.max(2, Number(env["BENCH_TICKS"] ?? 4));
const CONCURRENCY = Number(env["BENCH_CONCURRENCY"] ?? 8);
const SEQ_TENANTS = Number(env["BENCH_SEQ_TENANTS"] ?? 100);
const BASELINE_OUTPUT = env["BENCH_BASELINE_OUTPUT"];
const BASELINE_LABEL = env["BENCH_BASELINE_LABEL"] ?? "baseline";
const INTERVAL_MS = 60_000;
const SHARD_SET = "bench/evaluator";
const PREFIX = `bench-${randomBytes(3).toString("hex")}`;
// Tick k runs at T0 + k·I; its readings are stamped within the interval before it. T0 is the
// current minute: the evaluator is not wall-clock bound, but a tenant's first evaluation reads
// readings younger than firstReadLookbackMs before its tick time only (checked in main).
const T0 = Math.floor(Date.now() / INTERVAL_MS) * INTERVAL_MS;
const BASE_SLOT = T0 / INTERVAL_MS;

const deviceId = (j: number) => `dev-${j}`;

/**
 * The reading of device j of tenant i at tick k — the same formula as in SQL below: around 50-69,
 * every 50th device hot (+40), every 40th (from 7) rising by 5 per tick, and in the last tick every
 * 97th (from 1) spikes (+100, for the anomaly rules).
 */
function value(i: number, j: number, k: number): number {
  let v = 50 + ((i * 31 + j * 17 + k * 7) % 20);
  if (j % 50 === 0) v += 40;
  if (j % 40 === 7) v = 50 + k * 5;
  if (j % 97 === 1 && k === TICKS - 1) v += 100;
  return v;
}
/**
 * When device j of tenant i reports in tick k: somewhere in the interval before the tick (spread
 * like real sensors, so a tick re-reads only the allowed-lateness overlap), same formula in SQL.
 */
function readingTs(i: number, j: number, k: number): number {
  return T0 + (k - 1) * INTERVAL_MS + ((i * 7919 + j * 104_729) % (INTERVAL_MS - 1000));
}
const TS_SQL = `$5::float8 + ((i * 7919 + j * 104729) % ${INTERVAL_MS - 1000})`;
const VALUE_SQL = `CASE WHEN j % 40 = 7 THEN 50 + $3::int * 5
                        ELSE 50 + ((i * 31 + j * 17 + $3::int * 7) % 20) + CASE WHEN j % 50 = 0 THEN 40 ELSE 0 END
                   END + CASE WHEN j % 97 = 1 AND $3::int = $4::int THEN 100 ELSE 0 END`;

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function line(label: string, value: string): void {
  console.log(`  ${label.padEnd(56)} ${value}`);
}

async function commandStats(valkey: Redis): Promise<Map<string, number>> {
  const info = await valkey.info("commandstats");
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    out.set(m[1]!, Number(m[2]));
    out.set(`${m[1]}:usec`, Number(m[3]));
  }
  return out;
}

/** Server time spent in scripts (EVALSHA + EVAL), µs. */
function scriptUsec(stats: Map<string, number>): number {
  return (stats.get("evalsha:usec") ?? 0) + (stats.get("eval:usec") ?? 0);
}

function delta(after: Map<string, number>, before: Map<string, number>, names: string[]): number {
  return names.reduce((n, c) => n + (after.get(c) ?? 0) - (before.get(c) ?? 0), 0);
}

/** The process's resident set high-water mark (VmHWM), bytes; the sampled peak where it is unknown. */
function highWaterMark(): number {
  try {
    const m = readFileSync("/proc/self/status", "utf8").match(/^VmHWM:\s+(\d+) kB$/m);
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** The V8 heap in use after a full collection (needs `node --expose-gc`), bytes. */
function usedHeapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run the benchmark with node --expose-gc");
  gc();
  return v8.getHeapStatistics().used_heap_size;
}

/** Peak RSS sampled while `fn` runs (and the OS high-water mark). */
async function withRssSampling<T>(fn: () => Promise<T>): Promise<{ result: T; peakRss: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, peakRss: peak };
  } finally {
    clearInterval(timer);
  }
}

async function main(): Promise<void> {
  const dbName = `eo_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName} TEMPLATE template0`);
  await admin.end();
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;

  const config = compileEvaluatorConfig({
    shardIndex: "0",
    shardSet: SHARD_SET,
    databaseUrl: dbUrl.toString(),
    valkeyUrl: VALKEY_URL,
    concurrency: String(CONCURRENCY),
    tenantBudgetMs: "30000",
    valkeyCommandTimeoutMs: "10000",
  });
  const log = pino({ level: "silent" });
  const clients = connectClients(config, log);
  const { db } = clients;
  // The benchmark runs against one server (VALKEY_MODE standalone).
  const valkey = clients.valkey as Redis;
  const stats = connectClients(config, log).valkey as Redis; // INFO on its own connection
  await Promise.all([waitReady(valkey), waitReady(stats)]);
  try {
    console.log(
      `evaluator benchmark: ${fmt(TENANTS)} tenants × ${fmt(DEVICES)} devices × 2 rules, ${TICKS} ticks, concurrency ${CONCURRENCY}`,
    );
    // A tenant's first evaluation (tick 0) reads only readings younger than the lookback before
    // its tick time: tick 0's readings are stamped within one interval before T0.
    if (config.intervalMs !== INTERVAL_MS || INTERVAL_MS >= firstReadLookbackMs(config.intervalMs))
      throw new Error("tick 0's readings would be older than a tenant's first evaluation reads");
    const loadStart = performance.now();
    await migrateUp({ db: db });
    await seed(db);
    console.log(`  data loaded in ${fmt((performance.now() - loadStart) / 1000, 1)} s (database ${dbName})`);

    // --- End to end: the real tick path -------------------------------------------------------
    let statements = 0;
    const countingDb: Queryable = {
      query: (statement) => {
        statements++;
        return db.query(statement);
      },
    };
    // Round trips counted on the client too (exact, whatever else uses the shared server).
    const valkeyState = new ValkeyState(valkey);
    // Time tenants spend awaiting each step, summed over tenants (they overlap: at most
    // CONCURRENCY at once, and a resolved await also waits for the event loop to be free).
    const awaited = { read: 0, load: 0, rebuild: 0, commit: 0, store: 0 };
    const timed = async <T>(step: keyof typeof awaited, fn: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await fn();
      } finally {
        awaited[step] += performance.now() - t;
      }
    };
    const pgStore = createPgStore(countingDb);
    const store: EvaluatorStore = {
      ...pgStore,
      readTenantData: (...a) => timed("read", () => pgStore.readTenantData(...a)),
      commitEvaluation: (...a) => timed("commit", () => pgStore.commitEvaluation(...a)),
    };
    const state: StateGateway = {
      loadTenantState: (...a) => timed("load", () => valkeyState.loadTenantState(...a)),
      storeTenantState: (...a) => timed("store", () => valkeyState.storeTenantState(...a)),
      releaseTickLease: (lease) => valkeyState.releaseTickLease(lease),
      forget: (tenantId) => valkeyState.forget(tenantId),
      retainTenants: (ids) => valkeyState.retainTenants(ids),
    };
    // Where each evaluation's state came from, and how many readings it judged.
    const sources: Record<StateSource, number> = { kept: 0, valkey: 0, rebuilt: 0 };
    let judged = 0;
    const breaker = (isOutage: (e: unknown) => boolean) =>
      new CircuitBreaker({
        name: "b",
        clock: systemClock,
        failureThreshold: 1000,
        cooldownMs: 1000,
        isOutage,
      });
    const runner = new TickRunner({
      settings: config,
      store,
      state,
      rebuild: (plan, fence, now) => timed("rebuild", () => readRebuiltState(countingDb, plan, fence, now)),
      clock: systemClock,
      log,
      metrics: createEvaluatorMetrics(new Registry()),
      breakers: { postgres: breaker(isPostgresOutage), valkey: breaker(isValkeyOutage) },
      token: `bench-${PREFIX}`,
      onEvaluation: (record) => {
        sources[record.stateSource]++;
        judged += record.readings.length;
      },
    });
    console.log(
      "\nend to end, one tick (membership → reads with fences → Valkey state → rules → commit per tenant → state store):",
    );
    const measured: {
      summary: TickSummary;
      ms: number;
      roundTrips: number;
      clientTrips: number;
      statements: number;
      rss: number;
      cpuMs: number;
      valkeyMs: number;
    }[] = [];
    for (let k = 0; k < TICKS; k++) {
      await insertReadings(db, k);
      statements = 0;
      judged = 0;
      for (const s of Object.keys(sources) as StateSource[]) sources[s] = 0;
      for (const s of Object.keys(awaited) as (keyof typeof awaited)[]) awaited[s] = 0;
      const callsBefore = valkeyState.calls;
      const before = await commandStats(stats);
      const cpu = process.cpuUsage();
      const t = performance.now();
      const { result: summary, peakRss } = await withRssSampling(() =>
        runner.runTick({ slot: BASE_SLOT + k, now: T0 + k * INTERVAL_MS, trigger: "timer" }),
      );
      const ms = performance.now() - t;
      const used = process.cpuUsage(cpu);
      const cpuMs = (used.user + used.system) / 1000;
      const after = await commandStats(stats);
      const roundTrips = delta(after, before, ["evalsha", "eval"]);
      const clientTrips = valkeyState.calls - callsBefore;
      const valkeyMs = (scriptUsec(after) - scriptUsec(before)) / 1000;
      if (!summary.ok || summary.failed > 0 || summary.stale > 0)
        throw new Error(`tick ${k} failed: ${JSON.stringify(summary)}`);
      measured.push({
        summary,
        ms,
        roundTrips,
        clientTrips,
        statements,
        rss: peakRss,
        cpuMs,
        valkeyMs,
      });
      line(
        `tick ${k}${k === 0 ? " (warm-up)" : ""}`,
        `${fmt(ms)} ms, ${fmt(summary.rules)} pairs → ${fmt(summary.rules / (ms / 1000))} pairs/s, ` +
          `${fmt(clientTrips)} Valkey round trips (server saw ${fmt(roundTrips)} script calls), ${fmt(statements)} SQL statements, ${fmt(summary.alerts)} new alerts; ` +
          `evaluator CPU ${fmt(cpuMs)} ms, Valkey script time ${fmt(valkeyMs)} ms`,
      );
      line(
        "",
        `state: ${fmt(sources.kept)} kept, ${fmt(sources.valkey)} from Valkey, ${fmt(sources.rebuilt)} rebuilt; ` +
          `awaited (sum over tenants): commit ${fmt(awaited.commit)} ms, store ${fmt(awaited.store)} ms, ` +
          `load ${fmt(awaited.load)} ms, rebuild ${fmt(awaited.rebuild)} ms; batch reads ${fmt(awaited.read)} ms`,
      );
      // Every reading inserted for this tick committed before it: all must be judged now. Fewer
      // means the read position was held back (a long transaction elsewhere on a shared server).
      if (judged !== TENANTS * DEVICES)
        console.log(
          `  WARNING: tick ${k} judged ${fmt(judged)} readings, ${fmt(TENANTS * DEVICES)} were inserted before it`,
        );
    }
    const steady = measured.slice(1).sort((a, b) => a.ms - b.ms);
    const median = steady[Math.floor(steady.length / 2)]!;
    const e2ePairsPerSec = median.summary.rules / (median.ms / 1000);
    const peakRss = Math.max(...measured.map((m) => m.rss));
    const vmHwm = highWaterMark();
    // What the shard holds between ticks (its kept tenant states, plans dropped): the heap after a
    // full collection, taken once the ticks are measured (a forced collection between measured
    // ticks would shrink the heap a real shard grows).
    const heapAfterGc = usedHeapAfterGc();
    const pairs = median.summary.rules;
    line("median steady tick", `${fmt(median.ms)} ms → ${fmt(e2ePairsPerSec)} pairs/s (target ≥ 200,000)`);
    const rate = (m: (typeof measured)[number]) => m.summary.rules / (m.ms / 1000);
    line(
      "steady ticks, slowest and fastest",
      `${fmt(rate(steady.at(-1)!))} – ${fmt(rate(steady[0]!))} pairs/s (the last tick's readings spike: many new alerts)`,
    );
    line(
      "Valkey round trips per tick",
      `${fmt(median.clientTrips)} (${fmt(median.clientTrips / TENANTS, 2)} per tenant: one state store after the commit; a tenant whose state this process does not hold adds a read before it)`,
    );
    line(
      "PostgreSQL statements per tick",
      `${fmt(median.statements)} (${fmt(median.statements / TENANTS, 2)} per tenant: one commit each, fence and alert writes; plus the batch reads)`,
    );
    line(
      "Valkey script time per tick (single-threaded)",
      `${fmt(median.valkeyMs)} ms = ${fmt((100 * median.valkeyMs) / median.ms)}% of the tick → ceiling ${fmt(median.summary.rules / (median.valkeyMs / 1000))} pairs/s`,
    );
    line(
      "evaluator CPU per tick",
      `${fmt(median.cpuMs)} ms (${os.availableParallelism()} CPUs on this machine, shared with PostgreSQL and Valkey)`,
    );
    line(
      "pairs per evaluator CPU-second",
      `${fmt(median.summary.rules / (median.cpuMs / 1000))} (one shard process's ceiling when PostgreSQL and Valkey have CPUs of their own)`,
    );
    line("peak RSS", `${fmt(peakRss / 2 ** 20)} MiB (OS high-water mark ${fmt(vmHwm / 2 ** 20)} MiB)`);
    line(
      "V8 heap after a full GC, between ticks",
      `${fmt(heapAfterGc / 2 ** 20)} MiB (heap limit ${fmt(v8.getHeapStatistics().heap_size_limit / 2 ** 20)} MiB)`,
    );
    line(
      "bytes per pair: peak RSS, heap after GC",
      `${fmt(Math.max(peakRss, vmHwm) / pairs)} B, ${fmt(heapAfterGc / pairs)} B (${fmt(pairs)} pairs)`,
    );
    // The window replay below keeps state of its own: the tick path's is not needed any more.
    valkeyState.retainTenants(new Set());

    // --- Window rules: Lua path vs the GET + JSON + SET baseline -------------------------------
    const rules = await readRules(db);
    const windowRules = new Map<string, Rule[]>();
    for (const [t, list] of rules)
      windowRules.set(
        t,
        list.filter((r) => r.type === "window"),
      );
    const ids = [...windowRules.keys()].filter((t) => (windowRules.get(t) ?? []).length > 0);
    const devices = Array.from({ length: DEVICES }, (_, j) => deviceId(j));
    // The replay runs under tenant ids of its own ("…-cmp"), so both paths start from empty state
    // (the end-to-end ticks already appended these readings under the real ids).
    const cmpId = (t: string) => `${t}-cmp`;
    const inputOf = (t: string, k: number): TenantInput => {
      const i = Number(t.slice(t.lastIndexOf("-t") + 2));
      const readings: Reading[] = devices.map((d, j) => ({
        deviceId: d,
        metric: "temp",
        ts: readingTs(i, j, k),
        value: value(i, j, k),
      }));
      return {
        tenantId: cmpId(t),
        rules: windowRules.get(t)!.map((r) => ({ ...r, tenantId: cmpId(t) })),
        deviceIds: devices,
        readingsByDeviceMetric: groupReadings(readings),
        now: T0 + k * INTERVAL_MS,
      };
    };
    const lua = new ValkeyState(valkey);
    const baseline = baselineWindowStore(valkey);
    const firingOf = (input: TenantInput, evaluation: TenantEvaluation, into: Set<string>) => {
      for (const c of evaluation.conditions) {
        if (c.status === true) into.add(`${input.tenantId}|${c.ruleId}|${c.deviceId}`);
      }
    };
    const firing = (input: TenantInput, state: TenantState, into: Set<string>) =>
      firingOf(input, evaluateTenant({ ...input, state }), into);
    // The Lua path runs a tenant as the tick does: load the state of the fence's evaluation (no
    // call once this process keeps a copy), advance it by the readings, evaluate, commit, store
    // (one tenant_write). The commit is the fence below, in memory: it is the PostgreSQL side of
    // the tick, measured end to end above.
    const fences = new Map<string, FenceVersion>();
    const luaTenant = async (input: TenantInput, into: Set<string>): Promise<void> => {
      const plan = planTenant(input);
      const fence = fences.get(input.tenantId) ?? { seq: 0, evalMs: null };
      const load = await lua.loadTenantState(plan, fence);
      if (load.kind !== "state") throw new Error(`tenant ${input.tenantId}: unexpected load (${load.kind})`);
      const snapshot = load.snapshot;
      const step = advanceTick(snapshot, plan, input.now);
      const evaluation = evaluateTenant({ ...input, state: step.state, plan });
      firingOf(input, evaluation, into);
      applyCommit(snapshot, evaluation.stateUpdates, input.now);
      snapshot.seq = fence.seq + 1;
      snapshot.at = input.now;
      const stored = await lua.storeTenantState(plan, snapshot, {
        from: { seq: fence.seq, at: fence.evalMs },
        writes: commitOps(evaluation.stateUpdates, input.now, step),
      });
      if (!stored.stored)
        throw new Error(`tenant ${input.tenantId}: state not stored (newer ${stored.newer})`);
      fences.set(input.tenantId, { seq: snapshot.seq, evalMs: input.now });
    };
    // The original system evaluated tenants one after another in one loop, awaiting every GET and
    // SET: the sequential baseline does that, under tenant ids of its own ("…-seq"), on the first
    // SEQ_TENANTS window tenants only (it is slow), so its pairs/s is measured on that subset.
    const seqIds = ids.slice(0, Math.min(ids.length, SEQ_TENANTS));
    const seqInputOf = (t: string, k: number): TenantInput => {
      const input = inputOf(t, k);
      const id = `${t}-seq`;
      return { ...input, tenantId: id, rules: input.rules.map((r) => ({ ...r, tenantId: id })) };
    };
    console.log(
      "\nwindow rules only, state load → evaluation → state store per tick (same readings; best steady tick of each path):",
    );
    const pathRuns = { lua: [] as number[], baseline: [] as number[], sequential: [] as number[] };
    let luaTrips = 0;
    let baselineTrips = 0;
    let sequentialTrips = 0;
    let pairsPerTick = 0;
    let seqPairsPerTick = 0;
    let luaFiring = new Set<string>();
    let baselineFiring = new Set<string>();
    let sequentialFiring = new Set<string>();
    for (let k = 0; k < TICKS; k++) {
      const inputs = ids.map((t) => inputOf(t, k));
      pairsPerTick = inputs.reduce((n, input) => n + planTenant(input).pairs.length, 0);
      luaFiring = new Set();
      baselineFiring = new Set();
      sequentialFiring = new Set();
      let before = await commandStats(stats);
      let t = performance.now();
      await forEachConcurrently(inputs, CONCURRENCY, (input) => luaTenant(input, luaFiring));
      pathRuns.lua.push(performance.now() - t);
      luaTrips = delta(await commandStats(stats), before, ["evalsha", "eval"]);
      before = await commandStats(stats);
      t = performance.now();
      await forEachConcurrently(inputs, CONCURRENCY, async (input) => {
        firing(input, await baseline.loadTenantState(planTenant(input)), baselineFiring);
      });
      pathRuns.baseline.push(performance.now() - t);
      baselineTrips = delta(await commandStats(stats), before, ["get", "set"]);
      const seqInputs = seqIds.map((id) => seqInputOf(id, k));
      seqPairsPerTick = seqInputs.reduce((n, input) => n + planTenant(input).pairs.length, 0);
      before = await commandStats(stats);
      t = performance.now();
      for (const input of seqInputs) {
        firing(input, await baseline.loadTenantState(planTenant(input)), sequentialFiring);
      }
      pathRuns.sequential.push(performance.now() - t);
      sequentialTrips = delta(await commandStats(stats), before, ["get", "set"]);
      const same =
        luaFiring.size === baselineFiring.size && [...luaFiring].every((x) => baselineFiring.has(x));
      if (!same)
        throw new Error(`tick ${k}: the Lua path and the baseline disagree on which window rules fire`);
      // The sequential run covers a subset: it must fire exactly the Lua path's pairs of that subset.
      const seqTenants = new Set(seqIds.map(cmpId));
      const luaSubset = new Set([...luaFiring].filter((x) => seqTenants.has(x.slice(0, x.indexOf("|")))));
      const seqAsCmp = new Set(
        [...sequentialFiring].map((x) => x.replace(/^([^|]*)-seq\|/, (_, t: string) => `${cmpId(t)}|`)),
      );
      if (seqAsCmp.size !== luaSubset.size || ![...luaSubset].every((x) => seqAsCmp.has(x)))
        throw new Error(
          `tick ${k}: the Lua path and the sequential baseline disagree on which window rules fire`,
        );
    }
    const best = (xs: number[]) => Math.min(...xs.slice(1));
    const luaPps = pairsPerTick / (best(pathRuns.lua) / 1000);
    const basePps = pairsPerTick / (best(pathRuns.baseline) / 1000);
    const seqPps = seqPairsPerTick / (best(pathRuns.sequential) / 1000);
    line("window pairs per tick", fmt(pairsPerTick));
    line(
      `Lua path (one store call per tenant once its state is kept, concurrency ${CONCURRENCY})`,
      `${fmt(best(pathRuns.lua))} ms → ${fmt(luaPps)} pairs/s, ${fmt(luaTrips)} round trips`,
    );
    line(
      "(1) baseline, sequential as the original design",
      `${fmt(best(pathRuns.sequential))} ms for ${fmt(seqPairsPerTick)} pairs → ${fmt(seqPps)} pairs/s, ${fmt(sequentialTrips)} round trips` +
        (seqIds.length < ids.length
          ? ` (measured on the first ${fmt(seqIds.length)} of ${fmt(ids.length)} window tenants, BENCH_SEQ_TENANTS; pairs/s extrapolated to all)`
          : ""),
    );
    line("    ratio ours / sequential baseline (target ≥ 30×)", `${fmt(luaPps / seqPps, 1)}×`);
    line(
      `(2) baseline, concurrency ${CONCURRENCY} like the Lua path`,
      `${fmt(best(pathRuns.baseline))} ms → ${fmt(basePps)} pairs/s, ${fmt(baselineTrips)} round trips`,
    );
    line(
      "    ratio ours / concurrent baseline",
      `${fmt(luaPps / basePps, 1)}× faster, ${fmt(baselineTrips / Math.max(1, luaTrips), 0)}× fewer round trips`,
    );
    // A model, not a measurement: on loopback a round trip costs ~tens of µs; across a network
    // each one adds the RTT, spread over the concurrent tenants.
    for (const rtt of [0.25, 1]) {
      const project = (ms: number, trips: number) => ms + (trips / CONCURRENCY) * rtt;
      line(
        `  projected with a ${rtt} ms network RTT`,
        `${fmt(project(best(pathRuns.baseline), baselineTrips) / project(best(pathRuns.lua), luaTrips), 1)}× vs the concurrent baseline (model)`,
      );
    }

    // The end-to-end ticks' open window alerts are exactly what both paths say fires now.
    const { rows } = await db.query<{ tenant_id: string; rule_id: string; device_id: string }>(
      `SELECT a.tenant_id, a.rule_id, a.device_id FROM alerts a
         JOIN alert_rules r ON r.tenant_id = a.tenant_id AND r.id = a.rule_id
        WHERE a.state = 'open' AND r.rule_type = 'window'`,
    );
    const alerted = new Set(rows.map((r) => `${cmpId(r.tenant_id)}|${r.rule_id}|${r.device_id}`));
    const identical =
      alerted.size === baselineFiring.size && [...alerted].every((x) => baselineFiring.has(x));
    line(
      "identical window alerts (tick path, Lua, baseline)",
      `${identical ? "yes" : "NO"} (${fmt(alerted.size)} firing)`,
    );
    if (!identical) throw new Error("the end-to-end alerts differ from the baseline's");

    console.log("\nsummary:");
    line(
      "end-to-end pairs/s",
      `${fmt(e2ePairsPerSec)} (${e2ePairsPerSec >= 200_000 ? "meets" : "BELOW"} 200,000)`,
    );
    line(
      "window rules vs sequential baseline",
      `${fmt(luaPps / seqPps, 1)}× (${luaPps / seqPps >= 30 ? "meets" : "BELOW"} 30×)`,
    );
    line("window rules vs concurrent baseline", `${fmt(luaPps / basePps, 1)}×`);

    const figures: Figures = {
      pairsPerTick: median.summary.rules,
      steadyTickMs: median.ms,
      steadyPairsPerSec: e2ePairsPerSec,
      pairsPerCpuSecond: median.summary.rules / (median.cpuMs / 1000),
      valkeyTripsPerTick: median.clientTrips,
      pgStatementsPerTick: median.statements,
      peakRssMiB: Math.max(peakRss, vmHwm) / 2 ** 20,
      heapAfterGcMiB: heapAfterGc / 2 ** 20,
      heapLimitMiB: v8.getHeapStatistics().heap_size_limit / 2 ** 20,
      windowLuaPairsPerSec: luaPps,
      windowSequentialPairsPerSec: seqPps,
      windowConcurrentPairsPerSec: basePps,
    };
    if (BASELINE_OUTPUT !== undefined) printComparison(readFileSync(BASELINE_OUTPUT, "utf8"), figures);
    console.log(
      `${RESULT_TAG} ${JSON.stringify({ tenants: TENANTS, devices: DEVICES, ticks: TICKS, concurrency: CONCURRENCY, ...figures })}`,
    );
  } finally {
    await cleanupValkey(valkey).catch(() => undefined);
    valkey.disconnect();
    stats.disconnect();
    await db.end();
    const drop = new pg.Client({ connectionString: ADMIN_URL });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await drop.end();
  }
}

/** The headline figures of one run: the JSON of its `BENCH_RESULT` line. */
interface Figures {
  /** (rule, device) pairs of a tick. */
  readonly pairsPerTick: number;
  /** The median steady tick (ticks 1…): its wall time and pairs/s. */
  readonly steadyTickMs: number;
  readonly steadyPairsPerSec: number;
  /** Pairs per evaluator CPU-second in that tick (less sensitive to a shared machine's load). */
  readonly pairsPerCpuSecond: number;
  /** Valkey round trips (script calls, counted on the client) and SQL statements of that tick. */
  readonly valkeyTripsPerTick: number;
  readonly pgStatementsPerTick: number;
  /** Peak RSS during the end-to-end ticks: sampled, or the OS high-water mark if higher. */
  readonly peakRssMiB: number;
  /**
   * The V8 heap after a full collection once the end-to-end ticks are done, and the heap limit of
   * the run (absent from the output of releases before these figures).
   */
  readonly heapAfterGcMiB?: number;
  readonly heapLimitMiB?: number;
  /** Window rules only: the Lua path, the sequential and the concurrent GET + SET baselines. */
  readonly windowLuaPairsPerSec: number;
  readonly windowSequentialPairsPerSec: number;
  readonly windowConcurrentPairsPerSec: number;
}

const RESULT_TAG = "BENCH_RESULT";

/**
 * The figures of a run of this benchmark from its output: its `BENCH_RESULT` line, or — for a
 * release from before that line (58bf248) — its text lines, which keep the same format here. The
 * median steady tick is chosen from the tick lines as {@link main} chooses it.
 */
function parseFigures(text: string): Figures {
  const tagged = text.match(new RegExp(`^${RESULT_TAG} (\\{.*\\})$`, "m"));
  if (tagged) return JSON.parse(tagged[1]!) as Figures;
  const num = (s: string) => Number(s.replaceAll(",", ""));
  const N = "([\\d,.]+)";
  const ticks = [
    ...text.matchAll(
      new RegExp(
        `^ {2}tick (\\d+)(?: \\(warm-up\\))? +${N} ms, ${N} pairs → ${N} pairs/s, ${N} Valkey round trips .*?, ${N} SQL statements,`,
        "gm",
      ),
    ),
  ].map((m) => ({
    k: Number(m[1]),
    ms: num(m[2]!),
    pairs: num(m[3]!),
    pairsPerSec: num(m[4]!),
    trips: num(m[5]!),
    statements: num(m[6]!),
  }));
  const steady = ticks.filter((t) => t.k > 0).sort((a, b) => a.ms - b.ms);
  const median = steady[Math.floor(steady.length / 2)];
  const field = (label: RegExp): number => {
    const m = text.match(label);
    if (!m) throw new Error(`the baseline output has no line matching ${label}`);
    return num(m[1]!);
  };
  if (median === undefined) throw new Error("the baseline output has no steady tick line");
  return {
    pairsPerTick: median.pairs,
    steadyTickMs: median.ms,
    steadyPairsPerSec: median.pairsPerSec,
    pairsPerCpuSecond: field(new RegExp(`^ {2}pairs per evaluator CPU-second +${N} `, "m")),
    valkeyTripsPerTick: median.trips,
    pgStatementsPerTick: median.statements,
    peakRssMiB: field(new RegExp(`^ {2}peak RSS +${N} MiB`, "m")),
    windowLuaPairsPerSec: field(new RegExp(`^ {2}Lua path .*?ms → ${N} pairs/s`, "m")),
    windowSequentialPairsPerSec: field(new RegExp(`^ {2}\\(1\\) baseline, sequential.*?→ ${N} pairs/s`, "m")),
    windowConcurrentPairsPerSec: field(
      new RegExp(`^ {2}\\(2\\) baseline, concurrency.*?→ ${N} pairs/s`, "m"),
    ),
  };
}

/** The baseline release's figures (from its output) and this run's, side by side with ratios. */
function printComparison(baselineOutput: string, after: Figures): void {
  const before = parseFigures(baselineOutput);
  if (before.pairsPerTick !== after.pairsPerTick)
    throw new Error(
      `the baseline ran ${fmt(before.pairsPerTick)} pairs per tick, this run ${fmt(after.pairsPerTick)}: not the same settings`,
    );
  console.log(`
before/after: ${BASELINE_LABEL} vs this tree, same BENCH_* settings (node flags: as each run was started), one run each, one after the other:`);
  const row = (label: string, b: string, a: string, ratio: string) =>
    console.log(`  ${label.padEnd(44)} ${b.padStart(12)} ${a.padStart(12)}   ${ratio}`);
  row("figure", "before", "after", "after / before");
  const ratio = (b: number, a: number) => {
    const r = a / b;
    return `${fmt(r, 2)}× (${r >= 1 ? "+" : "−"}${fmt(Math.abs(r - 1) * 100, 1)} %)`;
  };
  const pair = (label: string, b: number, a: number, digits = 0) =>
    row(label, fmt(b, digits), fmt(a, digits), ratio(b, a));
  pair("steady tick pairs/s (median of the steady)", before.steadyPairsPerSec, after.steadyPairsPerSec);
  pair("  its wall time, ms", before.steadyTickMs, after.steadyTickMs);
  pair("pairs per evaluator CPU-second", before.pairsPerCpuSecond, after.pairsPerCpuSecond);
  pair("Valkey round trips per tick", before.valkeyTripsPerTick, after.valkeyTripsPerTick);
  pair("PostgreSQL statements per tick", before.pgStatementsPerTick, after.pgStatementsPerTick);
  pair("peak RSS, MiB", before.peakRssMiB, after.peakRssMiB);
  const perPair = (mib: number, f: Figures) => (mib * 2 ** 20) / f.pairsPerTick;
  pair(
    "  bytes per pair (peak RSS / pairs)",
    perPair(before.peakRssMiB, before),
    perPair(after.peakRssMiB, after),
  );
  const heapRow = (label: string, b: number | undefined, a: number | undefined) =>
    b === undefined || a === undefined
      ? row(label, b === undefined ? "not printed" : fmt(b), a === undefined ? "not printed" : fmt(a), "")
      : pair(label, b, a);
  heapRow("heap after GC between ticks, MiB", before.heapAfterGcMiB, after.heapAfterGcMiB);
  heapRow(
    "  bytes per pair (heap after GC / pairs)",
    before.heapAfterGcMiB === undefined ? undefined : perPair(before.heapAfterGcMiB, before),
    after.heapAfterGcMiB === undefined ? undefined : perPair(after.heapAfterGcMiB, after),
  );
  heapRow("V8 heap limit of the run, MiB", before.heapLimitMiB, after.heapLimitMiB);
  pair("window rules, Lua path pairs/s", before.windowLuaPairsPerSec, after.windowLuaPairsPerSec);
  pair(
    "window rules, Lua path / sequential baseline",
    before.windowLuaPairsPerSec / before.windowSequentialPairsPerSec,
    after.windowLuaPairsPerSec / after.windowSequentialPairsPerSec,
    1,
  );
  const fall = 1 - after.steadyPairsPerSec / before.steadyPairsPerSec;
  line(
    "steady-tick pairs/s within 10 % of the baseline",
    fall <= 0.1
      ? `yes (${fall > 0 ? `${fmt(fall * 100, 1)} % lower` : `${fmt(-fall * 100, 1)} % higher`})`
      : `NO: ${fmt(fall * 100, 1)} % lower (one run each on a shared machine: run again before concluding)`,
  );
}

function waitReady(valkey: Redis): Promise<void> {
  return valkey.status === "ready" ? Promise.resolve() : new Promise((r) => valkey.once("ready", () => r()));
}

async function seed(db: pg.Pool): Promise<void> {
  await db.query("INSERT INTO shard_sets (name, shard_count) VALUES ($1, 1)", [SHARD_SET]);
  await db.query(
    `INSERT INTO tenants (id, shard_set, shard_index, weight)
     SELECT $1 || '-t' || i, $2, 0, $4::int * 2 FROM generate_series(0, $3::int - 1) AS i`,
    [PREFIX, SHARD_SET, TENANTS, DEVICES],
  );
  await db.query(
    `INSERT INTO devices (tenant_id, id)
     SELECT $1 || '-t' || i, 'dev-' || j FROM generate_series(0, $2::int - 1) AS i, generate_series(0, $3::int - 1) AS j`,
    [PREFIX, TENANTS, DEVICES],
  );
  // r1: threshold > 85 (even tenants) or anomaly (odd); r2: window, 2 readings > 75 within 10 min
  // (3 of 4 tenants), or 3 consecutive rises.
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, window_seconds, min_count,
                              cooldown_seconds, params)
     SELECT $1 || '-t' || i, 'r1', 'temp',
            CASE WHEN i % 2 = 0 THEN 'threshold' ELSE 'anomaly' END,
            CASE WHEN i % 2 = 0 THEN '>' END, CASE WHEN i % 2 = 0 THEN 85 END, NULL, NULL, 600,
            CASE WHEN i % 2 = 0 THEN '{}'::jsonb ELSE '{"k": 4, "minSamples": 2, "minStddev": 5}'::jsonb END
       FROM generate_series(0, $2::int - 1) AS i
     UNION ALL
     SELECT $1 || '-t' || i, 'r2', 'temp',
            CASE WHEN i % 4 = 3 THEN 'pattern' ELSE 'window' END,
            CASE WHEN i % 4 = 3 THEN NULL ELSE '>' END, CASE WHEN i % 4 = 3 THEN NULL ELSE 75 END,
            600, CASE WHEN i % 4 = 3 THEN 3 ELSE 2 END, 600,
            CASE WHEN i % 4 = 3 THEN '{"kind": "rising"}'::jsonb ELSE '{}'::jsonb END
       FROM generate_series(0, $2::int - 1) AS i`,
    [PREFIX, TENANTS],
  );
  await db.query("ANALYZE");
}

async function insertReadings(db: pg.Pool, k: number): Promise<void> {
  await db.query(
    `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
     SELECT $1 || '-t' || i, 'dev-' || j, 'temp', to_timestamp((${TS_SQL}) / 1000), ${VALUE_SQL}
       FROM generate_series(0, $2::int - 1) AS i, generate_series(0, $6::int - 1) AS j`,
    [PREFIX, TENANTS, k, TICKS - 1, T0 + (k - 1) * INTERVAL_MS, DEVICES],
  );
  await db.query("ANALYZE telemetry");
}

async function readRules(db: pg.Pool): Promise<Map<string, Rule[]>> {
  const { rows } = await db.query("SELECT * FROM alert_rules");
  const out = new Map<string, Rule[]>();
  for (const row of rows) {
    const parsed = parseRule(row);
    if (!parsed.ok) throw new Error(parsed.reason);
    const list = out.get(parsed.rule.tenantId) ?? [];
    list.push(parsed.rule);
    out.set(parsed.rule.tenantId, list);
  }
  return out;
}

/** Deletes every key of the benchmark's tenants (they share the run's unique prefix). */
async function cleanupValkey(valkey: Redis): Promise<void> {
  for (const kind of ["wbuf", "wbufjson", "cooldown", "anom", "seen", "cond", "tstate", "tick"]) {
    let cursor = "0";
    do {
      const [next, keys] = await valkey.scan(cursor, "MATCH", `${kind}:{${PREFIX}-t*`, "COUNT", 5000);
      if (keys.length > 0) await valkey.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  }
}

await main();
