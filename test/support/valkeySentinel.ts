/**
 * A private Valkey/Redis primary with one replica, watched by two sentinels (redis-server in
 * sentinel mode), on free loopback ports: VALKEY_MODE=sentinel's test bed. `failover()` asks a
 * sentinel for a forced failover (SENTINEL FAILOVER) and waits until every sentinel names the
 * promoted replica.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./ports.ts";
import {
  findOnPath,
  makeInstanceDir,
  type PrivateRedis,
  readTail,
  startPrivateRedis,
  superviseProcess,
  waitFor,
} from "./privateServices.ts";

/** The name the sentinels know the primary by. */
export const SENTINEL_MASTER = "main";

export interface PrivateSentinelSet {
  /** The sentinels' URLs, comma-separated: VALKEY_URL for VALKEY_MODE=sentinel. */
  readonly url: string;
  /** The two data servers (the primary first, at start). */
  readonly servers: readonly PrivateRedis[];
  /** The port of the primary the sentinels name now. */
  primaryPort(): Promise<number>;
  /** A forced failover; resolves once every sentinel names another primary and it answers as one. */
  failover(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startSentinelSet(): Promise<PrivateSentinelSet> {
  const servers: PrivateRedis[] = [];
  const sentinels: { port: number; destroy: () => Promise<void> }[] = [];
  const clients: Redis[] = [];
  const destroy = async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(sentinels.map((s) => s.destroy()));
    await Promise.all(servers.map((s) => s.destroy()));
  };
  try {
    const primary = await startPrivateRedis();
    servers.push(primary);
    servers.push(await startPrivateRedis({ args: ["--replicaof", "127.0.0.1", String(primary.port)] }));
    const bin = findOnPath("redis-server") ?? findOnPath("valkey-server");
    if (!bin) throw new Error("redis-server is not on PATH");
    for (let i = 0; i < 2; i++) {
      const dir = await makeInstanceDir("redis");
      const port = await freePort();
      const conf = join(dir, "sentinel.conf");
      // Sentinel rewrites its file (it must be writable); quorum 1, quick detection.
      await writeFile(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `pidfile ${join(dir, "redis.pid")}`,
          `logfile ${join(dir, "redis.log")}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary.port} 1`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          "",
        ].join("\n"),
      );
      const admin = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 1 });
      admin.on("error", () => {
        // Not up yet, or stopped: the probe below retries.
      });
      clients.push(admin);
      const server = await superviseProcess({
        what: `sentinel on port ${port}`,
        dir,
        spawnServer: () => spawn(bin, [conf, "--sentinel"], { stdio: "ignore" }),
        ready: async () => {
          try {
            if (admin.status === "wait" || admin.status === "end") await admin.connect();
            return (await admin.call("SENTINEL", "MASTERS")) !== null;
          } catch {
            return false;
          }
        },
        logTail: () => readTail(join(dir, "redis.log")),
      });
      sentinels.push({ port, destroy: server.destroy });
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  const named = async (client: Redis): Promise<number> => {
    const reply = (await client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER)) as string[];
    return Number(reply[1]);
  };
  const primaryPort = () => named(clients[0]!);
  // The replica is in sync and known to the sentinels before a test starts.
  await waitFor(
    async () => {
      try {
        const replicas = (await clients[0]!.call("SENTINEL", "REPLICAS", SENTINEL_MASTER)) as unknown[];
        return replicas.length === 1;
      } catch {
        return false;
      }
    },
    { timeoutMs: 20_000, what: "the sentinels to know the replica" },
  );
  return {
    url: sentinels.map((s) => `redis://127.0.0.1:${s.port}`).join(","),
    servers,
    primaryPort,
    async failover() {
      const before = await primaryPort();
      await clients[0]!.call("SENTINEL", "FAILOVER", SENTINEL_MASTER);
      await waitFor(
        async () => {
          try {
            for (const c of clients) if ((await named(c)) === before) return false;
            const promoted = servers.find((s) => s.port !== before)!;
            const probe = new Redis({ host: "127.0.0.1", port: promoted.port, maxRetriesPerRequest: 1 });
            try {
              const role = (await probe.call("ROLE")) as unknown[];
              return role[0] === "master";
            } finally {
              probe.disconnect();
            }
          } catch {
            return false;
          }
        },
        { timeoutMs: 30_000, what: "the sentinels to promote the replica" },
      );
    },
    destroy,
  };
}
