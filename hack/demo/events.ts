/**
 * Prints the alert events of the demo: the outbox in PostgreSQL by kind, and the newest few
 * messages the relay published on the JetStream stream, with their message ids (= event ids).
 * `node hack/demo/events.ts <database-url> <nats-url> [stream]`
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";

const [url, natsUrl, stream = "ALERT_EVENTS"] = process.argv.slice(2);
if (!url || !natsUrl) {
  console.error("usage: events.ts <database-url> <nats-url> [stream]");
  process.exit(2);
}

const db = new pg.Client({ connectionString: url });
await db.connect();
try {
  const byKind = await db.query(
    `SELECT kind, count(*)::int AS events, max(id)::int AS newest_id FROM alert_events GROUP BY kind ORDER BY kind`,
  );
  console.error("The outbox (alert_events):");
  console.table(byKind.rows);
  const cursor = await db.query(`SELECT * FROM alert_event_cursors`);
  if (cursor.rows.length > 0) console.table(cursor.rows);
} finally {
  await db.end();
}

const nc = await connect({ servers: natsUrl });
try {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  console.error(`The stream ${stream}: ${info.state.messages} messages; the newest:`);
  const rows = [];
  for (let seq = info.state.last_seq; seq >= Math.max(1, info.state.first_seq) && rows.length < 6; seq--) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m === null) continue;
    const body = JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown>;
    rows.push({
      seq,
      subject: m.subject,
      "Nats-Msg-Id": m.header.get("Nats-Msg-Id"),
      kind: body["kind"],
      rule: body["rule_id"],
      device: body["device_id"],
    });
  }
  console.table(rows);
} finally {
  await nc.close();
}
