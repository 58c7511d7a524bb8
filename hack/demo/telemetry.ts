/**
 * Demo telemetry: every few seconds, one temperature reading per device of every tenant (one
 * INSERT ... SELECT per flush), mostly normal with a few hot devices, then one NOTIFY on the
 * ingest channel, as the product's ingest side does.
 *
 *   node hack/demo/telemetry.ts <database-url> <shard-set namespace/name> [interval-seconds]
 */
import pg from "pg";

const [url, shardSet, intervalArg = "5"] = process.argv.slice(2);
if (!url || !shardSet) {
  console.error("usage: telemetry.ts <database-url> <namespace/name> [interval-seconds]");
  process.exit(2);
}
const pool = new pg.Pool({ connectionString: url, max: 1 });
pool.on("error", (err) => console.error(JSON.stringify({ msg: "telemetry_db_error", err: String(err) })));
let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
});
process.on("SIGINT", () => {
  stopping = true;
});

let flushes = 0;
while (!stopping) {
  try {
    // Hot devices: sensor-1 of every 7th tenant runs hot; the rest hover around 60-75.
    const { rowCount } = await pool.query(
      `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value)
       SELECT d.tenant_id, d.id, 'temperature', now(),
              CASE WHEN d.id = 'sensor-1' AND (substring(d.tenant_id from 8)::int % 7) = 0
                   THEN 85 + random() * 15 ELSE 60 + random() * 15 END
         FROM devices d JOIN tenants t ON t.id = d.tenant_id
        WHERE t.shard_set = $1
       ON CONFLICT DO NOTHING`,
      [shardSet],
    );
    await pool.query("SELECT pg_notify('telemetry_ingest', $1)", [shardSet]);
    flushes++;
    console.log(JSON.stringify({ msg: "telemetry_flush", readings: rowCount, flushes }));
  } catch (err) {
    console.error(JSON.stringify({ msg: "telemetry_flush_failed", err: String(err) }));
  }
  await new Promise((r) => setTimeout(r, Number(intervalArg) * 1000));
}
await pool.end();
