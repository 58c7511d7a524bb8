/**
 * A connection lost while its client is checked out of a pool (the server restarted, the backend
 * was terminated) emits 'error' on that client even while a query is pending, and the pool keeps
 * no listener on a client it has handed out: without one of its own the process crashes. Every
 * checked-out client of the operator (tenant moves, the relay's outbox reads) goes through
 * `withPoolClient`, which listens, lets the pending query reject, and destroys the client.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withPoolClient } from "../../runtime/poolClient.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";

let db: TestDatabase;
let admin: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase("poolclient");
  admin = new pg.Pool({ connectionString: db.url, max: 1 });
});
afterAll(async () => {
  await admin.end();
  await db.drop();
});

/** Terminates the server process `pid` from another connection. */
async function terminate(pid: number): Promise<void> {
  const { rows } = await admin.query<{ done: boolean }>("SELECT pg_terminate_backend($1) AS done", [pid]);
  expect(rows[0]?.done).toBe(true);
}

describe("withPoolClient", () => {
  it("a pool hands out a client with no 'error' listener (the hazard)", async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const client = await pool.connect();
      expect(client.listenerCount("error")).toBe(0);
      client.release();
    } finally {
      await pool.end();
    }
  });

  it("a backend terminated mid-query rejects the query, crashes nothing, and the client is not reused", async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on("error", () => undefined);
    try {
      let pid = 0;
      const running = withPoolClient(pool, async (client) => {
        pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        await client.query("BEGIN");
        await client.query("SELECT pg_sleep(30)");
      });
      const outcome = running.then(
        () => "resolved",
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      while (pid === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await terminate(pid);
      expect(await outcome).toMatch(/terminat/i);
      // Let the socket's close reach the client: an 'error' with no listener is an unhandled
      // error, which fails the run.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(pool.totalCount).toBe(0);
      const next = await withPoolClient(pool, async (client) =>
        Number((await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid),
      );
      expect(next).not.toBe(pid);
    } finally {
      await pool.end();
    }
  });

  it("a backend terminated between two statements fails the next one; the client is destroyed", async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on("error", () => undefined);
    try {
      const outcome = await withPoolClient(pool, async (client) => {
        const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        await terminate(pid);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await client.query("SELECT 1");
        return "resolved";
      }).catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
      expect(outcome).not.toBe("resolved");
      expect(pool.totalCount).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it("a healthy client goes back to the pool and is reused; a throwing fn gets its own error back", async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const pidOf = (client: pg.PoolClient) =>
        client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid").then((r) => r.rows[0]!.pid);
      const first = await withPoolClient(pool, pidOf);
      expect(await withPoolClient(pool, pidOf)).toBe(first);
      const failure = new Error("refused by the caller");
      await expect(withPoolClient(pool, async () => Promise.reject(failure))).rejects.toBe(failure);
      expect(await withPoolClient(pool, pidOf)).not.toBe(first);
    } finally {
      await pool.end();
    }
  });
});
