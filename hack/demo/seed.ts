/**
 * Demo data: creates the demo database if needed and seeds tenants with heavy-tailed weights,
 * devices and a mix of alert rules. Idempotent: an already seeded database is left as it is.
 *
 *   node hack/demo/seed.ts <database-url> <shard-set namespace/name> [tenants] [devices-per-tenant] [--add]
 *
 * With `--add`, the tenants are added after the ones already there (a tenant surge), numbered on.
 */
import pg from "pg";

const [url, shardSet, tenantsArg = "300", devicesArg = "10"] = process.argv.slice(2);
if (!url || !shardSet) {
  console.error("usage: seed.ts <database-url> <namespace/name> [tenants] [devices]");
  process.exit(2);
}
const tenants = Number(tenantsArg);
const devices = Number(devicesArg);

async function ensureDatabase(target: string): Promise<void> {
  const u = new URL(target);
  const name = u.pathname.slice(1);
  u.pathname = "/postgres";
  const admin = new pg.Client({ connectionString: u.toString() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) await admin.query(`CREATE DATABASE "${name.replace(/"/g, "")}"`);
  } finally {
    await admin.end();
  }
}

async function recreateDatabase(target: string): Promise<void> {
  const u = new URL(target);
  const name = u.pathname.slice(1).replace(/"/g, "");
  u.pathname = "/postgres";
  const admin = new pg.Client({ connectionString: u.toString() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  await ensureDatabase(target);
}

if (process.argv.includes("--create-only")) {
  await ensureDatabase(url);
  process.exit(0);
}
if (process.argv.includes("--recreate")) {
  // The demo starts from a clean slate: its database holds demo data only.
  await recreateDatabase(url);
  process.exit(0);
}

const db = new pg.Client({ connectionString: url });
await db.connect();
try {
  const { rows } = await db.query("SELECT count(*)::int AS n FROM tenants WHERE shard_set = $1", [shardSet]);
  const present: number = rows[0].n;
  const add = process.argv.includes("--add");
  if (present > 0 && !add) {
    console.log(`demo data present: ${present} tenants`);
  } else {
    const first = present + 1;
    const last = present + tenants;
    await db.query("BEGIN");
    await db.query(
      `INSERT INTO tenants (id, name, shard_set, weight)
       SELECT 'tenant-' || i, 'Tenant ' || i, $1, $4::int * 2 * (1 + round(20.0 / power(i, 0.8)))
         FROM generate_series($2::int, $3::int) AS i`,
      [shardSet, first, last, devices],
    );
    await db.query(
      `INSERT INTO devices (tenant_id, id, name)
       SELECT 'tenant-' || t, 'sensor-' || d, 'Sensor ' || d
         FROM generate_series($1::int, $2::int) AS t, generate_series(1, $3::int) AS d`,
      [first, last, devices],
    );
    // Every tenant: a threshold rule, a "3 of the last 5 readings" window rule, and a silent-sensor rule.
    await db.query(
      `INSERT INTO alert_rules (tenant_id, id, name, metric, rule_type, operator, threshold, window_seconds, min_count,
                                cooldown_seconds, severity, escalation, params)
       SELECT 'tenant-' || t, r.id, r.name, 'temperature', r.rule_type, r.op, r.threshold, r.window_seconds, r.min_count,
              60, r.severity, r.escalation::jsonb, r.params::jsonb
         FROM generate_series($1::int, $2::int) AS t,
              (VALUES
                ('overheat', 'Temperature above 90', 'threshold', '>', 90.0, NULL::int, NULL::int, 'warning',
                 '{"after_seconds": 120, "severity": "critical"}', '{}'),
                ('warm-streak', '3 of the last 5 readings above 80', 'window', '>', 80.0, 300, 3, 'warning', NULL, '{"lastN": 5}'),
                ('silent', 'No data for 2 minutes', 'pattern', NULL, NULL, 120, 1, 'info', NULL, '{"kind": "absent"}')
              ) AS r(id, name, rule_type, op, threshold, window_seconds, min_count, severity, escalation, params)`,
      [first, last],
    );
    await db.query("COMMIT");
    console.log(`seeded tenants ${first}..${last}: ${tenants} tenants × ${devices} devices × 3 rules`);
  }
} finally {
  await db.end();
}
