/**
 * Sizing benchmark: the product's seed scale — 1,000 tenants × 2,000 sensors, one threshold rule
 * per tenant over all its devices (2M device-rule pairs per tick), every sensor sending one
 * reading per tick — evaluated by real evaluator processes on 1, 2 and 4 shards against ONE Valkey
 * and ONE PostgreSQL, to read off what each process kind costs per million pairs and where one
 * Valkey stops being enough. By default a quarter of it (1,000 × 500 sensors: about 12 minutes on
 * 2 shared cores); the full size is BENCH_SIZING_SENSORS=2000 (the ingest of 2M readings alone
 * takes one to two minutes per tick there).
 *
 *   npm run bench -- sizing
 *   BENCH_SIZING_SENSORS=2000 BENCH_SIZING_SHARDS=4 node bench/sizing.bench.ts
 *
 * The processes: `node evaluator/bin/evaluator.ts run` with SHARD_INDEX, SHARD_SET, DATABASE_URL,
 * VALKEY_URL, TICK_INTERVAL_SECONDS, METRICS_PORT (a free port) and the host's PATH/HOME — what the
 * local shard runner (hack/shard-runner) gives the process of a shard Deployment. Tenants are
 * placed by the operator's assignments module (`createPgTenantAssignments(...).commit(n)`, the
 * planner and the SQL the operator runs), one shard set per configuration (`bench-sizing/shards-N`,
 * every tenant moved to it unplaced first), so each configuration starts from a first placement.
 *
 * Services: a private Valkey (redis-server on a spare port, flushed between configurations), so its
 * CPU is the product's alone; a throwaway database on the PostgreSQL of DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test), migrated, dropped at the end.
 *
 * One measured tick: the readings of all sensors (stamped within the interval before the tick) are
 * inserted in ONE transaction (unnest batches of BENCH_SIZING_BATCH rows, so no tick sees half of
 * them), then the bench waits for every shard's `tick_done` of the next slot. The first tick of each
 * configuration warms up (device lists read, state rebuilt from PostgreSQL into an empty Valkey) and
 * is not counted; BENCH_SIZING_TICKS (3) steady ticks are. Telemetry is truncated between
 * configurations (the fences are snapshot positions, not row ids, so they stay valid).
 *
 * CPU: utime+stime from /proc of each evaluator process, of the PostgreSQL backends of the
 * evaluators (pg_stat_activity application_name `evaluator …`), of the private Valkey, and — lines
 * of their own — the ingest (its PostgreSQL backend, including an ANALYZE of telemetry after each
 * ingest, and this process's CPU while it builds and sends the batches) and the autovacuum workers
 * of the database (the ingest's inserts are what wakes them). The ingest and the tick are measured
 * in separate windows: the ingest's, then from its commit to the last shard's `tick_done`. The server-wide PostgreSQL processes
 * (WAL writer, checkpointer, background writer) are shared with whatever else uses the server and
 * are not counted. Sampled every 250 ms, so a backend that exits between samples loses at most
 * that much.
 *
 * Figures per configuration: tick duration p50/p95 per shard (`tick_done` durationMs), pairs/s end
 * to end (pairs of the tick ÷ from the first shard's tick start to the last shard's tick end; this
 * includes the shards' start offsets, spread over the first quarter of the slot, so also pairs ÷
 * the slowest shard's tick),
 * CPU-seconds per million pairs per process kind, peak RSS per evaluator (VmHWM), Valkey's own time
 * per tick (INFO commandstats usec delta) and the Valkey ceiling it implies (pairs/minute one core
 * serves), then ratios between configurations. The last line is `BENCH_RESULT {json}`.
 *
 * Settings (env): BENCH_SIZING_TENANTS (1000), BENCH_SIZING_SENSORS (500 per tenant),
 * BENCH_SIZING_SHARDS (1,2,4), BENCH_SIZING_TICKS (3 steady ticks), BENCH_SIZING_INTERVAL_SECONDS
 * (TICK_INTERVAL_SECONDS of the evaluators; default 90 µs per pair, between 5 and 300 s — 45 s for
 * 500,000 pairs: the tick and the next ingest must both fit, or the bench waits for a later slot
 * and the ticks the evaluators run meanwhile are not measured), BENCH_SIZING_CONCURRENCY
 * (CONCURRENCY, default the evaluator's 8), BENCH_SIZING_BATCH (rows per insert statement, 20,000).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import { Redis } from "ioredis";
import pg from "pg";
import { createPgTenantAssignments } from "../operator/src/assignments/pgTenantAssignments.ts";
import { migrateUp } from "../operator/src/migrate/runMigrations.ts";
import { type EvaluatorProcess, type LogLine, startEvaluator } from "../test/support/evaluatorProcess.ts";
import { type PrivateRedis, startPrivateRedis } from "../test/support/privateServices.ts";

const env = process.env;

function positiveInt(name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1, got "${raw}"`);
  return n;
}

const ADMIN_URL = env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const TENANTS = positiveInt("BENCH_SIZING_TENANTS", 1000);
const SENSORS = positiveInt("BENCH_SIZING_SENSORS", 500);
const TICKS = positiveInt("BENCH_SIZING_TICKS", 3);
const BATCH = positiveInt("BENCH_SIZING_BATCH", 20_000);
const SHARDS = (env["BENCH_SIZING_SHARDS"] ?? "1,2,4").split(",").map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new Error(`BENCH_SIZING_SHARDS: expected a list of shard counts 1..64 like "1,2,4", got "${s}"`);
  return n;
});
const PAIRS = TENANTS * SENSORS;
const INTERVAL_S = (() => {
  const raw = env["BENCH_SIZING_INTERVAL_SECONDS"];
  if (raw === undefined || raw === "") return Math.min(300, Math.max(5, Math.ceil(PAIRS * 90e-6)));
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 1 || n > 600)
    throw new Error(`BENCH_SIZING_INTERVAL_SECONDS must be 1..600, got "${raw}"`);
  return n;
})();
const INTERVAL_MS = INTERVAL_S * 1000;
const CONCURRENCY = env["BENCH_SIZING_CONCURRENCY"];
if (CONCURRENCY !== undefined) positiveInt("BENCH_SIZING_CONCURRENCY", 8);
const CLK_TCK = 100; // USER_HZ: 100 on every Linux architecture Node runs on
const INGEST_APP = "sizing-ingest";

/** Evaluator processes running now: an interrupted run stops them (see main). */
const live = new Set<EvaluatorProcess>();
/** Set by SIGINT/SIGTERM: the clean-up, after which the process exits. */
let interrupted: Promise<void> | undefined;

