/**
 * The private PostgreSQL and Redis servers that outage tests stop and restart: they answer, an
 * outage is a real outage (connections fail), they come back on the same port, and `destroy`
 * leaves no process and no folder behind. The shared servers are never touched.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import {
  isProcessAlive,
  type PrivatePostgres,
  type PrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
} from "../support/privateServices.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

const alive = isProcessAlive;
/** ioredis reports a refused connection either way, depending on when it gives up. */
const REDIS_DOWN = /ECONNREFUSED|Connection is closed/;

async function pgQuery(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => {
    // A server stopped under an open client; the query below reports it.
  });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>("SELECT 41 + 1 AS n");
    return rows[0]!.n;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisPing(url: string): Promise<string> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => {
    // Reported by connect/ping below.
  });
  try {
    await client.connect();
    return await client.ping();
  } finally {
    client.disconnect();
  }
}

describe("private services for outage tests", () => {
  it("PostgreSQL: answers, stops, restarts on the same port, and leaves nothing behind", async () => {
    const server: PrivatePostgres = await startPrivatePostgres();
    cleanups.push(server.destroy);
    expect(server.port).not.toBe(5432);
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/postgres`);
    expect(await pgQuery(server.url)).toBe(42);
    const pid = server.pid();
    expect(pid).toBeGreaterThan(0);

    await server.stop();
    expect(server.pid()).toBeUndefined();
    expect(alive(pid!)).toBe(false);
    await expect(pgQuery(server.url)).rejects.toThrow(/ECONNREFUSED/);

    await server.start();
    expect(await pgQuery(server.url)).toBe(42);

    // A crash (no checkpoint) recovers on the next start too.
    await server.stop({ mode: "immediate" });
    await expect(pgQuery(server.url)).rejects.toThrow(/ECONNREFUSED/);
    await server.start();
    expect(await pgQuery(server.url)).toBe(42);

    const lastPid = server.pid()!;
    await server.destroy();
    expect(alive(lastPid)).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    await expect(pgQuery(server.url)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("two PostgreSQL instances are independent", async () => {
    const [a, b] = await Promise.all([startPrivatePostgres(), startPrivatePostgres()]);
    cleanups.push(a.destroy, b.destroy);
    expect(a.port).not.toBe(b.port);
    await a.stop();
    expect(await pgQuery(b.url)).toBe(42);
    await expect(pgQuery(a.url)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("Redis: answers, stops, is killed, restarts on the same port, and leaves nothing behind", async () => {
    const server: PrivateRedis = await startPrivateRedis();
    cleanups.push(server.destroy);
    expect(server.port).not.toBe(6379);
    expect(await redisPing(server.url)).toBe("PONG");
    const firstPid = server.pid()!;

    await server.stop();
    expect(server.pid()).toBeUndefined();
    expect(alive(firstPid)).toBe(false);
    await expect(redisPing(server.url)).rejects.toThrow(REDIS_DOWN);

    await server.start();
    expect(await redisPing(server.url)).toBe("PONG");

    const secondPid = server.pid()!;
    expect(secondPid).not.toBe(firstPid);
    await server.kill();
    expect(alive(secondPid)).toBe(false);
    await expect(redisPing(server.url)).rejects.toThrow(REDIS_DOWN);

    await server.start();
    expect(await redisPing(server.url)).toBe("PONG");
    const lastPid = server.pid()!;

    await server.destroy();
    expect(alive(lastPid)).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    await expect(redisPing(server.url)).rejects.toThrow(REDIS_DOWN);
  });

  it("Redis keeps nothing across a restart (no persistence)", async () => {
    const server = await startPrivateRedis();
    cleanups.push(server.destroy);
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on("error", () => {
      // The restart below drops the connection; ioredis reconnects.
    });
    try {
      await client.set("k", "v");
      expect(await client.get("k")).toBe("v");
      await server.stop();
      await server.start();
      expect(await client.get("k")).toBeNull();
    } finally {
      client.disconnect();
    }
  });

  it("a test process that dies without destroy leaves nothing behind after the next start", async () => {
    // A separate Node process starts one of each, reports them, and is killed before it can clean up.
    const moduleUrl = new URL("../support/privateServices.ts", import.meta.url).href;
    const script = `
      const m = await import(${JSON.stringify(moduleUrl)});
      const [r, p] = await Promise.all([m.startPrivateRedis(), m.startPrivatePostgres()]);
      console.log(JSON.stringify({ redis: { pid: r.pid(), dir: r.dir }, pg: { pid: p.pid(), dir: p.dir } }));
    `;
    const doomed = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    doomed.stdout.on("data", (d) => {
      out += String(d);
    });
    await once(doomed.stdout, "data");
    const left = JSON.parse(out) as { redis: { pid: number; dir: string }; pg: { pid: number; dir: string } };
    doomed.kill("SIGKILL");
    await once(doomed, "exit");
    expect(alive(left.redis.pid)).toBe(true);
    expect(alive(left.pg.pid)).toBe(true);

    const [redis, db] = await Promise.all([startPrivateRedis(), startPrivatePostgres()]);
    cleanups.push(redis.destroy, db.destroy);
    expect(alive(left.redis.pid)).toBe(false);
    expect(existsSync(left.redis.dir)).toBe(false);
    expect(alive(left.pg.pid)).toBe(false);
    expect(existsSync(left.pg.dir)).toBe(false);
  });
});
