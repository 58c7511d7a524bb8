/**
 * The operator keeps one PostgreSQL pool per connection string its sets' Secrets hold. A pool no
 * set uses any more — the Secret rotated to another string, or the set was deleted — is closed at
 * once: its connections leave the server (pg_stat_activity), while a pool another set still uses
 * stays, connections and all.
 */
import { randomBytes } from "node:crypto";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EvaluatorShardSet } from "../../operator/src/api/types.ts";
import {
  type AssignmentsResolver,
  createAssignmentsResolver,
} from "../../operator/src/assignments/assignmentsResolver.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { eventually } from "../support/cluster.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";

let db: TestDatabase;
let resolver: AssignmentsResolver;
/** The Secrets the resolver reads: `namespace/name/key` → connection string. */
const secrets = new Map<string, string>();

beforeEach(async () => {
  db = await createTestDatabase("pools");
  await migrateUp({ db: db.pool });
  secrets.clear();
  resolver = createAssignmentsResolver({
    kube: {
      async readSecretKey(namespace, name, key) {
        const value = secrets.get(`${namespace}/${name}/${key}`);
        if (value === undefined) throw new Error(`Secret ${namespace}/${name} not found`);
        return value;
      },
    },
    log: pino({ level: "silent" }),
  });
});
afterEach(async () => {
  await resolver.close();
  await db.drop();
});

function shardSet(name: string, secret: string): EvaluatorShardSet {
  return {
    apiVersion: "evaluator.iot.dev/v1alpha1",
    kind: "EvaluatorShardSet",
    metadata: { namespace: "iot", name, uid: name },
    spec: { evaluator: {}, database: { secretRef: { name: secret } } },
  } as unknown as EvaluatorShardSet;
}

/** A connection string of the test database that the server shows as `application_name` = tag. */
function urlTagged(tag: string): string {
  return `${db.url}?application_name=${tag}`;
}

/** Backend pids of the connections opened with that tag, sorted. */
async function backends(tag: string): Promise<number[]> {
  const { rows } = await db.pool.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
    [tag],
  );
  return rows.map((r) => r.pid);
}

async function closed(tag: string): Promise<void> {
  await eventually(async () => ((await backends(tag)).length === 0 ? true : undefined), {
    timeoutMs: 10_000,
    what: `the connections of ${tag} to close`,
  });
}

describe("the assignments resolver's pools", () => {
  it("closes a pool when the Secret rotates away from it or the set is deleted, never one still in use", async () => {
    const old = `eo_old_${randomBytes(4).toString("hex")}`;
    const rotated = `eo_new_${randomBytes(4).toString("hex")}`;
    const a = shardSet("a", "db-a");
    const b = shardSet("b", "db-b");
    secrets.set("iot/db-a/url", urlTagged(old));
    secrets.set("iot/db-b/url", urlTagged(old));

    await (await resolver.forSet(a)).read();
    await (await resolver.forSet(b)).read();
    const shared = await backends(old);
    expect(shared.length).toBeGreaterThan(0);

    // a's Secret rotates: a moves to a new pool; b still uses the old one, which stays as it was.
    secrets.set("iot/db-a/url", urlTagged(rotated));
    await (await resolver.forSet(a)).read();
    expect((await backends(rotated)).length).toBeGreaterThan(0);
    await (await resolver.forSet(b)).read();
    expect(await backends(old)).toEqual(shared);

    // b's Secret rotates too: nobody uses the old pool any more, and its connections go.
    secrets.set("iot/db-b/url", urlTagged(rotated));
    await (await resolver.forSet(b)).read();
    await closed(old);

    // a is deleted: b keeps the pool they share; once b is deleted too, it is closed.
    const inUse = await backends(rotated);
    await resolver.release("iot/a");
    await (await resolver.forSet(b)).read();
    expect(await backends(rotated)).toEqual(inUse);
    await resolver.release("iot/b");
    await closed(rotated);

    // A set seen again after its deletion gets a fresh pool.
    await (await resolver.forSet(b)).read();
    expect((await backends(rotated)).length).toBeGreaterThan(0);
  });
});