const tenantId = (i: number) => `tenant-${i}`;
const sensorId = (j: number) => `sensor-${j}`;

/** Sensor j of tenant i at tick k: 50–69, every 50th sensor hot (+40, over the rule's 85). */
function value(i: number, j: number, k: number): number {
  return 50 + ((i * 31 + j * 17 + k * 7) % 20) + (j % 50 === 0 ? 40 : 0);
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** utime+stime of a process, seconds; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** The OS high-water mark of a process's resident set (VmHWM), bytes. */
function peakRss(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmHWM:\s+(\d+) kB$/m);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

type Kind = "evaluator" | "postgres" | "valkey" | "ingest" | "autovacuum";

/**
 * Keeps the last seen CPU time of every process of interest (the evaluators, the private Valkey,
 * and the PostgreSQL backends of the bench database, found in pg_stat_activity), polled every
 * 250 ms, so a backend that exits keeps what it used until its last sample.
 */
class CpuSampler {
  readonly #last = new Map<number, { kind: Kind; cpu: number }>();
  readonly #fixed = new Map<number, Kind>();
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> = Promise.resolve();
  readonly #admin: pg.Client;
  readonly #dbName: string;

  constructor(admin: pg.Client, dbName: string) {
    this.#admin = admin;
    this.#dbName = dbName;
  }

  track(pid: number, kind: Kind): void {
    this.#fixed.set(pid, kind);
  }

  untrack(pid: number): void {
    this.#fixed.delete(pid);
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#polling = this.#polling.then(() => this.poll()).catch(() => undefined);
    }, 250);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async poll(): Promise<void> {
    const { rows } = await this.#admin.query<{ pid: number; application_name: string; backend_type: string }>(
      "SELECT pid, application_name, backend_type FROM pg_stat_activity WHERE datname = $1",
      [this.#dbName],
    );
    const pids = new Map<number, Kind>(this.#fixed);
    for (const r of rows) {
      if (r.application_name === INGEST_APP) pids.set(r.pid, "ingest");
      else if (r.application_name.startsWith("evaluator ")) pids.set(r.pid, "postgres");
      else if (r.backend_type === "autovacuum worker") pids.set(r.pid, "autovacuum");
    }
    for (const [pid, kind] of pids) {
      const cpu = cpuSeconds(pid);
      if (cpu !== undefined) this.#last.set(pid, { kind, cpu });
    }
  }

  /** A mark to measure from. */
  async mark(): Promise<Map<number, number>> {
    await this.#polling;
    await this.poll();
    return new Map([...this.#last].map(([pid, v]) => [pid, v.cpu]));
  }

  /** CPU seconds per kind since `from` (a process first seen after the mark counts from zero). */
  async since(from: Map<number, number>): Promise<Record<Kind, number>> {
    await this.#polling;
    await this.poll();
    const out: Record<Kind, number> = { evaluator: 0, postgres: 0, valkey: 0, ingest: 0, autovacuum: 0 };
    for (const [pid, { kind, cpu }] of this.#last) out[kind] += cpu - (from.get(pid) ?? 0);
    return out;
  }
}

async function commandUsec(valkey: Redis): Promise<number> {
  const info = await valkey.info("commandstats");
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=\d+,usec=(\d+)/gm)) usec += Number(m[1]);
  return usec;
}

async function seed(db: pg.Pool): Promise<void> {
  // Weight = devices × rules, what the product maintains for the planner.
  await db.query(
    `INSERT INTO tenants (id, shard_set, weight)
     SELECT 'tenant-' || i, 'bench-sizing/unplaced', $2::int FROM generate_series(0, $1::int - 1) AS i`,
    [TENANTS, SENSORS],
  );
  await db.query(
    `INSERT INTO devices (tenant_id, id)
     SELECT 'tenant-' || i, 'sensor-' || j FROM generate_series(0, $1::int - 1) AS i, generate_series(0, $2::int - 1) AS j`,
    [TENANTS, SENSORS],
  );
  // One threshold rule per tenant over all its devices (device_id NULL).
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, cooldown_seconds)
     SELECT 'tenant-' || i, 'hot', 'temp', 'threshold', '>', 85, 600 FROM generate_series(0, $1::int - 1) AS i`,
    [TENANTS],
  );
  await db.query("ANALYZE");
}

/**
 * Inserts one reading per sensor for tick k, stamped within the interval before `tickAt`, in one
 * transaction of unnest batches. Returns its wall time.
 */
async function ingest(client: pg.Client, k: number, tickAt: number): Promise<number> {
  const t = performance.now();
  const start = tickAt - INTERVAL_MS;
  await client.query("BEGIN");
  try {
    let tenants: string[] = [];
    let sensors: string[] = [];
    let ts: number[] = [];
    let values: number[] = [];
    const flush = async () => {
      if (tenants.length === 0) return;
      await client.query(
        `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
         SELECT t, d, 'temp', to_timestamp(ms / 1000.0), v
           FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[]) AS r(t, d, ms, v)`,
        [tenants, sensors, ts, values],
      );
      tenants = [];
      sensors = [];
      ts = [];
      values = [];
    };
    for (let i = 0; i < TENANTS; i++) {
      const tid = tenantId(i);
      for (let j = 0; j < SENSORS; j++) {
        tenants.push(tid);
        sensors.push(sensorId(j));
        // Spread over the interval like real sensors, at least 0.5 s before the tick.
        ts.push(start + ((i * 7919 + j * 104_729) % (INTERVAL_MS - 500)));
        values.push(value(i, j, k));
        if (tenants.length >= BATCH) await flush();
      }
    }
    await flush();
    await client.query("COMMIT");
    // Fresh statistics, as autovacuum keeps them on a table this busy (the table was truncated
    // before the configuration's first ingest).
    await client.query("ANALYZE telemetry");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
  return performance.now() - t;
}

interface TickFigures {
  /** durationMs of each shard's tick_done. */
  durations: number[];
  pairs: number;
  /** From the first shard's tick start to the last one's end, ms. */
  spanMs: number;
  cpu: Record<Kind, number>;
  valkeyUsec: number;
  ingestMs: number;
  /** This process's CPU while it built and sent the batches, seconds. */
  ingestClientCpu: number;
  alerts: number;
  /** Slots that passed without a measured tick (ingest or the previous tick ran past them). */
  skippedSlots: number;
}

interface ConfigFigures {
  shards: number;
  ticks: TickFigures[];
  rssBytes: number[];
  placement: number[];
}

/** The tick_done line of `slot` from each process (waits for all). */
async function tickDone(
  procs: readonly EvaluatorProcess[],
  slot: number,
  timeoutMs: number,
): Promise<LogLine[]> {
  return Promise.all(
    procs.map((p) => p.waitForLog((l) => l.msg === "tick_done" && l["slot"] === slot, timeoutMs)),
  );
}

async function runConfig(
  shards: number,
  pool: pg.Pool,
  dbUrl: string,
  valkey: PrivateRedis,
  stats: Redis,
  ingestClient: pg.Client,
  sampler: CpuSampler,
): Promise<ConfigFigures> {
  const shardSet = `bench-sizing/shards-${shards}`;
  // A fresh shard set: every tenant unplaced, then placed by the operator's planner (first placement).
  await pool.query(
    "UPDATE tenants SET shard_set = $1, shard_index = NULL, prev_shard_index = NULL, moved_at = NULL",
    [shardSet],
  );
  const commit = await createPgTenantAssignments(pool, shardSet).commit(shards);
  const { rows: placed } = await pool.query<{ shard_index: number; n: number }>(
    "SELECT shard_index, count(*)::int AS n FROM tenants WHERE shard_set = $1 GROUP BY 1 ORDER BY 1",
    [shardSet],
  );
  console.log(
    `\n${shards} shard${shards > 1 ? "s" : ""}: tenants placed by the operator's planner (epoch ${commit.epoch}): ` +
      placed.map((r) => `shard ${r.shard_index} ${fmt(r.n)}`).join(", "),
  );
  await pool.query("TRUNCATE telemetry");
  await stats.flushall();

  const procs: EvaluatorProcess[] = [];
  for (let i = 0; i < shards; i++) {
    procs.push(
      startEvaluator({
        SHARD_INDEX: String(i),
        SHARD_SET: shardSet,
        DATABASE_URL: dbUrl,
        VALKEY_URL: valkey.url,
        TICK_INTERVAL_SECONDS: String(INTERVAL_S),
        METRICS_PORT: "0",
        METRICS_HOST: "127.0.0.1",
        LOG_LEVEL: "info",
        ...(CONCURRENCY !== undefined ? { CONCURRENCY } : {}),
      }),
    );
  }
  for (const p of procs) live.add(p);
  const ticks: TickFigures[] = [];
  try {
    await Promise.all(procs.map((p) => p.waitForLog((l) => l.msg === "metrics_listening", 30_000)));
    for (const p of procs) sampler.track(p.child.pid!, "evaluator");
    // The ticks the processes run before the first ingest (nothing to read) are not measured: wait
    // for one so the device lists and memberships are loaded as in any running shard.
    let slot = Math.floor(Date.now() / INTERVAL_MS);
    for (let k = 0; k <= TICKS; k++) {
      // The ingest and the tick are measured apart: ticks the evaluators run while the ingest's
      // transaction is open (it may outlast a slot) see none of its rows and are not counted.
      const ingestFrom = await sampler.mark();
      const clientCpu = process.cpuUsage();
      const nextSlotAt = (Math.floor(Date.now() / INTERVAL_MS) + 1) * INTERVAL_MS;
      const ingestMs = await ingest(ingestClient, k, nextSlotAt);
      const used = process.cpuUsage(clientCpu);
      const ingestClientCpu = (used.user + used.system) / 1e6;
      const ingestWindow = await sampler.since(ingestFrom);
      // The first slot that starts after the ingest committed (plus a margin) is the measured one.
      const target = Math.floor((Date.now() + 200) / INTERVAL_MS) + 1;
      const cpuFrom = await sampler.mark();
      const usecFrom = await commandUsec(stats);
      const skippedSlots = Math.max(0, target - slot - 1);
      const lines = await tickDone(procs, target, 20 * INTERVAL_MS + 120_000);
      const tickWindow = await sampler.since(cpuFrom);
      const cpu = {
        ...tickWindow,
        ingest: ingestWindow.ingest,
        autovacuum: ingestWindow.autovacuum + tickWindow.autovacuum,
      };
      const valkeyUsec = (await commandUsec(stats)) - usecFrom;
      slot = target;
      const starts = lines.map((l) => (l["time"] as number) - (l["durationMs"] as number));
      const ends = lines.map((l) => l["time"] as number);
      const figures: TickFigures = {
        durations: lines.map((l) => l["durationMs"] as number),
        pairs: lines.reduce((n, l) => n + (l["rules"] as number), 0),
        spanMs: Math.max(...ends) - Math.min(...starts),
        cpu,
        valkeyUsec,
        ingestMs,
        ingestClientCpu,
        alerts: lines.reduce((n, l) => n + (l["alerts"] as number), 0),
        skippedSlots,
      };
      const failed = lines.filter(
        (l) => !l["ok"] || (l["failed"] as number) > 0 || (l["backlog"] as number) > 0,
      );
      if (failed.length > 0)
        console.log(`  WARNING: tick ${k}: a shard reported failures or backlog: ${JSON.stringify(failed)}`);
      if (figures.pairs !== PAIRS)
        console.log(`  WARNING: tick ${k} evaluated ${fmt(figures.pairs)} pairs, expected ${fmt(PAIRS)}`);
      console.log(
        `  tick ${k}${k === 0 ? " (warm-up, not counted)" : ""}: ingest ${fmt(ingestMs / 1000, 1)} s; ` +
          `shard ticks ${figures.durations.map((d) => fmt(d / 1000, 2)).join(" / ")} s, ${fmt(figures.pairs)} pairs, ` +
          `${fmt(figures.alerts)} new alerts; CPU s: evaluators ${fmt(cpu.evaluator, 2)}, PostgreSQL ${fmt(cpu.postgres, 2)}, ` +
          `Valkey ${fmt(cpu.valkey, 2)} (its own time ${fmt(valkeyUsec / 1e6, 2)}), ingest ${fmt(cpu.ingest, 2)} + client ${fmt(ingestClientCpu, 2)}, autovacuum ${fmt(cpu.autovacuum, 2)}` +
          (skippedSlots > 0
            ? `; ${skippedSlots} slot(s) ticked during the ingest or the previous tick, not measured`
            : ""),
      );
      if (k > 0) ticks.push(figures);
    }
    return {
      shards,
      ticks,
      rssBytes: procs.map((p) => peakRss(p.child.pid!)),
      placement: placed.map((r) => r.n),
    };
  } finally {
    for (const p of procs) sampler.untrack(p.child.pid!);
    await Promise.all(procs.map((p) => p.stop()));
    for (const p of procs) live.delete(p);
  }
}

