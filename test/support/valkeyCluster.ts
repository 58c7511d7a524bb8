/**
 * A private Valkey/Redis Cluster for tests: three primaries and three replicas (redis-server in
 * cluster mode on free loopback ports, each a {@link startPrivateRedis} instance), created with
 * `redis-cli --cluster create`, plus the topology changes a test plays during evaluation: a slot
 * migration (begun, with part of the slot's keys moved, and finished later, as `redis-cli --cluster
 * reshard` does it step by step) and a primary failover (graceful, or a takeover that does not wait
 * for the replica to catch up).
 *
 * ```ts
 * const cluster = await startValkeyCluster();
 * try {
 *   await cluster.beginMigration(slotOfKey("tstate:{t1}"));
 *   // … evaluate: calls on that slot get ASK / TRYAGAIN …
 *   await cluster.finishMigrations();
 *   await cluster.failover(slotOfKey("tstate:{t1}"));
 * } finally {
 *   await cluster.destroy();
 * }
 * ```
 */
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { freePort } from "./ports.ts";
import { type PrivateRedis, startPrivateRedis, waitFor } from "./privateServices.ts";

const run = promisify(execFile);

/** One node of the cluster as CLUSTER NODES tells it. */
export interface ClusterNode {
  readonly id: string;
  readonly port: number;
  readonly primary: boolean;
  /** The primary's id, for a replica. */
  readonly primaryId: string | null;
  /** Slot ranges served (primaries), `[from, to]` inclusive. */
  readonly slots: readonly (readonly [number, number])[];
}

export interface PrivateValkeyCluster {
  /** Every node's URL, comma-separated: VALKEY_URL for VALKEY_MODE=cluster. */
  readonly url: string;
  readonly servers: readonly PrivateRedis[];
  /** The nodes as the cluster sees them now. */
  nodes(): Promise<ClusterNode[]>;
  /** The primary serving `slot`. */
  primaryOf(slot: number): Promise<ClusterNode>;
  /**
   * Starts moving `slot` from its primary to another primary and moves `fraction` of its keys
   * (at least one when there are any, never all): the slot is MIGRATING on the source and
   * IMPORTING on the target until {@link finishMigrations}.
   */
  beginMigration(slot: number, fraction?: number): Promise<void>;
  /** Moves the rest of every begun migration's keys and gives each slot to its target. */
  finishMigrations(): Promise<void>;
  /**
   * Promotes the replica of `slot`'s primary. `takeover`: CLUSTER FAILOVER TAKEOVER (no agreement,
   * no catching up: writes not replicated yet are lost), else a graceful CLUSTER FAILOVER (the
   * replica catches up first).
   */
  failover(slot: number, options?: { takeover?: boolean }): Promise<void>;
  /** Waits until every node reports cluster_state:ok and agrees on who serves every slot. */
  waitHealthy(): Promise<void>;
  /** Deletes every key of every primary (FLUSHALL), e.g. between runs. */
  flushAll(): Promise<void>;
  destroy(): Promise<void>;
}

/** A free port whose cluster bus port (+10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 > 65_535) continue;
    const busFree = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port + 10_000, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (busFree) return port;
  }
}

/** Parses CLUSTER NODES. */
export function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [id, address, flags, primaryId, , , , , ...slots] = line.split(" ");
      const port = Number(/:(\d+)@/.exec(address ?? "")?.[1]);
      return {
        id: id!,
        port,
        primary: (flags ?? "").split(",").includes("master"),
        primaryId: primaryId === "-" ? null : (primaryId ?? null),
        slots: slots
          .filter((s) => !s.startsWith("["))
          .map((s) => {
            const [from, to = from] = s.split("-").map(Number);
            return [from!, to!] as const;
          }),
      };
    });
}

/**
 * Starts six cluster-mode servers (node timeout 1 s, so a takeover or a dead primary is noticed
 * quickly) and joins them: three primaries with 5461/5461/5462 slots, one replica each.
 */
