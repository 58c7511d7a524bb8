/**
 * The evaluator's other Valkey topologies, on real servers, through the client the evaluator builds
 * (`connectValkey`):
 * - Sentinel (VALKEY_MODE=sentinel): a primary, its replica and two sentinels; schedules of ticks,
 *   hand-offs and ingests with forced failovers beside them hold every exactly-once invariant, and
 *   the client ends up on the promoted primary;
 * - TLS (`rediss://` with TLS_CA_FILE, a CA made for the test): a TLS-only server is used, a client
 *   trusting another CA (or the system's) is refused, an evaluator process with these settings
 *   alerts, and one with an unreadable CA file exits 2 naming it. (TLS to a Cluster takes the same
 *   client options; it is not tested here: the test servers' cluster bus did not form over TLS.)
 */
import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  compileEvaluatorConfig,
  type RawEvaluatorOptions,
} from "../../evaluator/src/config/evaluatorConfig.ts";
import { connectValkey } from "../../evaluator/src/main.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually } from "../support/evaluatorProcess.ts";
import { runAndCheck, type Step } from "../support/interleavings.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { type PrivateRedis, startPrivateRedis } from "../support/privateServices.ts";
import { createTestPki, type TestPki } from "../support/tls.ts";
import { deleteTenantKeys } from "../support/valkey.ts";
import { type PrivateSentinelSet, SENTINEL_MASTER, startSentinelSet } from "../support/valkeySentinel.ts";

/** The evaluator's own Valkey client for these settings. */
function evaluatorClient(raw: Partial<RawEvaluatorOptions>): Redis | Cluster {
  const config = compileEvaluatorConfig({
    shardIndex: "0",
    shardSet: "test/topology",
    databaseUrl: "postgres://unused@127.0.0.1:1/x",
    valkeyCommandTimeoutMs: "2000",
    ...raw,
  });
  return connectValkey(config);
}

function ready(client: Redis | Cluster, timeoutMs = 10_000): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`not ready within ${timeoutMs} ms: ${client.status}`)),
      timeoutMs,
    );
    client.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The port of the server the client talks to, when that server is a primary (else 0). */
async function portOf(client: Redis): Promise<number> {
  const role = (await client.call("ROLE")) as unknown[];
  if (role[0] !== "master") return 0;
  const [, port] = (await client.call("CONFIG", "GET", "port")) as string[];
  return Number(port);
}

let db: TestDatabase;
let pki: TestPki;

beforeAll(async () => {
  db = await createTestDatabase("valkey_topologies");
  await migrateUp({ db: db.pool });
  pki = await createTestPki();
});

afterAll(async () => {
  await db?.drop();
  await pki?.destroy();
});

const I = 60_000;
const ingest = (tenant: number, value: number): Step => ({ kind: "ingest", tenant, device: 0, value });

describe("VALKEY_MODE=sentinel", () => {
  let sentinels: PrivateSentinelSet;
  let client: Redis;

  beforeAll(async () => {
    sentinels = await startSentinelSet();
    client = evaluatorClient({
      valkeyMode: "sentinel",
      valkeySentinelMaster: SENTINEL_MASTER,
      valkeyUrl: sentinels.url,
    }) as Redis;
    await ready(client);
  }, 60_000);

  afterAll(async () => {
    client?.disconnect();
    await sentinels?.destroy();
  });

  it("follows forced failovers during evaluation, every exactly-once invariant holding", async () => {
    const first = await sentinels.primaryPort();
    let failovers = 0;
    const { summary, log } = await runAndCheck(
      {
        db: db.pool,
        dbUrl: db.url,
        valkey: client,
        tenants: 3,
        shards: [0, 1, 1],
        intervalMs: I,
        budgetMs: 5_000,
        topology: async () => {
          await sentinels.failover();
          failovers++;
          // The client reconnects when the sentinels announce the switch: the change is over once
          // it answers from the promoted primary (until then its calls fail like an outage).
          const promoted = await sentinels.primaryPort();
          await eventually(
            async () => (await portOf(client).catch(() => 0)) === promoted,
            20_000,
            "the client on the promoted primary",
          );
        },
      },
      [
        ingest(0, 80),
        ingest(1, 20),
        { kind: "slot" },
        { kind: "topology", action: 0, tenant: 0 },
        ingest(0, 90),
        ingest(2, 70),
        { kind: "slot" },
        { kind: "advance", ms: I },
        { kind: "slot" },
        { kind: "move", tenant: 1, shard: 0 },
        { kind: "overrun", pod: 1 },
        { kind: "topology", action: 0, tenant: 1 },
        { kind: "release" },
        ingest(1, 99),
        { kind: "advance", ms: I },
        { kind: "slot" },
        ingest(0, 10),
        { kind: "advance", ms: I },
        { kind: "slot" },
      ],
    );
    expect(failovers, log.join("\n")).toBe(2);
    expect(summary.evaluations.committed).toBeGreaterThan(0);
    // Two failovers: back on the first primary, which the client now talks to as the primary.
    expect(await sentinels.primaryPort()).toBe(first);
    const role = (await client.call("ROLE")) as unknown[];
    expect(role[0]).toBe("master");
    expect(await portOf(client)).toBe(first);
  }, 180_000);
});

