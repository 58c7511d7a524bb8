/**
 * Every operator-side process that connects to PostgreSQL does so over TLS when its database URL
 * says so, trusting `TLS_CA_FILE`: the migration runner (`migrate up`, the binary), the alert-event
 * relay (`events relay`, the binary, publishing to a real nats-server), the `shards` command, and
 * the operator's per-set pools (the assignments resolver the reconcile uses, given a Secret's URL).
 * The server is a private PostgreSQL that lets TCP clients in over TLS only (hostssl), and each
 * check also reads pg_stat_ssl for the process's own connections.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { homedir } from "node:os";
import { fileURLToPath } from "node:url";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseUnavailableError } from "../../operator/src/api/errors.ts";
import type { EvaluatorShardSet } from "../../operator/src/api/types.ts";
import { createAssignmentsResolver } from "../../operator/src/assignments/assignmentsResolver.ts";
import { pgConnectionConfig } from "../../runtime/pgTls.ts";
import { eventually } from "../support/cluster.ts";
import { type PrivateNats, startPrivateNats } from "../support/privateNats.ts";
import { type PrivatePostgres, startPrivatePostgres } from "../support/privateServices.ts";
import { createTestPki, type TestPki } from "../support/tls.ts";

const OPERATOR_BIN = fileURLToPath(new URL("../../operator/bin/evaluator-operator.ts", import.meta.url));

let pki: TestPki;
let server: PrivatePostgres;
let nats: PrivateNats;
/** A session of the test's own on the TLS-only server. */
let admin: pg.Client;

/** The server's URL with verify-full (and `extra` parameters). */
const tlsUrl = (extra = "") =>
  `postgres://postgres@127.0.0.1:${server.port}/postgres?sslmode=verify-full${extra ? `&${extra}` : ""}`;

beforeAll(async () => {
  pki = await createTestPki();
  [server, nats] = await Promise.all([
    startPrivatePostgres({ tls: { certFile: pki.certFile, keyFile: pki.keyFile, requireTls: true } }),
    startPrivateNats(),
  ]);
  admin = new pg.Client(pgConnectionConfig(tlsUrl("application_name=test-admin"), { caFile: pki.caFile }));
  await admin.connect();
});
afterAll(async () => {
  await admin?.end().catch(() => undefined);
  await Promise.all([server?.destroy(), nats?.destroy()]);
  await pki?.destroy();
});

/** Runs the operator binary to its exit with only `env` (plus PATH) in its environment. */
function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [OPERATOR_BIN, ...args],
      { env: { PATH: process.env["PATH"] ?? "", ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: unknown }).code as number | null) : 0;
        resolve({ code: typeof code === "number" ? code : null, stdout, stderr });
      },
    );
  });
}

/** Whether each connection whose application_name starts with `prefix` is encrypted, in pid order. */
async function sslOf(prefix: string): Promise<boolean[]> {
  const { rows } = await admin.query<{ ssl: boolean }>(
    `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
      WHERE a.application_name LIKE $1 || '%' ORDER BY a.pid`,
    [prefix],
  );
  return rows.map((r) => r.ssl);
}

