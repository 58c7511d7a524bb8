import { randomBytes } from "node:crypto";
import pg from "pg";

/** The shared PostgreSQL server the suites run against (trust auth on loopback by default). */
export const ADMIN_DATABASE_URL = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";

export interface TestDatabase {
  /** Connection string of the throwaway database. */
  readonly url: string;
  readonly name: string;
  /** A pool on the throwaway database (closed by `drop`). */
  readonly pool: pg.Pool;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Creates a database of its own for one test (isolates tables, advisory locks and NOTIFY channels),
 * so test files run in parallel and twice in a row.
 */
export async function createTestDatabase(label = "t"): Promise<TestDatabase> {
  const name = `eo_${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(ADMIN_DATABASE_URL, name);
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  pool.on("error", () => {
    // Idle clients die when the database is dropped at the end of the test.
  });
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