interface Summary {
  shards: number;
  tickP50: number[];
  tickP95: number[];
  pairsPerSec: number;
  /** Pairs of a tick ÷ the slowest shard's tick duration (the shards' offsets left out). */
  pairsPerSecSlowest: number;
  /** CPU-seconds per million pairs. */
  perMillion: Record<Kind | "ingestClient", number>;
  valkeyOwnMsPerTick: number;
  /** Pairs per minute one Valkey core serves at the measured Valkey CPU per pair. */
  valkeyCeilingPerMinute: number;
  rssMiB: number[];
  ingestSeconds: number;
}

function summarize(c: ConfigFigures): Summary {
  const ticks = c.ticks;
  const perShard = Array.from({ length: c.shards }, (_, i) =>
    ticks.map((t) => t.durations[i]!).sort((a, b) => a - b),
  );
  const pairs = ticks.reduce((n, t) => n + t.pairs, 0);
  const sum = (f: (t: TickFigures) => number) => ticks.reduce((n, t) => n + f(t), 0);
  const perMillion = {
    evaluator: sum((t) => t.cpu.evaluator) / (pairs / 1e6),
    postgres: sum((t) => t.cpu.postgres) / (pairs / 1e6),
    valkey: sum((t) => t.cpu.valkey) / (pairs / 1e6),
    ingest: sum((t) => t.cpu.ingest) / (pairs / 1e6),
    ingestClient: sum((t) => t.ingestClientCpu) / (pairs / 1e6),
    autovacuum: sum((t) => t.cpu.autovacuum) / (pairs / 1e6),
  };
  // Valkey's process CPU (not only command time: also network I/O) bounds it: one core.
  const valkeyCpuPerPair = sum((t) => t.cpu.valkey) / pairs;
  return {
    shards: c.shards,
    tickP50: perShard.map((d) => quantile(d, 0.5)),
    tickP95: perShard.map((d) => quantile(d, 0.95)),
    pairsPerSec: pairs / (sum((t) => t.spanMs) / 1000),
    pairsPerSecSlowest: pairs / (sum((t) => Math.max(...t.durations)) / 1000),
    perMillion,
    valkeyOwnMsPerTick: sum((t) => t.valkeyUsec) / ticks.length / 1000,
    valkeyCeilingPerMinute: 60 / valkeyCpuPerPair,
    rssMiB: c.rssBytes.map((b) => b / 2 ** 20),
    ingestSeconds: sum((t) => t.ingestMs) / ticks.length / 1000,
  };
}

