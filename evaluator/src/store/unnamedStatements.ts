import type { Queryable, Statement } from "./pgStore.ts";

/** What {@link withoutStatementNames} sends through: `pg.Pool#query` with a query config fits. */
export interface UnnamedQueryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(config: {
    readonly text: string;
    readonly values: unknown[];
  }): Promise<{ rows: R[] }>;
}

/**
 * The store's statements without their names: each is sent as PostgreSQL's unnamed statement
 * (parsed and planned on every execution, in the same round trip) instead of being prepared once
 * per connection under its name.
 *
 * For connections pooled per transaction or per statement (PgBouncer `pool_mode = transaction` or
 * `statement`): there, a client's next statement may run on another server connection, where a
 * statement its client prepared before does not exist (or one of another client's does, under the
 * same name), and the call fails. The unnamed statement lives only within its own round trip, so it
 * never crosses server connections.
 */
export function withoutStatementNames(db: UnnamedQueryable): Queryable {
  return {
    query: <R extends Record<string, unknown>>(statement: Statement) =>
      db.query<R>({ text: statement.text, values: statement.values }),
  };
}
