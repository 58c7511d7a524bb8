import { randomUUID } from "node:crypto";
import { type Cluster, Redis } from "ioredis";
import { tenantKeysPattern } from "../../evaluator/src/state/keys.ts";

/** The shared Valkey/Redis server the suites run against. */
export const VALKEY_URL = process.env["VALKEY_URL"] ?? "redis://127.0.0.1:6379/0";

/** A client on the shared server. Tests isolate themselves by unique tenant ids (see `uniqueTenantId`). */
export function connectValkey(url = VALKEY_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
  client.on("error", () => {
    // Reported by the failing command; the listener keeps an outage from crashing the test run.
  });
  return client;
}

/** A tenant id no other test uses, so Valkey keys (hash-tagged by tenant) never collide. */
export function uniqueTenantId(): string {
  return randomUUID();
}

/** Entries of a stored window buffer (`ts:value,ts:value,…`; 0 when there is none). */
export async function windowBufferLength(client: Redis, key: string): Promise<number> {
  const stored = await client.get(key);
  return stored ? stored.split(",").length : 0;
}

/**
 * Deletes every Valkey key of one tenant (its keys share the tenant's hash tag): on one server, or
 * on every primary of a Cluster (SCAN is per node).
 */
export async function deleteTenantKeys(client: Redis | Cluster, tenantId: string): Promise<void> {
  const servers = client instanceof Redis ? [client] : client.nodes("master");
  for (const server of servers) {
    let cursor = "0";
    do {
      const [next, keys] = await server.scan(cursor, "MATCH", tenantKeysPattern(tenantId), "COUNT", 1000);
      // One DEL per key: on a Cluster the node may have given the slot away meanwhile.
      for (const key of keys) await client.del(key);
      cursor = next;
    } while (cursor !== "0");
  }
}
