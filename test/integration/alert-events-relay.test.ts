/**
 * The alert-event relay (`evaluator-operator events relay`) as a child process against the real
 * PostgreSQL and a real nats-server with JetStream of each test's own (test/support/privateNats.ts,
 * so the binary is all a machine needs): every outbox event reaches the stream exactly
 * once — counted on the consumer side by event id (`Nats-Msg-Id`): each id once, every id there —
 * through a transaction that commits late with smaller ids, a relay SIGKILLed mid-stream and
 * restarted (with its cursor behind the stream and the duplicate window over), a nats-server
 * stopped and started and one killed, and a PostgreSQL restart. The stream's duplicate window is
 * 1 s here, so the relay's own resume (from the stream's newest event) is what is proven, not
 * JetStream's de-duplication.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { homedir } from "node:os";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tenantOfToken } from "../../operator/src/events/subject.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { eventually, type LogLine } from "../support/evaluatorProcess.ts";
import { startPrivatePgbouncer } from "../support/pgbouncer.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { type PrivateNats, startPrivateNats } from "../support/privateNats.ts";
import { type PrivatePostgres, startPrivatePostgres } from "../support/privateServices.ts";

const OPERATOR_BIN = fileURLToPath(new URL("../../operator/bin/evaluator-operator.ts", import.meta.url));

interface RelayProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` and resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function startRelay(env: Record<string, string>, args: string[]): RelayProcess {
  const child = spawn(
    process.execPath,
    [
      OPERATOR_BIN,
      "events",
      "relay",
      "--http-bind-address",
      "127.0.0.1:0",
      "--poll-interval",
      "200ms",
      "--publish-timeout",
      "1s",
      "--max-backoff",
      "1s",
      "--duplicate-window",
      "1s",
      ...args,
    ],
    {
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? homedir(), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const logs: LogLine[] = [];
  let partial = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    partial += chunk;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const text of lines) {
      try {
        logs.push(JSON.parse(text) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    logs,
    waitForLog: (match, timeoutMs = 20_000) =>
      eventually(async () => logs.find(match), timeoutMs, `a relay log line (stderr: ${stderr})`),
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** One message of the stream as a consumer reads it. */
interface StreamMessage {
  readonly id: string;
  readonly xid: string;
  readonly subject: string;
  readonly body: { id: number; tenant_id: string; kind: string; seq: number };
}

/** Every message of `stream`, in stream order. */
async function readStream(url: string, stream: string): Promise<StreamMessage[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream).catch(() => null);
    if (info === null || info.state.messages === 0) return [];
    const out: StreamMessage[] = [];
    for (let seq = Math.max(1, info.state.first_seq); seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      if (m === null) continue;
      out.push({
        id: m.header.get("Nats-Msg-Id"),
        xid: m.header.get("Alert-Event-Xid"),
        subject: m.subject,
        body: JSON.parse(new TextDecoder().decode(m.data)),
      });
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Appends `n` events of `tenant` in one transaction (as a commit of the evaluator would). */
async function insertEvents(db: pg.Pool | pg.ClientBase, tenant: string, n: number): Promise<void> {
  await db.query(
    `INSERT INTO alert_events (tenant_id, rule_id, device_id, kind, severity, fingerprint, seq, tick_at, payload)
     SELECT $1, 'r' || g, 'd1', 'fired', 'warning', md5($1 || g), g, now(), jsonb_build_object('n', g)
       FROM generate_series(1, $2::int) AS g`,
    [tenant, n],
  );
}

async function allEventIds(db: pg.Pool): Promise<string[]> {
  // e.id, not id: a bare `id` would order by the output column, the text.
  const { rows } = await db.query<{ id: string }>(
    "SELECT e.id::text AS id FROM alert_events e ORDER BY e.xid, e.id",
  );
  return rows.map((r) => r.id);
}

/** Each id exactly once on the stream, every id of the table there, in (xid, id) order. */
function expectExactlyOnce(messages: readonly StreamMessage[], ids: readonly string[]): void {
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
  const repeated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  expect(repeated, "ids published more than once").toEqual([]);
  expect(
    ids.filter((id) => !counts.has(id)),
    "ids missing from the stream",
  ).toEqual([]);
  expect(messages.map((m) => m.id)).toEqual(ids);
}

let db: TestDatabase;
let stream: string;
let relays: RelayProcess[];
let privateServers: { destroy(): Promise<void> }[];
/** A nats-server of the test's own (with JetStream, its store in a temp folder). */
let nats: PrivateNats;

beforeEach(async () => {
  db = await createTestDatabase("relay");
  await migrateUp({ db: db.pool });
  stream = `EVENTS_${db.name.toUpperCase()}`;
  relays = [];
  nats = await startPrivateNats();
  privateServers = [nats];
});

afterEach(async () => {
  for (const r of relays) await r.stop("SIGKILL");
  for (const s of privateServers) await s.destroy();
  await db.drop();
});

const relayArgs = (prefix: string, extra: string[] = []) => [
  "--stream",
  stream,
  "--subject-prefix",
  prefix,
  "--batch-size",
  "50",
  ...extra,
];

function relay(env: Record<string, string>, args: string[]): RelayProcess {
  const r = startRelay(env, args);
  relays.push(r);
  return r;
}

/**
 * Waits until the stream holds `count` messages (polling its count), then reads them all once. The
 * relay publishes one acknowledgement round trip per event, so the default allows 30 ms per event
 * (a loaded machine), and at least 30 s.
 */
async function waitForStream(
  url: string,
  count: number,
  timeoutMs = Math.max(30_000, count * 30),
): Promise<StreamMessage[]> {
  await eventually(
    async () => ((await streamSize(url, stream).catch(() => 0)) >= count ? true : undefined),
    timeoutMs,
    `${count} messages on the stream`,
  );
  return readStream(url, stream);
}

/** How many messages `stream` holds (0 while it does not exist). */
async function streamSize(url: string, stream: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream).catch(() => null);
    return info?.state.messages ?? 0;
  } finally {
    await nc.close();
  }
}