function printTable(rows: Summary[]): void {
  const header = ["", ...rows.map((r) => `${r.shards} shard${r.shards > 1 ? "s" : ""}`)];
  const lines: string[][] = [
    ["tick p50 per shard (s)", ...rows.map((r) => r.tickP50.map((v) => fmt(v / 1000, 2)).join(" / "))],
    ["tick p95 per shard (s)", ...rows.map((r) => r.tickP95.map((v) => fmt(v / 1000, 2)).join(" / "))],
    ["pairs/s, first tick start to last tick end", ...rows.map((r) => fmt(r.pairsPerSec))],
    ["pairs/s, pairs ÷ slowest shard's tick", ...rows.map((r) => fmt(r.pairsPerSecSlowest))],
    ["evaluator CPU-s per 1M pairs", ...rows.map((r) => fmt(r.perMillion.evaluator, 2))],
    ["PostgreSQL CPU-s per 1M pairs", ...rows.map((r) => fmt(r.perMillion.postgres, 2))],
    ["Valkey CPU-s per 1M pairs", ...rows.map((r) => fmt(r.perMillion.valkey, 2))],
    [
      "product total CPU-s per 1M pairs",
      ...rows.map((r) => fmt(r.perMillion.evaluator + r.perMillion.postgres + r.perMillion.valkey, 2)),
    ],
    [
      "ingest: its PostgreSQL backend, CPU-s per 1M readings",
      ...rows.map((r) => fmt(r.perMillion.ingest, 2)),
    ],
    [
      "ingest: the client (unnest batches), CPU-s per 1M",
      ...rows.map((r) => fmt(r.perMillion.ingestClient, 2)),
    ],
    [
      "autovacuum of the database, CPU-s per 1M readings",
      ...rows.map((r) => fmt(r.perMillion.autovacuum, 2)),
    ],
    ["ingest wall time per tick (s)", ...rows.map((r) => fmt(r.ingestSeconds, 1))],
    ["Valkey command time per tick (ms)", ...rows.map((r) => fmt(r.valkeyOwnMsPerTick))],
    ["one Valkey core's ceiling (pairs/min)", ...rows.map((r) => fmt(r.valkeyCeilingPerMinute))],
    ["peak RSS per evaluator (MiB)", ...rows.map((r) => r.rssMiB.map((v) => fmt(v)).join(" / "))],
  ];
  const widths = header.map((_, i) => Math.max(...[header, ...lines].map((l) => l[i]!.length)));
  const print = (l: string[]) =>
    console.log(
      `  ${l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("   ")}`,
    );
  print(header);
  for (const l of lines) print(l);

  const base = rows[0]!;
  if (rows.length < 2) return;
  console.log(`\nratios against ${base.shards} shard${base.shards > 1 ? "s" : ""} (same run):`);
  for (const r of rows.slice(1)) {
    const total = (s: Summary) => s.perMillion.evaluator + s.perMillion.postgres + s.perMillion.valkey;
    const maxP50 = (s: Summary) => Math.max(...s.tickP50);
    console.log(
      `  ${r.shards} shards: slowest shard's p50 tick ×${fmt(maxP50(r) / maxP50(base), 2)}, pairs/s ×${fmt(r.pairsPerSec / base.pairsPerSec, 2)}, ` +
        `CPU per pair: evaluator ×${fmt(r.perMillion.evaluator / base.perMillion.evaluator, 2)}, ` +
        `PostgreSQL ×${fmt(r.perMillion.postgres / base.perMillion.postgres, 2)}, Valkey ×${fmt(r.perMillion.valkey / base.perMillion.valkey, 2)}, ` +
        `all three ×${fmt(total(r) / total(base), 2)}; peak RSS per evaluator ×${fmt(Math.max(...r.rssMiB) / Math.max(...base.rssMiB), 2)}`,
    );
  }
}

