/**
 * `npm run chaos`: the whole system under load and faults, with a verdict.
 *
 *   node hack/chaos/run.ts [--scenario hack/chaos/scenarios/ci.json] [--report FILE] [--keep]
 *
 * Brings the system up (system.ts) on the local control plane (hack/cluster.sh up first; the npm
 * script does it), seeds the scenario's tenants with one threshold rule each, then for
 * `durationSeconds` inserts one reading per device of every active tenant each `readingSeconds`
 * (values from telemetry.ts, whose alerts are known in advance) while it plays the timeline:
 * resizes, autoscaling modes, load, killed, paused and clock-skewed evaluators, a killed operator
 * (at a reshard phase), Valkey, PostgreSQL and Prometheus stopped and started, a rollout. It
 * watches the fences, the alert rows and every process's resources (observe.ts), lets the last
 * readings be judged, and computes the verdict (verdict.ts): a table on the terminal, a JSON
 * report, exit 1 on any violation (2 when the run itself could not be made).
 */

import { closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { writeFile as writeFileAsync } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { kubectl } from "../../test/support/cluster.ts";
import { insertTenants } from "../../test/support/evaluatorFixture.ts";
import { FencePoller, ResourceSampler } from "./observe.ts";
import { type Action, loadScenario, outageIntervals, resolvedBounds, type Scenario } from "./scenario.ts";
import { type ChaosSystem, SET_NAME, startChaosSystem } from "./system.ts";
import { deviceId, RULE, tenantId, valueAt } from "./telemetry.ts";
import { computeVerdict, formatVerdict, type VerdictInput } from "./verdict.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const TENANT_PREFIX = "chaos-t";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

interface Options {
  scenario: string;
  report: string | undefined;
  keep: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { scenario: join(HERE, "scenarios", "ci.json"), report: undefined, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--scenario") o.scenario = resolve(argv[++i] ?? "");
    else if (a === "--report") o.report = resolve(argv[++i] ?? "");
    else if (a === "--keep") o.keep = true;
    else throw new Error(`unknown argument ${a} (usage: run.ts [--scenario FILE] [--report FILE] [--keep])`);
  }
  return o;
}

function defaultReportPath(name: string): string {
  const root =
    process.env["EVALUATOR_OPERATOR_CACHE"] ??
    join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "evaluator-operator");
  return join(root, "chaos", `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
}

/** Waits until `fn` returns a value other than undefined, or `timeoutMs` passes (then undefined). */
async function until<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 500,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(everyMs);
  }
}

/** One reading per device of the first `active` tenants at slot `slot`: one statement. */
async function insertSlot(
  sys: ChaosSystem,
  s: Scenario,
  slot: number,
  active: number,
  tsMs: number,
): Promise<void> {
  const tenants: string[] = [];
  const devices: string[] = [];
  const values: number[] = [];
  for (let t = 0; t < active; t++) {
    for (let d = 0; d < s.devicesPerTenant; d++) {
      tenants.push(tenantId(t));
      devices.push(deviceId(d));
      values.push(valueAt(tenantId(t), deviceId(d), slot));
    }
  }
  for (let from = 0; from < tenants.length; from += 20_000) {
    await sys.pool.query(
      `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
       SELECT t, d, 'temp', to_timestamp($4::float8 / 1000), v
         FROM unnest($1::text[], $2::text[], $3::float8[]) AS u (t, d, v)
       ON CONFLICT DO NOTHING`,
      [
        tenants.slice(from, from + 20_000),
        devices.slice(from, from + 20_000),
        values.slice(from, from + 20_000),
        tsMs,
      ],
    );
  }
  await sys.pool.query("SELECT pg_notify('telemetry_ingest', $1)", [sys.shardSet]);
}

/** `tick_start` or `tick_done`/`tick_failed`: the last tick line in the tail of a shard's log. */
function lastTickLine(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    const length = Math.min(size, 16_384);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    const text = buf.toString("utf8");
    const at = (m: string) => text.lastIndexOf(`"msg":"${m}"`);
    const start = at("tick_start");
    const end = Math.max(at("tick_done"), at("tick_failed"));
    if (start < 0 && end < 0) return undefined;
    return start > end ? "tick_start" : "tick_done";
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const scenario = await loadScenario(opts.scenario);
  const bounds = resolvedBounds(scenario);
  const log = pino({ base: { component: "chaos" } });
  const reportPath = opts.report ?? defaultReportPath(scenario.name);
  log.info(
    { scenario: scenario.name, tenants: scenario.tenants, devices: scenario.devicesPerTenant },
    "chaos_starting",
  );

  const sys = await startChaosSystem(scenario, log);
  const notes: string[] = [];
  const executed: { at: number; action: Action; startedMs: number; result: string }[] = [];
  try {
    // The set runs its initial shards; then the tenants come (the operator places them).
    const settled = await until(async () => {
      const st = await sys.status();
      return st.shards === scenario.initialShards && st.readyShards === scenario.initialShards
        ? st
        : undefined;
    }, 180_000);
    if (!settled) throw new Error(`the set did not reach ${scenario.initialShards} ready shards in 180 s`);
    const ids = Array.from({ length: scenario.tenants }, (_, i) => tenantId(i));
    const devices = Array.from({ length: scenario.devicesPerTenant }, (_, j) => deviceId(j));
    for (let from = 0; from < ids.length; from += 500) {
      await insertTenants(sys.pool, sys.shardSet, ids.slice(from, from + 500), { devices, rules: [RULE] });
    }
    await sys.pool.query("UPDATE tenants SET shard_index = NULL WHERE id LIKE $1", [`${TENANT_PREFIX}%`]);
    const placed = await until(async () => {
      const { rows } = await sys.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM tenants WHERE id LIKE $1 AND shard_index IS NULL",
        [`${TENANT_PREFIX}%`],
      );
      return rows[0]?.n === 0 ? true : undefined;
    }, 120_000);
    if (!placed) throw new Error("the operator did not place the seeded tenants in 120 s");
    log.info({ tenants: ids.length }, "chaos_tenants_placed");

    const readingMs = scenario.readingSeconds * 1000;
    const runStartMs = Math.ceil(Date.now() / readingMs) * readingMs;
    const runEndMs = runStartMs + scenario.durationSeconds * 1000;
    const fences = new FencePoller(
      sys.pool,
      TENANT_PREFIX,
      Math.max(5, Math.round(scenario.tickSeconds / 2)),
    );
    const resources = new ResourceSampler();
    let active = scenario.tenants;
    const activeSince = new Map<number, number>(ids.map((_, i) => [i, runStartMs]));
    const activeTenants: VerdictInput["activeTenants"] = [];
    /** Slots acknowledged by PostgreSQL, with the active count they were written for. */
    const written: { slot: number; active: number; tsMs: number }[] = [];
    let done = false;
    const pendingAtEnd: { slot: number; active: number; tsMs: number }[] = [];

    const generator = (async () => {
      const pending: { slot: number; active: number; tsMs: number }[] = [];
      for (let slot = 0; ; slot++) {
        const tsMs = runStartMs + slot * readingMs;
        if (tsMs >= runEndMs) break;
        await sleep(tsMs - Date.now());
        pending.push({ slot, active, tsMs });
        // Slots that failed (PostgreSQL stopped) are retried in order, with their own ts.
        while (pending.length > 0) {
          const next = pending[0]!;
          try {
            await insertSlot(sys, scenario, next.slot, next.active, next.tsMs);
            written.push(next);
            pending.shift();
          } catch {
            break;
          }
        }
      }
      // What PostgreSQL refused until the end is retried once more after the restores.
      pendingAtEnd.push(...pending);
    })();

    const pollers = (async () => {
      let k = 0;
      while (!done) {
        await fences.poll();
        if (k++ % 2 === 0) resources.sample(sys.processes());
        await sleep(1000);
      }
    })();

    const restores: Promise<void>[] = [];
    const carryOut = async (action: Action) => {
      const startedMs = Date.now();
      let result = "done";
      try {
        result = await perform(action);
      } catch (err) {
        result = `failed: ${err instanceof Error ? err.message : String(err)}`;
        notes.push(`action at ${action.at}s (${action.kind}) ${result}`);
      }
      executed.push({ at: action.at, action, startedMs, result });
      log.info({ at: action.at, action, result }, "chaos_action");
    };
    const timeline = (async () => {
      // Kills that wait for a reshard phase wait beside the timeline (one after another), so the
      // actions after them still come at their own times.
      let phaseKills = Promise.resolve();
      for (const action of scenario.timeline) {
        await sleep(runStartMs + action.at * 1000 - Date.now());
        if (action.kind === "kill" && action.target === "operator" && action.phase !== undefined) {
          phaseKills = phaseKills.then(() => carryOut(action));
        } else {
          await carryOut(action);
        }
      }
      await phaseKills;
    })();

    async function perform(a: Action): Promise<string> {
      switch (a.kind) {
        case "scale":
          await kubectl([
            "scale",
            "-n",
            sys.namespace,
            `evaluatorshardsets/${SET_NAME}`,
            `--replicas=${a.shards}`,
          ]);
          return `scaled to ${a.shards}`;
        case "mode":
          await patchSet({ spec: { autoscaling: { mode: a.mode } } });
          return `mode ${a.mode}`;
        case "load": {
          const now = Date.now();
          if (a.tenants < active) {
            for (let i = a.tenants; i < active; i++) {
              activeTenants.push({ tenantId: tenantId(i), fromMs: activeSince.get(i)!, toMs: now });
              activeSince.delete(i);
            }
          } else {
            for (let i = active; i < a.tenants; i++) activeSince.set(i, now);
          }
          active = a.tenants;
          return `${active} tenants receive telemetry`;
        }
        case "kill": {
          if (a.target === "operator") {
            let caught = "no phase asked";
            if (a.phase !== undefined) {
              const phase = a.phase;
              const seen = await until(
                async () => ((await sys.status()).reshard?.phase === phase ? true : undefined),
                60_000,
                100,
              );
              caught = seen ? `at phase ${phase}` : `phase ${phase} not seen in 60 s`;
              if (!seen) notes.push(`operator kill at ${a.at}s: ${caught}`);
            }
            await sys.killOperator(a.signal);
            return `operator ${a.signal} ${caught}`;
          }
          const proc = await midTick(a.shard);
          if (!proc) return `no process of shard ${a.shard} running`;
          process.kill(proc.pid, a.signal);
          return `shard ${a.shard} pid ${proc.pid} ${a.signal} ${proc.where}`;
        }
        case "stop": {
          const back = async () => {
            await sleep(a.seconds * 1000);
            if (a.service === "valkey") await sys.valkey.start();
            else if (a.service === "postgres") await sys.postgres.start();
            else await sys.startPrometheus();
          };
          if (a.service === "valkey") await sys.valkey.kill();
          else if (a.service === "postgres") await sys.postgres.stop({ mode: "immediate" });
          else await sys.stopPrometheus();
          restores.push(back());
          return `${a.service} stopped for ${a.seconds}s`;
        }
        case "pause": {
          const proc = await midTick(a.shard);
          if (!proc) return `no process of shard ${a.shard} running`;
          const pid = proc.pid;
          process.kill(pid, "SIGSTOP");
          restores.push(
            (async () => {
              await sleep(a.seconds * 1000);
              try {
                process.kill(pid, "SIGCONT");
              } catch {
                // it was killed meanwhile
              }
            })(),
          );
          return `shard ${a.shard} pid ${pid} paused for ${a.seconds}s ${proc.where}`;
        }
        case "skew": {
          const file = join(sys.skewDir, `shard-${a.shard}`);
          writeFileSync(file, String(a.seconds * 1000));
          const pid = shardProcess(a.shard);
          if (pid) process.kill(pid, "SIGTERM");
          restores.push(
            (async () => {
              await sleep(Math.abs(a.seconds) * 1000);
              rmSync(file, { force: true });
              const again = shardProcess(a.shard);
              if (again) process.kill(again, "SIGTERM");
            })(),
          );
          return `shard ${a.shard} restarted with its clock ${a.seconds}s off`;
        }
        case "roll": {
          const stamp = String(Date.now());
          await patchSet({ spec: { evaluator: { extraEnv: [{ name: "CHAOS_ROLLOUT", value: stamp }] } } });
          return `pod template changed (CHAOS_ROLLOUT=${stamp})`;
        }
      }
    }

    /** A merge patch of the set, as a user (or GitOps) would apply it. */
    async function patchSet(patch: unknown): Promise<void> {
      await kubectl([
        "patch",
        "-n",
        sys.namespace,
        `evaluatorshardsets/${SET_NAME}`,
        "--type=merge",
        "-p",
        JSON.stringify(patch),
      ]);
    }

    /**
     * The shard's process once it is inside a tick (its log's last tick line is `tick_start`), so a
     * kill or a pause lands mid-tick; after two intervals without catching one, the process as it is.
     */
    async function midTick(shard: number): Promise<{ pid: number; where: string } | undefined> {
      const deadline = Date.now() + 2 * scenario.tickSeconds * 1000;
      while (Date.now() < deadline) {
        const p = sys.runner.processes().find((x) => x.shard === String(shard) && x.pid !== undefined);
        if (
          p?.pid !== undefined &&
          lastTickLine(join(sys.dir, "shards", `${p.deployment}.log`)) === "tick_start"
        ) {
          return { pid: p.pid, where: "mid-tick" };
        }
        await sleep(10);
      }
      const pid = shardProcess(shard);
      return pid === undefined ? undefined : { pid, where: "(no tick caught in two intervals)" };
    }

    function shardProcess(shard: number): number | undefined {
      return sys.runner.processes().find((p) => p.shard === String(shard) && p.pid !== undefined)?.pid;
    }

    await timeline;
    await generator;
    await Promise.all(restores);
    for (const next of pendingAtEnd) {
      const ok = await until(async () => {
        await insertSlot(sys, scenario, next.slot, next.active, next.tsMs);
        return true;
      }, 60_000);
      if (ok) written.push(next);
      else notes.push(`readings of slot ${next.slot} could not be written`);
    }
    for (const [i, from] of activeSince)
      activeTenants.push({ tenantId: tenantId(i), fromMs: from, toMs: runEndMs });
    // Let every reading written be judged: a few ticks after the last one, with every service up.
    const drainMs = (3 * scenario.tickSeconds + 15) * 1000;
    log.info({ drainMs }, "chaos_draining");
    await sleep(drainMs);
    done = true;
    await pollers;
    await fences.poll();
    resources.sample(sys.processes());

    const tenantList = ids;
    const [stored, alerts, events, tenantRows, shardRow] = await Promise.all([
      sys.pool.query<{ tenant_id: string; device_id: string; ts: number }>(
        "SELECT tenant_id, device_id, extract(epoch FROM ts) * 1000 AS ts FROM telemetry WHERE tenant_id = ANY ($1)",
        [tenantList],
      ),
      sys.pool.query<{
        id: string;
        tenant_id: string;
        rule_id: string;
        device_id: string;
        fingerprint: string;
        state: "open" | "resolved";
        first_seen: number;
        last_seen: number;
        resolved_at: number | null;
      }>(
        `SELECT id::text, tenant_id, rule_id, device_id, fingerprint, state,
                extract(epoch FROM first_seen) * 1000 AS first_seen, extract(epoch FROM last_seen) * 1000 AS last_seen,
                extract(epoch FROM resolved_at) * 1000 AS resolved_at
           FROM alerts a WHERE tenant_id = ANY ($1) ORDER BY a.id`,
        [tenantList],
      ),
      sys.pool.query<{
        id: string;
        tenant_id: string;
        rule_id: string;
        device_id: string | null;
        kind: string;
        seq: string;
      }>(
        "SELECT e.id::text AS id, tenant_id, rule_id, device_id, kind, e.seq::text AS seq FROM alert_events e WHERE tenant_id = ANY ($1) ORDER BY e.id",
        [tenantList],
      ),
      sys.pool.query<{ id: string; shard_index: number | null }>(
        "SELECT id, shard_index FROM tenants WHERE id = ANY ($1)",
        [tenantList],
      ),
      sys.pool.query<{ shard_count: number }>("SELECT shard_count FROM shard_sets WHERE name = $1", [
        sys.shardSet,
      ]),
    ]);

    const insertedReadings: VerdictInput["insertedReadings"] = [];
    for (const w of written) {
      for (let t = 0; t < w.active; t++) {
        for (let d = 0; d < scenario.devicesPerTenant; d++) {
          const tenant = tenantId(t);
          const device = deviceId(d);
          insertedReadings.push({
            tenantId: tenant,
            deviceId: device,
            ts: w.tsMs,
            value: valueAt(tenant, device, w.slot),
          });
        }
      }
    }
    const runningShards = sys.runner
      .processes()
      .filter((p) => p.pid !== undefined)
      .map((p) => Number(p.shard));
    const input: VerdictInput = {
      scenario,
      runStartMs,
      runEndMs,
      bounds: { maxGapMs: bounds.maxGapSeconds * 1000, alertLatencyMs: bounds.alertLatencySeconds * 1000 },
      outages: outageIntervals(scenario).map((o) => ({
        ...o,
        fromMs: o.fromMs + runStartMs,
        toMs: o.toMs + runStartMs,
      })),
      activeTenants,
      insertedReadings,
      storedReadings: stored.rows.map((r) => ({
        tenantId: r.tenant_id,
        deviceId: r.device_id,
        ts: Math.round(Number(r.ts)),
      })),
      fenceObservations: fences.observations,
      alerts: alerts.rows.map((a) => ({
        id: Number(a.id),
        tenantId: a.tenant_id,
        ruleId: a.rule_id,
        deviceId: a.device_id,
        fingerprint: a.fingerprint,
        state: a.state,
        firstSeenMs: Number(a.first_seen),
        lastSeenMs: Number(a.last_seen),
        resolvedAtMs: a.resolved_at === null ? null : Number(a.resolved_at),
      })),
      alertIdsSeen: [...fences.alertIdsSeen],
      alertEvents: events.rows.map((e) => ({
        id: Number(e.id),
        tenantId: e.tenant_id,
        ruleId: e.rule_id,
        deviceId: e.device_id,
        kind: e.kind,
        seq: Number(e.seq),
      })),
      assignment: {
        tenants: tenantRows.rows.map((r) => ({ tenantId: r.id, shardIndex: r.shard_index })),
        shardCount: shardRow.rows[0]?.shard_count ?? 0,
        runningShards,
      },
      resources: resources.report(),
    };
    const verdict = computeVerdict(input);
    for (const c of sys.operatorCrashes) notes.push(c);
    const report = {
      scenario: scenario.name,
      startedAt: new Date(runStartMs).toISOString(),
      durationSeconds: scenario.durationSeconds,
      actions: executed.map((e) => ({ at: e.at, kind: e.action.kind, result: e.result })),
      notes,
      verdict,
    };
    mkdirSync(dirname(reportPath), { recursive: true });
    await writeFileAsync(reportPath, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\n${formatVerdict(verdict)}\n`);
    if (notes.length > 0) process.stdout.write(`\nnotes:\n${notes.map((n) => `  - ${n}`).join("\n")}\n`);
    process.stdout.write(`\nreport: ${reportPath}\n`);
    const ok = verdict.ok && sys.operatorCrashes.length === 0;
    process.stdout.write(`chaos ${scenario.name}: ${ok ? "PASS" : "FAIL"}\n`);
    return ok ? 0 : 1;
  } finally {
    if (opts.keep) {
      process.stdout.write(`kept: namespace ${sys.namespace}, folder ${sys.dir}\n`);
    } else {
      await sys.teardown();
    }
  }
}

try {
  process.exit(await main());
} catch (err) {
  process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
}
