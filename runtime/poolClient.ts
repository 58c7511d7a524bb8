import type pg from "pg";

/**
 * Runs `fn` on one client checked out of `pool`, and gives it back.
 *
 * A checked-out client has no 'error' listener of its own (the pool removes its idle one while the
 * client is out), and a connection lost while it is out (a restart, a terminated backend, a pooler
 * that drops it) emits 'error' even when a query is pending: without a listener the process
 * crashes. The pending query rejects as well, and that is what the caller sees.
 *
 * The client is destroyed instead of reused when its connection failed or when `fn` threw (its
 * transaction may have been left open, say when the ROLLBACK itself failed).
 */
export async function withPoolClient<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken ??= err;
  };
  client.on("error", onError);
  try {
    return await fn(client);
  } catch (err) {
    broken ??= err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.removeListener("error", onError);
    client.release(broken);
  }
}