async function main(): Promise<void> {
  const dbName = `eo_sizing_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL, application_name: "sizing-admin" });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName} TEMPLATE template0`);
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const pool = new pg.Pool({ connectionString: dbUrl.toString(), max: 2, application_name: "sizing-setup" });
  pool.on("error", () => undefined);
  const ingestClient = new pg.Client({ connectionString: dbUrl.toString(), application_name: INGEST_APP });
  const valkey = await startPrivateRedis();
  const stats = new Redis(valkey.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  // Errors surface through the failing call; these only keep a dropped connection from crashing the run.
  stats.on("error", () => undefined);
  ingestClient.on("error", () => undefined);
  admin.on("error", () => undefined);
  const sampler = new CpuSampler(admin, dbName);
  const results: ConfigFigures[] = [];
  // Ctrl-C or SIGTERM: leave no evaluator, private Valkey or database behind (a second one exits at once).
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    sampler.stop();
    console.error(`${signal}: stopping the evaluators and the private Valkey, dropping database ${dbName}`);
    interrupted = (async () => {
      for (const p of live) p.child.kill("SIGKILL");
      await valkey.destroy().catch(() => undefined);
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await c.end();
    })()
      .catch((err: Error) => console.error(`cleanup failed: ${err.message}`))
      .finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await stats.connect();
    await ingestClient.connect();
    console.log(
      `sizing benchmark: ${fmt(TENANTS)} tenants × ${fmt(SENSORS)} sensors, one threshold rule per tenant → ` +
        `${fmt(PAIRS)} pairs and ${fmt(PAIRS)} readings per tick; shards ${SHARDS.join(", ")}; ` +
        `TICK_INTERVAL_SECONDS ${INTERVAL_S}; 1 warm-up + ${TICKS} steady ticks each; CONCURRENCY ${CONCURRENCY ?? "8 (default)"}; ` +
        `${os.availableParallelism()} CPUs, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB (shared with PostgreSQL, Valkey, the ingest and this process)`,
    );
    const loadStart = performance.now();
    await migrateUp({ db: pool });
    await seed(pool);
    console.log(`  data loaded in ${fmt((performance.now() - loadStart) / 1000, 1)} s (database ${dbName})`);
    sampler.track(valkey.pid()!, "valkey");
    sampler.start();
    for (const n of SHARDS)
      results.push(await runConfig(n, pool, dbUrl.toString(), valkey, stats, ingestClient, sampler));
    sampler.stop();

    console.log(
      `\nsteady ticks (${TICKS} per configuration), CPU per million pairs (= per million readings):`,
    );
    const rows = results.map(summarize);
    printTable(rows);
    console.log(
      `BENCH_RESULT ${JSON.stringify({ tenants: TENANTS, sensors: SENSORS, intervalSeconds: INTERVAL_S, configs: rows })}`,
    );
  } finally {
    sampler.stop();
    stats.disconnect();
    await ingestClient.end().catch(() => undefined);
    await pool.end().catch(() => undefined);
    await valkey.destroy();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((err: Error) => {
      console.error(`could not drop database ${dbName}: ${err.message}`);
    });
    await admin.end();
  }
}

try {
  await main();
} catch (err) {
  // An interrupted run fails where it was (a process killed under it): finish the clean-up instead.
  if (interrupted === undefined) throw err;
  await interrupted;
}