describe("operator-side processes over TLS (TLS_CA_FILE)", () => {
  it("the migration runner applies the migrations over TLS, and refuses the wrong CA", async () => {
    const wrong = await runCli(["migrate", "up"], { DATABASE_URL: tlsUrl(), TLS_CA_FILE: pki.otherCaFile });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/self[- ]signed certificate|unable to (get local issuer|verify)/);

    const missing = await runCli(["migrate", "up"], {
      DATABASE_URL: tlsUrl(),
      TLS_CA_FILE: "/nonexistent/ca.crt",
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("TLS_CA_FILE: cannot read the CA file /nonexistent/ca.crt (ENOENT)");

    // Without TLS the server turns the runner away (hostssl only): the TLS below is what lets it in.
    const plain = await runCli(["migrate", "up"], {
      DATABASE_URL: tlsUrl().replace("verify-full", "disable"),
    });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain("no encryption");

    const up = await runCli(["migrate", "up"], { DATABASE_URL: tlsUrl(), TLS_CA_FILE: pki.caFile });
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/^Applied \d+ migration\(s\):/);
    const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM schema_migrations");
    expect(rows[0]!.n).toBeGreaterThan(0);
  });

  it("the shards command reads over TLS", async () => {
    await admin.query(
      "INSERT INTO shard_sets (name, shard_count, epoch) VALUES ('iot/tls', 2, 3) ON CONFLICT DO NOTHING",
    );
    const out = await runCli(["shards", "status", "--shard-set", "iot/tls"], {
      DATABASE_URL: tlsUrl(),
      TLS_CA_FILE: pki.caFile,
    });
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("epoch 3");
  });

  it("the operator's pool for a set's database Secret connects over TLS", async () => {
    const secrets = new Map([
      ["iot/db-tls/url", tlsUrl("application_name=operator-tls-test")],
      ["iot/db-verify-nothing/url", tlsUrl("application_name=operator-no-ca")],
    ]);
    const kube = {
      async readSecretKey(namespace: string, name: string, key: string) {
        const value = secrets.get(`${namespace}/${name}/${key}`);
        if (value === undefined) throw new Error(`Secret ${namespace}/${name} not found`);
        return value;
      },
    };
    const set = (name: string, secret: string) =>
      ({
        apiVersion: "evaluator.iot.dev/v1alpha1",
        kind: "EvaluatorShardSet",
        metadata: { namespace: "iot", name, uid: name },
        spec: { evaluator: {}, database: { secretRef: { name: secret } } },
      }) as unknown as EvaluatorShardSet;

    const resolver = createAssignmentsResolver({ kube, log: pino({ level: "silent" }), caFile: pki.caFile });
    try {
      const assignments = await resolver.forSet(set("tls", "db-tls"));
      const read = await assignments.read();
      expect(read.shardCount).toBe(2);
      const ssl = await sslOf("operator-tls-test");
      expect(ssl.length).toBeGreaterThan(0);
      expect(ssl.every(Boolean)).toBe(true);
    } finally {
      await resolver.close();
    }

    // Without a CA, verify-full is refused before any connection, naming the Secret, as Degraded's cause.
    const noCa = createAssignmentsResolver({ kube, log: pino({ level: "silent" }) });
    try {
      const error = await noCa.forSet(set("tls", "db-verify-nothing")).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DatabaseUnavailableError);
      expect((error as Error).message).toBe(
        "database Secret db-verify-nothing: sslmode=verify-full needs a CA: set TLS_CA_FILE to a PEM bundle, " +
          "or add sslrootcert=<path> (sslrootcert=system trusts the public root CAs, with verify-full)",
      );
    } finally {
      await noCa.close();
    }
  });

  it("the alert-event relay reads and moves its cursor over TLS", async () => {
    await admin.query(
      `INSERT INTO alert_events (tenant_id, rule_id, device_id, kind, severity, fingerprint, seq, tick_at, payload)
       SELECT 'acme', 'r' || g, 'd1', 'fired', 'warning', md5('acme' || g), g, now(), '{}'::jsonb
         FROM generate_series(1, 3) AS g`,
    );
    const { rows: last } = await admin.query<{ id: string }>("SELECT max(id)::text AS id FROM alert_events");
    const child: ChildProcess = spawn(
      process.execPath,
      [
        OPERATOR_BIN,
        "events",
        "relay",
        "--name",
        "tls",
        "--stream",
        "TLS_EVENTS",
        "--subject-prefix",
        "tls.events",
        "--http-bind-address",
        "127.0.0.1:0",
        "--poll-interval",
        "200ms",
      ],
      {
        env: {
          PATH: process.env["PATH"] ?? "",
          HOME: process.env["HOME"] ?? homedir(),
          DATABASE_URL: tlsUrl(),
          TLS_CA_FILE: pki.caFile,
          NATS_URL: nats.url,
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      // The cursor moves only after the stream acknowledged every event: the relay read them over TLS.
      await eventually(
        async () => {
          const { rows } = await admin.query<{ event_id: string }>(
            "SELECT event_id::text FROM alert_event_cursors WHERE name = 'tls'",
          );
          return rows[0]?.event_id === last[0]!.id ? true : undefined;
        },
        { timeoutMs: 30_000, what: "the relay's cursor at the last event" },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)} (relay stderr: ${stderr})`);
      });
      // Both of its connections: the pool and the LISTEN session.
      const ssl = await sslOf("alert-event-relay tls");
      expect(ssl.length).toBeGreaterThanOrEqual(1);
      expect(ssl.every(Boolean)).toBe(true);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });
});
