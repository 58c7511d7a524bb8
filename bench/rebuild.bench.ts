/**
 * What rebuilding one tenant's state from PostgreSQL costs (state/rebuild.ts, after Valkey lost
 * it): one `rebuild_state.sql` statement plus the pure replay, against the real PostgreSQL, on
 * synthetic data in a throwaway database.
 *
 *   node bench/rebuild.bench.ts          (npm run bench -- rebuild)
 *
 * The tenant: BENCH_REBUILD_DEVICES (100) devices × 4 rules, one of each type, all unbound —
 * threshold (temp), window (temp, 15 min, ≤ 1000 readings), anomaly (hum, span 100, so R = 2000
 * readings replayed), pattern (BENCH_REBUILD_PATTERN: `rising` over 10 min, 3 rises, or `absent`) —
 * with 1 h of one reading per minute of temp and hum per device, all judged, plus
 * BENCH_REBUILD_ALERTS (3) resolved alerts per pair and one open alert on every 10th pair. Around
 * it, BENCH_REBUILD_OTHER_TENANTS (50) tenants of the same shape, so the tables are not the
 * tenant's alone. BENCH_REBUILD_REPEAT (20) timed rebuilds on one connection after one that
 * prepares the statement; a second series on a connection of its own per rebuild (prepare
 * included) shows the cost of the first rebuild after a reconnect.
 *
 * Figures: ms per tenant (median, p90, min) split into the statement and the pure part; rows the
 * statement read (from EXPLAIN ANALYZE: telemetry and alerts rows, buffers hit/read), rows and
 * bytes it returned.
 */
import pg from "pg";
import { parseRule } from "../evaluator/src/rules/parseRule.ts";
import { planTenant } from "../evaluator/src/rules/planTenant.ts";
import type { Rule } from "../evaluator/src/rules/types.ts";
import { buildRebuildStatement, type RebuildRow, rebuildSnapshot } from "../evaluator/src/state/rebuild.ts";
import { migrateUp } from "../operator/src/migrate/runMigrations.ts";
import { createTestDatabase } from "../test/support/postgres.ts";