describe("events relay", () => {
  it("reads in numeric (xid, id) order: ids of one transaction across 99 → 100, small batches, none skipped or repeated", async () => {
    // One transaction's events get ids 95 … 104: in text order "100" would come before "95", and a
    // batch of 3 would take 100-102 first and move the cursor past 95-99, which were then never
    // published (found through PgBouncer, where the ids happened to cross 100).
    await db.pool.query("SELECT setval(pg_get_serial_sequence('alert_events', 'id'), 94)");
    await insertEvents(db.pool, "acme", 10);
    const ids = await allEventIds(db.pool);
    expect(ids).toEqual(["95", "96", "97", "98", "99", "100", "101", "102", "103", "104"]);
    const r = relay({ DATABASE_URL: db.url, NATS_URL: nats.url }, [
      ...relayArgs(`o${db.name}.ev`),
      "--batch-size",
      "3",
    ]);
    const messages = await waitForStream(nats.url, ids.length);
    expectExactlyOnce(messages, ids);
    // Past the duplicate window (1 s) and several polls (200 ms): nothing is published again.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expectExactlyOnce(await readStream(nats.url, stream), ids);
    const { rows } = await db.pool.query<{ event_id: string }>(
      "SELECT event_id::text FROM alert_event_cursors WHERE name = 'default'",
    );
    expect(rows).toEqual([{ event_id: "104" }]);
    expect(r.logs.filter((l) => l.msg === "relay_failed")).toEqual([]);
  });

  it("publishes each event once in (xid, id) order, to its tenant's subject; a transaction open with smaller ids holds the later ones back, never loses them", async () => {
    const r = relay({ DATABASE_URL: db.url, NATS_URL: nats.url }, relayArgs(`t${db.name}.ev`));
    await r.waitForLog((l) => l.msg === "relay_resumed");
    // A takes its transaction id first, then B inserts (smaller id, larger xid) and commits.
    const a = await db.pool.connect();
    try {
      await a.query("BEGIN");
      await a.query("SELECT pg_current_xact_id()");
      await insertEvents(db.pool, "acme", 3);
      await insertEvents(a, "acme.eu", 2);
      // B's events are committed, but A (below them) is open: none may be published yet.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await readStream(nats.url, stream)).toEqual([]);
      await a.query("COMMIT");
    } finally {
      a.release();
    }
    const messages = await waitForStream(nats.url, 5);
    expectExactlyOnce(messages, await allEventIds(db.pool));
    // A's events come first (smaller xid), although their ids are larger.
    expect(messages.map((m) => m.body.tenant_id)).toEqual(["acme.eu", "acme.eu", "acme", "acme", "acme"]);
    expect(messages.map((m) => m.subject.split(".").at(-1))).toEqual([
      "acme~2Eeu",
      "acme~2Eeu",
      "acme",
      "acme",
      "acme",
    ]);
    expect(tenantOfToken(messages[0]!.subject.split(".").at(-1)!)).toBe("acme.eu");
    const { rows } = await db.pool.query(
      "SELECT event_id::text FROM alert_event_cursors WHERE name = 'default'",
    );
    expect(rows).toEqual([{ event_id: messages.at(-1)!.id }]);
  });

  it("wakes on NOTIFY alert_events (as the evaluator's commit sends it) long before its poll interval", async () => {
    const r = relay({ DATABASE_URL: db.url, NATS_URL: nats.url }, [
      ...relayArgs(`n${db.name}.ev`),
      "--poll-interval",
      "10m",
    ]);
    await r.waitForLog((l) => l.msg === "listen_started");
    await r.waitForLog((l) => l.msg === "relay_resumed");
    const started = Date.now();
    const client = await db.pool.connect();
    try {
      await client.query("BEGIN");
      await insertEvents(client, "acme", 2);
      await client.query("SELECT pg_notify('alert_events', 'acme')");
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    expectExactlyOnce(await waitForStream(nats.url, 2, 10_000), await allEventIds(db.pool));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("SIGKILLed mid-stream and restarted — with its cursor behind the stream and the duplicate window over — publishes each event once", {
    timeout: 240_000,
  }, async () => {
    const prefix = `k${db.name}.ev`;
    const env = { DATABASE_URL: db.url, NATS_URL: nats.url };
    let stop = false;
    const producer = (async () => {
      for (let i = 0; !stop; i++) {
        await insertEvents(db.pool, `tenant-${i % 7}`, 1 + (i % 5));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      for (let round = 0; round < 3; round++) {
        const r = relay(env, relayArgs(prefix));
        // Let it publish some, then kill it without warning, mid-stream.
        await waitForStream(nats.url, 200 * (round + 1));
        await r.stop("SIGKILL");
        // As if it died between a publish and its cursor save: the cursor is put back, and the
        // duplicate window (1 s) passes, so JetStream would accept a re-publish.
        await db.pool.query(
          `UPDATE alert_event_cursors c SET (xid, event_id) = (e.xid, e.id)
             FROM (SELECT xid, id FROM alert_events ORDER BY xid, id OFFSET 100 * $1::int LIMIT 1) e`,
          [round],
        );
        await new Promise((resolve) => setTimeout(resolve, 1200));
      }
    } finally {
      stop = true;
      await producer;
    }
    const r = relay(env, relayArgs(prefix));
    const ids = await allEventIds(db.pool);
    const messages = await waitForStream(nats.url, ids.length);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expectExactlyOnce(await readStream(nats.url, stream), ids);
    expect(messages.length).toBeGreaterThan(600);
    // The restart found the stream ahead of the (rewound) cursor and went on from the stream.
    const resumed = await r.waitForLog((l) => l.msg === "relay_resumed");
    const tail = resumed["streamTail"] as { xid: string; id: string };
    const saved = resumed["saved"] as { xid: string; id: string };
    expect(resumed["cursor"]).toEqual(tail);
    expect(BigInt(tail.xid) > BigInt(saved.xid) || BigInt(tail.id) > BigInt(saved.id)).toBe(true);
  });

  it("a nats-server stopped and started, then killed and started, loses and duplicates nothing", {
    timeout: 240_000,
  }, async () => {
    const prefix = "alerts.events";
    relay({ DATABASE_URL: db.url, NATS_URL: nats.url }, relayArgs(prefix));
    let stop = false;
    const producer = (async () => {
      for (let i = 0; !stop; i++) {
        await insertEvents(db.pool, `tenant-${i % 5}`, 1 + (i % 3));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      await waitForStream(nats.url, 100);
      await nats.stop();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await nats.start();
      await waitForStream(nats.url, (await readStream(nats.url, stream)).length + 100);
      await nats.kill();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await nats.start();
      await waitForStream(nats.url, (await readStream(nats.url, stream)).length + 100);
    } finally {
      stop = true;
      await producer;
    }
    const ids = await allEventIds(db.pool);
    await waitForStream(nats.url, ids.length, Math.max(60_000, ids.length * 30));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expectExactlyOnce(await readStream(nats.url, stream), ids);
    expect(
      relays[0]!.logs.filter((l) => l.msg === "relay_failed" && l["stage"] === "nats").length,
    ).toBeGreaterThan(0);
  });

  it("a PostgreSQL restart loses and duplicates nothing", { timeout: 240_000 }, async () => {
    const pgServer: PrivatePostgres = await startPrivatePostgres();
    privateServers.push(pgServer);
    const pool = new pg.Pool({ connectionString: pgServer.url, max: 2 });
    pool.on("error", () => undefined);
    try {
      await migrateUp({ db: pool });
      const r = relay({ DATABASE_URL: pgServer.url, NATS_URL: nats.url }, relayArgs(`p${db.name}.ev`));
      for (let i = 0; i < 20; i++) await insertEvents(pool, `tenant-${i % 3}`, 10);
      await waitForStream(nats.url, 200);
      await pgServer.stop({ mode: "immediate" });
      await r.waitForLog((l) => l.msg === "relay_failed" && l["stage"] === "postgres");
      await pgServer.start();
      for (let i = 0; i < 20; i++) await insertEvents(pool, `tenant-${i % 3}`, 10);
      const ids = await allEventIds(pool);
      await waitForStream(nats.url, ids.length, Math.max(60_000, ids.length * 30));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expectExactlyOnce(await readStream(nats.url, stream), ids);
    } finally {
      await pool.end();
    }
  });
});

describe("through PgBouncer", () => {
  it("transaction pooling: reads, cursor and retention through the pooler, LISTEN on the direct URL; each event once, woken by NOTIFY", async () => {
    const bouncer = await startPrivatePgbouncer({ poolMode: "transaction", poolSize: 3 });
    privateServers.push(bouncer);
    const pooled = bouncer.through(db.url);
    await bouncer.warm(pooled, 3);
    // Old enough for the retention: deleted through the pooler once published.
    await insertEvents(db.pool, "old", 5);
    await db.pool.query("UPDATE alert_events SET created_at = now() - interval '3 hours'");
    const oldIds = await allEventIds(db.pool);
    const r = relay({ DATABASE_URL: pooled, DIRECT_DATABASE_URL: db.url, NATS_URL: nats.url }, [
      ...relayArgs(`b${db.name}.ev`, ["--retention", "1h", "--prune-interval", "1s"]),
      // Only a NOTIFY (through the direct connection's LISTEN) can wake it in time.
      "--poll-interval",
      "10m",
    ]);
    await r.waitForLog((l) => l.msg === "listen_started");
    await r.waitForLog((l) => l.msg === "relay_resumed");
    for (let i = 0; i < 10; i++) {
      await insertEvents(db.pool, `tenant-${i % 3}`, 10);
      await db.pool.query("SELECT pg_notify('alert_events', 'tenant')");
    }
    const ids = [...oldIds, ...(await allEventIds(db.pool)).filter((id) => !oldIds.includes(id))];
    expect(ids.length).toBe(105);
    await waitForStream(nats.url, ids.length);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const messages = await readStream(nats.url, stream);
    expectExactlyOnce(messages, ids);
    await r.waitForLog((l) => l.msg === "events_pruned" && l["deleted"] === 5);
    // The cursor was saved through the pooler, at the last event.
    const { rows } = await db.pool.query<{ event_id: string }>(
      "SELECT event_id::text FROM alert_event_cursors WHERE name = 'default'",
    );
    expect(rows).toEqual([{ event_id: ids.at(-1) }]);
    expect(r.logs.filter((l) => l.msg === "relay_failed")).toEqual([]);
  });
});

describe("retention", () => {
  it("the relay deletes events older than --retention, after publishing them; events prune does it on demand", async () => {
    await insertEvents(db.pool, "old", 5);
    await db.pool.query("UPDATE alert_events SET created_at = now() - interval '3 hours'");
    await insertEvents(db.pool, "new", 2);
    const r = relay(
      { DATABASE_URL: db.url, NATS_URL: nats.url },
      relayArgs(`r${db.name}.ev`, ["--retention", "2h", "--prune-interval", "1s"]),
    );
    await waitForStream(nats.url, 7);
    await r.waitForLog((l) => l.msg === "events_pruned" && l["deleted"] === 5);
    const left = async () =>
      (await db.pool.query<{ tenant_id: string }>("SELECT tenant_id FROM alert_events ORDER BY id")).rows.map(
        (x) => x.tenant_id,
      );
    expect(await left()).toEqual(["new", "new"]);

    await r.stop();
    await db.pool.query("UPDATE alert_events SET created_at = now() - interval '2 days'");
    const out = await runCli(["events", "prune", "--older-than", "24h"], { DATABASE_URL: db.url });
    expect(out).toMatch(/^Deleted 2 alert event\(s\) created before /);
    expect(await left()).toEqual([]);
  });
});

async function runCli(args: string[], env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, [OPERATOR_BIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  child.stderr.on("data", (d) => {
    err += String(d);
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`exit ${code}: ${err}`);
  return out;
}
