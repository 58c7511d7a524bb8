import pg from "pg";
import { isPostgresOutage } from "../../../runtime/postgresOutage.ts";
import { DatabaseUnavailableError } from "../api/errors.ts";
import { DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";
import type { SecretReader } from "../kube/secretReader.ts";
import type { Logger } from "../log.ts";
import { createPgTenantAssignments } from "./pgTenantAssignments.ts";
import type { TenantAssignments } from "./tenantAssignments.ts";

/**
 * Finds each set's database through the Secret named in spec.database.secretRef and keeps one
 * small pool per connection string (sets often share one database). Errors reaching the Secret or
 * the database surface as DatabaseUnavailableError: the reconcile reports Degraded and retries.
 */
export function createAssignmentsResolver(deps: { kube: SecretReader; log: Logger }) {
  const pools = new Map<string, pg.Pool>();

  function poolFor(url: string): pg.Pool {
    let pool = pools.get(url);
    if (!pool) {
      pool = new pg.Pool({
        connectionString: url,
        max: 4,
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 30_000,
      });
      pool.on("error", (err) => deps.log.warn({ err: String(err) }, "PostgreSQL client error"));
      pools.set(url, pool);
    }
    return pool;
  }

  return {
    async forSet(set: EvaluatorShardSet): Promise<TenantAssignments> {
      const ref = set.spec.database.secretRef;
      let url: string;
      try {
        url = await deps.kube.readSecretKey(set.metadata.namespace, ref.name, ref.key ?? DEFAULTS.secretKey);
      } catch (err) {
        throw new DatabaseUnavailableError(
          `cannot read the database Secret ${ref.name}: ${(err as Error).message ?? String(err)}`,
        );
      }
      const inner = createPgTenantAssignments(poolFor(url), `${set.metadata.namespace}/${set.metadata.name}`);
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
    async close(): Promise<void> {
      await Promise.all([...pools.values()].map((p) => p.end()));
      pools.clear();
    },
  };
}