const env = process.env;
const DEVICES = Number(env["BENCH_REBUILD_DEVICES"] ?? 100);
const OTHER_TENANTS = Number(env["BENCH_REBUILD_OTHER_TENANTS"] ?? 50);
const ALERTS_PER_PAIR = Number(env["BENCH_REBUILD_ALERTS"] ?? 3);
const REPEAT = Math.max(3, Number(env["BENCH_REBUILD_REPEAT"] ?? 20));
const PATTERN = env["BENCH_REBUILD_PATTERN"] === "absent" ? "absent" : "rising";
const MIN = 60_000;
const NOW = Math.floor(Date.now() / MIN) * MIN;
const TENANT = "t-0";

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function line(label: string, value: string): void {
  console.log(`  ${label.padEnd(56)} ${value}`);
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Rule rows of one tenant (the same four everywhere). */
function ruleRows(tenantId: string): Record<string, unknown>[] {
  const base = {
    tenant_id: tenantId,
    device_id: null,
    operator: null,
    threshold: null,
    window_seconds: null,
    min_count: null,
    cooldown_seconds: 300,
    severity: "warning",
    escalation: null,
    params: {},
  };
  return [
    { ...base, id: "threshold", metric: "temp", rule_type: "threshold", operator: ">", threshold: 90 },
    {
      ...base,
      id: "window",
      metric: "temp",
      rule_type: "window",
      operator: ">",
      threshold: 80,
      window_seconds: 900,
      min_count: 3,
    },
    { ...base, id: "anomaly", metric: "hum", rule_type: "anomaly", params: { span: 100 } },
    PATTERN === "rising"
      ? {
          ...base,
          id: "pattern",
          metric: "temp",
          rule_type: "pattern",
          window_seconds: 600,
          min_count: 3,
          params: { kind: "rising" },
        }
      : {
          ...base,
          id: "pattern",
          metric: "temp",
          rule_type: "pattern",
          window_seconds: 300,
          params: { kind: "absent" },
        },
  ];
}

async function seed(db: pg.Client): Promise<void> {
  const tenants = [TENANT, ...Array.from({ length: OTHER_TENANTS }, (_, i) => `t-${i + 1}`)];
  await db.query(
    "INSERT INTO tenants (id, shard_set, shard_index) SELECT t, 'bench/rebuild', 0 FROM unnest($1::text[]) AS t",
    [tenants],
  );
  await db.query(
    `INSERT INTO devices (tenant_id, id)
     SELECT t, 'dev-' || j FROM unnest($1::text[]) AS t, generate_series(0, $2::int - 1) AS j`,
    [tenants, DEVICES],
  );
  const rows = tenants.flatMap(ruleRows);
  await db.query(
    `INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold, window_seconds, min_count,
                              cooldown_seconds, params)
     SELECT r.tenant_id, r.id, r.metric, r.rule_type, r.operator, r.threshold, r.window_seconds, r.min_count,
            r.cooldown_seconds, r.params
       FROM jsonb_to_recordset($1::jsonb) AS r (tenant_id text, id text, metric text, rule_type text, operator text,
            threshold float8, window_seconds int, min_count int, cooldown_seconds int, params jsonb)`,
    [JSON.stringify(rows)],
  );
  // 1 h of one reading per minute, temp and hum, every device of every tenant.
  await db.query(
    `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
     SELECT t, 'dev-' || j, m, to_timestamp(($2::float8 - k * 60000) / 1000),
            50 + ((j * 17 + k * 7 + length(m)) % 20)
       FROM unnest($1::text[]) AS t, generate_series(0, $3::int - 1) AS j, generate_series(1, 60) AS k,
            unnest(ARRAY['temp', 'hum']) AS m`,
    [tenants, NOW, DEVICES],
  );
  // Alert history: ALERTS_PER_PAIR resolved alerts per pair, one open alert on every 10th device.
  await db.query(
    `INSERT INTO alerts (tenant_id, rule_id, device_id, fingerprint, state, severity, first_seen, last_seen,
                         resolved_at)
     SELECT t, r, 'dev-' || j, md5(t || r || j), 'resolved', 'warning',
            to_timestamp(($2::float8 - n * 3600000) / 1000), to_timestamp(($2::float8 - n * 3600000) / 1000),
            to_timestamp(($2::float8 - n * 3600000) / 1000)
       FROM unnest($1::text[]) AS t, unnest(ARRAY['threshold', 'window', 'anomaly', 'pattern']) AS r,
            generate_series(0, $3::int - 1) AS j, generate_series(1, $4::int) AS n`,
    [tenants, NOW, DEVICES, ALERTS_PER_PAIR],
  );
  await db.query(
    `INSERT INTO alerts (tenant_id, rule_id, device_id, fingerprint, severity, first_seen, last_seen)
     SELECT t, r, 'dev-' || j, md5(t || r || j), 'warning', to_timestamp(($2::float8 - 120000) / 1000),
            to_timestamp(($2::float8 - 60000) / 1000)
       FROM unnest($1::text[]) AS t, unnest(ARRAY['threshold', 'window', 'anomaly', 'pattern']) AS r,
            generate_series(0, $3::int - 1, 10) AS j`,
    [tenants, NOW, DEVICES],
  );
  // Every reading above is judged: the fence's position is after them.
  await db.query(
    `INSERT INTO tenant_fences (tenant_id, seq, judged, eval_ms, evaluator)
     SELECT t, 60, pg_current_snapshot(), $2, 'bench' FROM unnest($1::text[]) AS t`,
    [tenants, NOW - MIN],
  );
  await db.query("ANALYZE");
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  Plans?: PlanNode[];
}

/** Rows read from each table (rows × loops of its scan nodes) and the indexes used. */
function rowsRead(node: PlanNode, out = new Map<string, { rows: number; how: Set<string> }>()) {
  if (node["Relation Name"]) {
    const entry = out.get(node["Relation Name"]) ?? { rows: 0, how: new Set<string>() };
    entry.rows += node["Actual Rows"] * node["Actual Loops"];
    entry.how.add(node["Index Name"] ? `${node["Node Type"]} on ${node["Index Name"]}` : node["Node Type"]);
    out.set(node["Relation Name"], entry);
  }
  for (const child of node.Plans ?? []) rowsRead(child, out);
  return out;
}

async function main(): Promise<void> {
  const database = await createTestDatabase("bench_rebuild");
  const dbName = database.name;
  const dbUrl = database.url;
  const connect = async () => {
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    return c;
  };
  const db = await connect();
  try {
    console.log(
      `rebuild benchmark: 1 tenant × ${fmt(DEVICES)} devices × 4 rules (threshold, window, anomaly, ${PATTERN}), ` +
        `1 h of 1/min readings; ${fmt(OTHER_TENANTS)} other tenants alike`,
    );
    const loadStart = performance.now();
    const pool = new pg.Pool({ connectionString: dbUrl, max: 1 });
    pool.on("error", () => {});
    try {
      await migrateUp({ db: pool });
    } finally {
      await pool.end();
    }
    await seed(db);
    console.log(`  data loaded in ${fmt((performance.now() - loadStart) / 1000, 1)} s (database ${dbName})`);

    const rules: Rule[] = ruleRows(TENANT).map((row) => {
      const r = parseRule(row);
      if (!r.ok) throw new Error(r.reason);
      return r.rule;
    });
    const plan = planTenant({
      tenantId: TENANT,
      rules,
      deviceIds: Array.from({ length: DEVICES }, (_, j) => `dev-${j}`),
      readingsByDeviceMetric: new Map(),
      now: NOW,
    });
    const { rows: fenceRows } = await db.query<{ seq: string; judged: string; eval_ms: number }>(
      "SELECT seq, judged::text, eval_ms FROM tenant_fences WHERE tenant_id = $1",
      [TENANT],
    );
    const fence = {
      seq: Number(fenceRows[0]!.seq),
      judged: fenceRows[0]!.judged,
      evalMs: fenceRows[0]!.eval_ms,
    };
    const statement = buildRebuildStatement(plan, fence)!;

    const rebuildOn = async (client: pg.Client) => {
      const t0 = performance.now();
      const { rows } = await client.query<RebuildRow & Record<string, unknown>>(statement);
      const t1 = performance.now();
      const snapshot = rebuildSnapshot(plan, rows, fence, Date.now());
      const t2 = performance.now();
      return { sqlMs: t1 - t0, pureMs: t2 - t1, rows, snapshot };
    };

    const first = await rebuildOn(db); // prepares the statement on this connection
    const warm: { sqlMs: number; pureMs: number }[] = [];
    for (let i = 0; i < REPEAT; i++) warm.push(await rebuildOn(db));
    const cold: number[] = [];
    for (let i = 0; i < Math.min(REPEAT, 10); i++) {
      const c = await connect();
      try {
        const r = await rebuildOn(c);
        cold.push(r.sqlMs + r.pureMs);
      } finally {
        await c.end();
      }
    }

    const totals = warm.map((r) => r.sqlMs + r.pureMs).sort((a, b) => a - b);
    const sqls = warm.map((r) => r.sqlMs).sort((a, b) => a - b);
    const pures = warm.map((r) => r.pureMs).sort((a, b) => a - b);
    cold.sort((a, b) => a - b);
    const returned = first.rows.reduce((n, r) => n + (r.readings?.length ?? 0), 0);
    const bytes = JSON.stringify(first.rows).length;
    const s = first.snapshot;
    console.log(`\none rebuild (${fmt(plan.pairs.length)} pairs, median of ${REPEAT}, prepared statement):`);
    line(
      "ms per tenant (median / p90 / min)",
      `${fmt(quantile(totals, 0.5), 2)} / ${fmt(quantile(totals, 0.9), 2)} / ${fmt(totals[0]!, 2)}`,
    );
    line("  of which the statement (median)", fmt(quantile(sqls, 0.5), 2));
    line("  of which the pure part (median)", fmt(quantile(pures, 0.5), 2));
    line(
      `ms per tenant on a new connection (median of ${cold.length}, prepare incl.)`,
      fmt(quantile(cold, 0.5), 2),
    );
    line(
      "rows returned (pairs) / readings in them / bytes (JSON)",
      `${fmt(first.rows.length)} / ${fmt(returned)} / ${fmt(bytes)}`,
    );
    line(
      "rebuilt: buffers / statistics / last-seen / firing / cooldowns",
      `${s.buffers.size} / ${s.anomalies.size} / ${s.seen.size} / ${s.alerts.size} / ${s.cooldownUntil.size}`,
    );

    const { rows: explained } = await db.query<{
      "QUERY PLAN": { Plan: PlanNode; "Execution Time": number }[];
    }>({
      text: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement.text}`,
      values: statement.values,
    });
    const top = explained[0]!["QUERY PLAN"][0]! as unknown as {
      Plan: PlanNode & { "Shared Hit Blocks": number; "Shared Read Blocks": number };
      "Execution Time": number;
    };
    console.log("\nwhat the statement read (EXPLAIN ANALYZE):");
    for (const [table, { rows, how }] of rowsRead(top.Plan)) {
      line(`rows read from ${table}`, `${fmt(rows)}  (${[...how].join(", ")})`);
    }
    line(
      "buffers hit / read (8 kB pages)",
      `${fmt(top.Plan["Shared Hit Blocks"])} / ${fmt(top.Plan["Shared Read Blocks"])}`,
    );
    line("server execution time (ms)", fmt(top["Execution Time"], 2));
  } finally {
    await db.end();
    await database.drop();
  }
}

await main();