export async function startValkeyCluster(): Promise<PrivateValkeyCluster> {
  const servers: PrivateRedis[] = [];
  const admins = new Map<number, Redis>();
  const admin = (port: number): Redis => {
    let client = admins.get(port);
    if (!client) {
      client = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: false });
      client.on("error", () => {
        // A node being failed over or killed: the command that needed it reports it.
      });
      admins.set(port, client);
    }
    return client;
  };
  const destroy = async () => {
    for (const c of admins.values()) c.disconnect();
    admins.clear();
    await Promise.all(servers.map((s) => s.destroy()));
  };
  try {
    for (let i = 0; i < 6; i++) {
      const port = await clusterPort();
      servers.push(
        await startPrivateRedis({
          port,
          args: [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            // A replica may be promoted however long it was cut off (tests take primaries away).
            "--cluster-replica-validity-factor",
            "0",
          ],
        }),
      );
    }
    await run(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...servers.map((s) => `127.0.0.1:${s.port}`),
        "--cluster-replicas",
        "1",
        "--cluster-yes",
      ],
      { timeout: 30_000 },
    );
  } catch (err) {
    await destroy();
    throw err;
  }

  const ports = servers.map((s) => s.port);
  const nodes = async (): Promise<ClusterNode[]> => {
    // Any node that answers: one may be down.
    for (const port of ports) {
      try {
        return parseClusterNodes(String(await admin(port).call("CLUSTER", "NODES")));
      } catch {
        // The next one.
      }
    }
    throw new Error("no cluster node answers CLUSTER NODES");
  };
  const primaryOf = async (slot: number): Promise<ClusterNode> => {
    const found = (await nodes()).find((n) => n.primary && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!found) throw new Error(`no primary serves slot ${slot}`);
    return found;
  };
  const waitHealthy = () =>
    waitFor(
      async () => {
        const views: string[] = [];
        for (const port of ports) {
          try {
            const info = String(await admin(port).call("CLUSTER", "INFO"));
            if (!info.includes("cluster_state:ok")) return false;
            const mine = parseClusterNodes(String(await admin(port).call("CLUSTER", "NODES")));
            const owners = mine
              .filter((n) => n.primary && n.slots.length > 0)
              .map((n) => `${n.port}:${JSON.stringify(n.slots)}`)
              .sort()
              .join(" ");
            views.push(owners);
          } catch {
            return false;
          }
        }
        const all = await nodes();
        const served = all.filter((n) => n.primary).flatMap((n) => n.slots);
        const count = served.reduce((sum, [a, b]) => sum + b - a + 1, 0);
        // Every node sees the same owners, every slot is served, and every primary has its replica.
        const replicated = all
          .filter((n) => n.primary && n.slots.length > 0)
          .every((p) => all.some((r) => r.primaryId === p.id));
        return count === 16_384 && new Set(views).size === 1 && replicated;
      },
      { timeoutMs: 30_000, what: "the cluster to be healthy" },
    );

  const migrations: { slot: number; source: ClusterNode; target: ClusterNode }[] = [];
  const moveKeys = async (slot: number, source: ClusterNode, target: ClusterNode, limit: number) => {
    let moved = 0;
    while (moved < limit) {
      const keys = (await admin(source.port).call(
        "CLUSTER",
        "GETKEYSINSLOT",
        slot,
        Math.min(100, limit - moved),
      )) as string[] | null;
      if (!keys || keys.length === 0) return;
      await admin(source.port).call(
        "MIGRATE",
        "127.0.0.1",
        target.port,
        "",
        0,
        5000,
        "REPLACE",
        "KEYS",
        ...keys,
      );
      moved += keys.length;
    }
  };

  await waitHealthy();
  return {
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(","),
    servers,
    nodes,
    primaryOf,
    async beginMigration(slot, fraction = 0.5) {
      const source = await primaryOf(slot);
      const target = (await nodes()).find((n) => n.primary && n.id !== source.id && n.slots.length > 0);
      if (!target) throw new Error("no other primary to migrate to");
      await admin(target.port).call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id);
      await admin(source.port).call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id);
      migrations.push({ slot, source, target });
      const total = Number(await admin(source.port).call("CLUSTER", "COUNTKEYSINSLOT", slot));
      if (total > 1)
        await moveKeys(slot, source, target, Math.min(total - 1, Math.max(1, Math.floor(total * fraction))));
    },
    async finishMigrations() {
      for (const { slot, source, target } of migrations.splice(0)) {
        await moveKeys(slot, source, target, Number.POSITIVE_INFINITY);
        // Target first (then the source stops redirecting), then every other primary, as redis-cli does.
        await admin(target.port).call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
        await admin(source.port).call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
        for (const n of await nodes()) {
          if (n.primary && n.id !== source.id && n.id !== target.id) {
            await admin(n.port)
              .call("CLUSTER", "SETSLOT", slot, "NODE", target.id)
              .catch(() => undefined);
          }
        }
      }
      await waitHealthy();
    },
    async failover(slot, { takeover = false } = {}) {
      const primary = await primaryOf(slot);
      const replica = (await nodes()).find((n) => n.primaryId === primary.id);
      if (!replica) throw new Error(`primary ${primary.port} has no replica`);
      // A graceful failover needs the replica's link up and caught up (a primary demoted a moment
      // ago may still be syncing); Valkey gives up on one that cannot catch up in time without a
      // word, so it is asked again, and forced after a few tries.
      await waitFor(
        async () => String(await admin(replica.port).info("replication")).includes("master_link_status:up"),
        { timeoutMs: 20_000, what: `replica ${replica.port} to be in sync` },
      );
      const tookOver = async () => (await primaryOf(slot)).id === replica.id;
      const modes = takeover ? [["TAKEOVER"]] : [[], [], ["FORCE"]];
      for (const mode of modes) {
        await admin(replica.port).call("CLUSTER", "FAILOVER", ...mode);
        try {
          await waitFor(tookOver, {
            timeoutMs: 8_000,
            what: `replica ${replica.port} to take over slot ${slot}`,
          });
          break;
        } catch (err) {
          if (mode === modes.at(-1)) throw err;
        }
      }
      await waitHealthy();
    },
    waitHealthy,
    async flushAll() {
      for (const n of await nodes()) if (n.primary) await admin(n.port).flushall();
    },
    destroy,
  };
}
