/**
 * Prints what the evaluators produced in the demo database: alerts by rule and state, and the
 * newest few. `node hack/demo/alerts.ts <database-url>`
 */
import pg from "pg";

const url = process.argv[2];
if (!url) {
  console.error("usage: alerts.ts <database-url>");
  process.exit(2);
}
const db = new pg.Client({ connectionString: url });
await db.connect();
try {
  const byRule = await db.query(
    `SELECT rule_id, state, severity, count(*)::int AS alerts, sum(occurrences)::int AS occurrences
       FROM alerts GROUP BY rule_id, state, severity ORDER BY rule_id, state, severity`,
  );
  console.table(byRule.rows);
  const newest = await db.query(
    `SELECT tenant_id, device_id, rule_id, severity, state, occurrences, round(value::numeric, 1) AS value,
            to_char(last_seen, 'HH24:MI:SS') AS last_seen
       FROM alerts ORDER BY last_seen DESC LIMIT 5`,
  );
  console.table(newest.rows);
} finally {
  await db.end();
}
