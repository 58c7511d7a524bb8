import pg from "pg";
import { PgTlsError, pgConnectionConfig } from "../../../runtime/pgTls.ts";
import { isPostgresOutage } from "../../../runtime/postgresOutage.ts";
import { DatabaseUnavailableError } from "../api/errors.ts";
import { DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";
import type { SecretReader } from "../kube/secretReader.ts";
import type { Logger } from "../log.ts";
import { createPgTenantAssignments } from "./pgTenantAssignments.ts";
import type { TenantAssignments } from "./tenantAssignments.ts";

/** What {@link createAssignmentsResolver} returns. */
export interface AssignmentsResolver {
  /** The set's tenant assignments, on the pool of the connection string its Secret holds now. */
  forSet(set: EvaluatorShardSet): Promise<TenantAssignments>;
  /** The set (`namespace/name`) is gone: its pool is closed unless another set still uses it. */
  release(key: string): Promise<void>;
  /** Closes every pool (shutdown). */
  close(): Promise<void>;
}

/**
 * Finds each set's database through the Secret named in spec.database.secretRef and keeps one
 * small pool per connection string (sets often share one database). A pool lives as long as a set
 * uses it: when a set's Secret rotates to another connection string, or the set is deleted, a pool
 * no set uses any more is closed at once (otherwise every rotation would leak a pool, and its
 * connections would keep the old credentials in use). Errors reaching the Secret or the database
 * surface as DatabaseUnavailableError: the reconcile reports Degraded and retries.
 *
 * TLS follows each connection string's `sslmode` (runtime/pgTls.ts), with `caFile` (the operator's
 * `TLS_CA_FILE`) as the CA when the URL names none; the file is read when a pool is created. A
 * connection string whose TLS settings cannot be honoured (an unknown sslmode, verify-full without
 * a CA) is reported as DatabaseUnavailableError naming the Secret, never showing the URL.
 */
export function createAssignmentsResolver(deps: {
  kube: SecretReader;
  log: Logger;
  /** `TLS_CA_FILE`: the CA bundle trusted for PostgreSQL over TLS. */
  caFile?: string | undefined;
}): AssignmentsResolver {
  const pools = new Map<string, pg.Pool>();
  /** The connection string each set (`namespace/name`) used last. */
  const urlOfSet = new Map<string, string>();
  /** Pools being closed, awaited by close(). */
  const closing = new Set<Promise<void>>();

  function poolFor(url: string, secret: string): pg.Pool {
    let pool = pools.get(url);
    if (!pool) {
      let connection: ReturnType<typeof pgConnectionConfig>;
      try {
        connection = pgConnectionConfig(url, { caFile: deps.caFile, setting: `database Secret ${secret}` });
      } catch (err) {
        throw err instanceof PgTlsError ? new DatabaseUnavailableError(err.message) : err;
      }
      pool = new pg.Pool({
        ...connection,
        max: 4,
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 30_000,
      });
      pool.on("error", (err) => deps.log.warn({ err: String(err) }, "PostgreSQL client error"));
      pools.set(url, pool);
    }
    return pool;
  }

  /**
   * Closes the pool of `url` when no set uses it. Reconciles of one set never overlap (the queue
   * runs one per key), so a set that moved to another URL has no query left on its old pool; a set
   * still using it keeps it open.
   */
  function closeIfUnused(url: string, key: string): void {
    for (const used of urlOfSet.values()) if (used === url) return;
    const pool = pools.get(url);
    if (!pool) return;
    pools.delete(url);
    // Never the URL in a log: it may carry a password.
    deps.log.info({ shardset: key, pools: pools.size }, "Closing a PostgreSQL pool no set uses any more");
    const ended: Promise<void> = pool
      .end()
      .catch((err: unknown) => deps.log.warn({ err: String(err) }, "Closing a PostgreSQL pool failed"))
      .finally(() => closing.delete(ended));
    closing.add(ended);
  }

  return {
    async forSet(set: EvaluatorShardSet): Promise<TenantAssignments> {
      const ref = set.spec.database.secretRef;
      const key = `${set.metadata.namespace}/${set.metadata.name}`;
      let url: string;
      try {
        url = await deps.kube.readSecretKey(set.metadata.namespace, ref.name, ref.key ?? DEFAULTS.secretKey);
      } catch (err) {
        throw new DatabaseUnavailableError(
          `cannot read the database Secret ${ref.name}: ${(err as Error).message ?? String(err)}`,
        );
      }
      const previous = urlOfSet.get(key);
      urlOfSet.set(key, url);
      // The Secret rotated (or the set points at another one): the old pool may be unused now.
      if (previous !== undefined && previous !== url) closeIfUnused(previous, key);
      const inner = createPgTenantAssignments(poolFor(url, ref.name), key);
      const wrap =
        <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
        async (...a: A): Promise<R> => {
          try {
            return await fn(...a);
          } catch (err) {
            throw isPostgresOutage(err)
              ? new DatabaseUnavailableError(`database unreachable: ${(err as Error).message}`)
              : err;
          }
        };
      return { read: wrap(inner.read), commit: wrap(inner.commit), assignNew: wrap(() => inner.assignNew()) };
    },
    async release(key: string): Promise<void> {
      const url = urlOfSet.get(key);
      if (url === undefined) return;
      urlOfSet.delete(key);
      closeIfUnused(url, key);
    },
    async close(): Promise<void> {
      const all = [...pools.values()];
      pools.clear();
      urlOfSet.clear();
      await Promise.all([...all.map((p) => p.end()), ...closing]);
    },
  };
}