describe("TLS (rediss:// with TLS_CA_FILE)", () => {
  let server: PrivateRedis;

  beforeAll(async () => {
    server = await startPrivateRedis({
      tls: { certFile: pki.certFile, keyFile: pki.keyFile, caFile: pki.caFile },
    });
  });

  afterAll(async () => {
    await server?.destroy();
  });

  it("evaluates over TLS with the CA given, and a client trusting another CA is refused", async () => {
    expect(server.url.startsWith("rediss://127.0.0.1:")).toBe(true);
    const client = evaluatorClient({ valkeyUrl: server.url, tlsCaFile: pki.caFile }) as Redis;
    try {
      await ready(client);
      const { summary } = await runAndCheck(
        {
          db: db.pool,
          dbUrl: db.url,
          valkey: client,
          tenants: 2,
          shards: [0],
          intervalMs: I,
          budgetMs: 5_000,
        },
        [ingest(0, 80), { kind: "slot" }, ingest(1, 60), { kind: "advance", ms: I }, { kind: "slot" }],
      );
      expect(summary.evaluations.committed).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }

    const wrong = evaluatorClient({ valkeyUrl: server.url, tlsCaFile: pki.otherCaFile }) as Redis;
    const errors: string[] = [];
    wrong.on("error", (err: Error) => errors.push(err.message));
    try {
      await eventually(async () => errors.length > 0, 10_000, "a TLS error");
      expect(errors[0]).toMatch(/certificate|self.signed|unable to verify/i);
      await expect(wrong.ping()).rejects.toThrow();
    } finally {
      wrong.disconnect();
    }
    // Without TLS_CA_FILE the system's CAs are trusted, which did not sign this server.
    const system = evaluatorClient({ valkeyUrl: server.url }) as Redis;
    const systemErrors: string[] = [];
    system.on("error", (err: Error) => systemErrors.push(err.message));
    try {
      await eventually(async () => systemErrors.length > 0, 10_000, "a TLS error");
    } finally {
      system.disconnect();
    }
    // A plain-text client gets nowhere on a TLS port.
    const plain = evaluatorClient({ valkeyUrl: server.url.replace("rediss:", "redis:") }) as Redis;
    try {
      await expect(plain.ping()).rejects.toThrow();
    } finally {
      plain.disconnect();
    }
  }, 60_000);

  describe("an evaluator process", () => {
    const fx = useEvaluatorFixture("valkey_tls_process");

    it("with VALKEY_URL rediss:// and TLS_CA_FILE alerts; with a CA file it cannot read it exits 2 naming it", async () => {
      const tenants = await fx.tenants(2, {
        rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 50 }],
      });
      await fx.reading(tenants, 75);
      fx.start({ VALKEY_URL: server.url, TLS_CA_FILE: pki.caFile, TICK_INTERVAL_SECONDS: "1" });
      await eventually(
        async () => (await fx.openAlerts(tenants)) === 2,
        30_000,
        "an open alert of every tenant",
      );
      const tls = evaluatorClient({ valkeyUrl: server.url, tlsCaFile: pki.caFile }) as Redis;
      try {
        await ready(tls);
        for (const t of tenants) await deleteTenantKeys(tls, t);
      } finally {
        tls.disconnect();
      }

      const bad = fx.start({ VALKEY_URL: server.url, TLS_CA_FILE: `${pki.dir}/missing.pem` });
      const status = await bad.exited;
      expect(status.code).toBe(2);
      expect(bad.stderrText()).toMatch(/TLS_CA_FILE.*missing\.pem/);
    }, 60_000);
  });
});
