/**
 * The evaluator's PostgreSQL store against the real database: device lists are kept between ticks
 * and read again exactly when `tenants.devices_version` (bumped by the devices triggers) moved; the
 * per-tenant evaluation fence (`tenant_fences`, migration 000008) returns every reading to exactly
 * one committed evaluation and refuses the commit of a stale one.
 */
import type pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { type AlertWrites, alertFingerprint } from "../../evaluator/src/store/alertWrites.ts";
import {
  createPgStore,
  type EvaluatorStore,
  type Queryable,
  type TenantData,
  type TenantFence,
  type WriteResult,
} from "../../evaluator/src/store/pgStore.ts";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";
import { eventually } from "../support/evaluatorProcess.ts";

// The store never touches Valkey, and the database is the test's own: tenants "a" and "b" are fine.
const db = useEvaluatorFixture("store");

beforeEach(async () => {
  await db.pool.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ('a', 's', 0), ('b', 's', 0)");
});

/** The store on a connection that records how many device rows each read sent back. */
function observedStore() {
  const deviceRows: number[] = [];
  const queryable: Queryable = {
    async query(statement) {
      const result = await db.pool.query(statement);
      if (statement.text.includes("devices_version")) deviceRows.push(result.rows.length);
      return result;
    },
  };
  return { store: createPgStore(queryable), deviceRows };
}

async function devicesOf(store: ReturnType<typeof createPgStore>) {
  const data = await store.readTenantData(["a", "b"], Date.now(), 0);
  return { a: data.get("a")?.deviceIds, b: data.get("b")?.deviceIds };
}

describe("device lists", () => {
  it("are sent only for tenants whose devices were added, removed or re-keyed since the last read", async () => {
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'd2'), ('a', 'd1'), ('b', 'x')");
    const { store, deviceRows } = observedStore();

    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x"] });
    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x"] });
    expect(deviceRows).toEqual([2, 0]);

    // A rename keeps the list; a new device, a deleted one and a re-keyed one change it.
    await db.pool.query("UPDATE devices SET name = 'boiler' WHERE tenant_id = 'a' AND id = 'd1'");
    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x"] });
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('b', 'y')");
    expect(await devicesOf(store)).toEqual({ a: ["d1", "d2"], b: ["x", "y"] });
    await db.pool.query("DELETE FROM devices WHERE tenant_id = 'a' AND id = 'd2'");
    expect(await devicesOf(store)).toEqual({ a: ["d1"], b: ["x", "y"] });
    await db.pool.query("UPDATE devices SET id = 'z' WHERE tenant_id = 'b' AND id = 'x'");
    expect(await devicesOf(store)).toEqual({ a: ["d1"], b: ["y", "z"] });
    expect(deviceRows).toEqual([2, 0, 0, 1, 1, 1]);

    // Another process (no lists kept) reads every list; a tenant without devices has an empty one.
    await db.pool.query("DELETE FROM devices WHERE tenant_id = 'a'");
    expect(await devicesOf(createPgStore(db.pool))).toEqual({ a: [], b: ["y", "z"] });

    // A tenant that left this shard is forgotten, and read in full if it comes back.
    store.retainTenants?.(new Set(["a"]));
    expect(await devicesOf(store)).toEqual({ a: [], b: ["y", "z"] });
    expect(deviceRows.slice(6)).toEqual([2]);
  });

  it("are read again after a tenant is deleted and created anew, and after TRUNCATE", async () => {
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'old'), ('b', 'x')");
    const { store } = observedStore();
    expect(await devicesOf(store)).toEqual({ a: ["old"], b: ["x"] });
    // Between two ticks: the tenant is deleted (its devices go by cascade) and created again with
    // one other device. Its version is a new one, never one the store already holds.
    await db.pool.query("DELETE FROM tenants WHERE id = 'a'");
    await db.pool.query("INSERT INTO tenants (id, shard_set, shard_index) VALUES ('a', 's', 0)");
    await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'new')");
    expect(await devicesOf(store)).toEqual({ a: ["new"], b: ["x"] });
    await db.pool.query("TRUNCATE devices CASCADE");
    expect(await devicesOf(store)).toEqual({ a: [], b: [] });
  });
});

/** A fixed tick time (2026-01-01T00:00:00Z). */
const T = Date.UTC(2026, 0, 1);

const NO_WRITES: AlertWrites = {
  upserts: [],
  resolves: [],
  counts: { fire: 0, stillFiring: 0, resolve: 0 },
  suppressedByMaintenance: 0,
};

/** A fire of rule `hot` on device `d1` of tenant `a`, with `value`. */
function fireWrites(value: number, ms: number): AlertWrites {
  return {
    ...NO_WRITES,
    upserts: [
      {
        ruleId: "hot",
        deviceId: "d1",
        fingerprint: alertFingerprint("a", "hot", "d1"),
        severity: "warning",
        firstSeenMs: ms,
        lastSeenMs: ms,
        value,
        message: `temp > 30 (value ${value})`,
        escalated: false,
      },
    ],
    counts: { fire: 1, stillFiring: 0, resolve: 0 },
  };
}

/** Inserts a reading of tenant `a`, device `d1`, at `ms` (on `on`, else in a transaction of its own). */
async function insertReading(
  ms: number,
  value: number,
  on: pg.Pool | pg.PoolClient = db.pool,
): Promise<void> {
  await on.query(
    "INSERT INTO telemetry (tenant_id, device_id, metric, ts, value) VALUES ('a', 'd1', 'temp', to_timestamp($1::float8 / 1000), $2)",
    [ms, value],
  );
}

/** Tenant `a`'s data of one read (a tenant's first evaluation reads readings after `firstReadAfterMs`). */
async function readA(
  store: EvaluatorStore,
  nowMs = T,
  firstReadAfterMs = T - 3_600_000,
): Promise<TenantData> {
  const data = (await store.readTenantData(["a"], nowMs, firstReadAfterMs)).get("a");
  if (!data) throw new Error("no data for tenant a");
  return data;
}

/** The values of the readings a read returned, ascending. */
function valuesOf(data: TenantData): number[] {
  return data
    .readings()
    .map((r) => r.value)
    .sort((x, y) => x - y);
}

function commit(
  store: EvaluatorStore,
  fence: TenantFence,
  nowMs: number,
  writes: AlertWrites = NO_WRITES,
  evaluator = "e1",
): Promise<WriteResult> {
  return store.commitEvaluation("a", writes, { fence, nowMs, evaluator });
}

async function fenceRow() {
  const { rows } = await db.pool.query<{
    seq: string;
    judged: string;
    eval_ms: number;
    evaluator: string;
  }>("SELECT seq::text, judged::text, eval_ms, evaluator FROM tenant_fences WHERE tenant_id = 'a'");
  return rows[0] ?? null;
}

async function alertRows() {
  const { rows } = await db.pool.query<{ state: string; occurrences: number; value: number }>(
    "SELECT state, occurrences, value FROM alerts WHERE tenant_id = 'a' ORDER BY id",
  );
  return rows;
}

async function addRule(): Promise<void> {
  await db.pool.query("INSERT INTO devices (tenant_id, id) VALUES ('a', 'd1')");
  await db.pool.query(
    "INSERT INTO alert_rules (tenant_id, id, metric, rule_type, operator, threshold) VALUES ('a', 'hot', 'temp', 'threshold', '>', 30)",
  );
}

const REFUSED: WriteResult = { applied: false, opened: 0, updated: 0, resolved: 0, events: 0 };

describe("the evaluation fence", () => {
  it("returns every reading to one evaluation: one whose insert commits late comes with the next read, whatever its ts, a newer one is not held back, and none comes twice", async () => {
    const store = createPgStore(db.pool);
    await insertReading(T - 7_200_000, 0); // before the first evaluation's lookback: never judged
    await insertReading(T - 10_000, 1);
    const late = await db.pool.connect();
    let first: TenantData;
    try {
      // Transaction A inserts a reading (with the oldest ts of all) and stays open while B inserts
      // and commits one.
      await late.query("BEGIN");
      await insertReading(T - 60_000, 2, late);
      const xidA = BigInt(
        (await late.query<{ xid: string }>("SELECT pg_current_xact_id()::text AS xid")).rows[0]!.xid,
      );
      await insertReading(T - 5000, 3);
      expect(await ingestXidOf(3)).toBeGreaterThan(xidA);

      // A long transaction delays only its own rows: B's reading, committed though its xid is
      // above A's, is read now; A's is not visible yet.
      first = await readA(store, T);
      expect(first.fence).toMatchObject({ seq: 0, judged: null, evalMs: null });
      expect(valuesOf(first)).toEqual([1, 3]);
      expect(await commit(store, first.fence, T)).toMatchObject({ applied: true });
      await late.query("COMMIT");
    } finally {
      late.release();
    }
    expect(await fenceRow()).toEqual({
      seq: "1",
      judged: first.fence.readSnapshot,
      eval_ms: T,
      evaluator: "e1",
    });

    // Once A committed, the next evaluation judges A's reading, and only it.
    const second = await readA(store, T + 60_000);
    expect(second.fence).toMatchObject({ seq: 1, judged: first.fence.readSnapshot, evalMs: T });
    expect(valuesOf(second)).toEqual([2]);
    expect(await commit(store, second.fence, T + 60_000)).toMatchObject({ applied: true });

    const third = await readA(store, T + 120_000);
    expect(third.fence).toMatchObject({ seq: 2, judged: second.fence.readSnapshot, evalMs: T + 60_000 });
    expect(valuesOf(third)).toEqual([]);
  });

  it("never reads a reading from before the fence existed (no ingest_xid: judged by the release before)", async () => {
    const store = createPgStore(db.pool);
    await insertReading(T - 10_000, 1);
    await db.pool.query("UPDATE telemetry SET ingest_xid = NULL WHERE tenant_id = 'a'");
    await insertReading(T - 5000, 2);
    const first = await readA(store);
    expect(valuesOf(first)).toEqual([2]);
    expect(await commit(store, first.fence, T)).toMatchObject({ applied: true });
    expect(valuesOf(await readA(store, T + 60_000))).toEqual([]);
  });

  it("a commit with a stale seq is refused and writes nothing", async () => {
    await addRule();
    const store = createPgStore(db.pool);
    const first = await readA(store);
    expect(await commit(store, first.fence, T, fireWrites(40, T))).toEqual({
      applied: true,
      opened: 1,
      updated: 0,
      resolved: 0,
      events: 1,
    });
    const row = await fenceRow();

    // Another evaluation of the same fence (seq 0) commits late: neither its fire nor its resolve
    // is written, and the fence stays where the first commit left it.
    expect(await commit(store, first.fence, T + 60_000, fireWrites(41, T + 60_000), "e2")).toEqual(REFUSED);
    const resolve = { ...NO_WRITES, resolves: [alertFingerprint("a", "hot", "d1")] };
    expect(await commit(store, first.fence, T + 60_000, resolve, "e2")).toEqual(REFUSED);
    expect(await alertRows()).toEqual([{ state: "open", occurrences: 1, value: 40 }]);
    expect(await fenceRow()).toEqual(row);

    // The evaluation of the current fence does write.
    const second = await readA(store, T + 60_000);
    expect(await commit(store, second.fence, T + 60_000, resolve)).toEqual({
      applied: true,
      opened: 0,
      updated: 0,
      resolved: 1,
      events: 1,
    });
    expect(await alertRows()).toMatchObject([{ state: "resolved", occurrences: 1 }]);
  });

  it("of two concurrent commits of one seq from two connections, exactly one applies", async () => {
    await addRule();
    const [a, b] = [await db.pool.connect(), await db.pool.connect()];
    try {
      const [storeA, storeB] = [createPgStore(a), createPgStore(b)];
      // The first evaluation (no fence row yet): A's commit is in a transaction still open when B
      // commits the same seq, so B waits on the fence row, then finds its seq gone.
      const first = await readA(createPgStore(db.pool));
      const pidB = (await b.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      await a.query("BEGIN");
      expect(await commit(storeA, first.fence, T, fireWrites(40, T), "A")).toMatchObject({ applied: true });
      const waiting = commit(storeB, first.fence, T, fireWrites(41, T), "B");
      await waitUntilLockWait(pidB);
      await a.query("COMMIT");
      expect(await waiting).toEqual(REFUSED);
      expect(await fenceRow()).toMatchObject({ seq: "1", evaluator: "A" });
      expect(await alertRows()).toEqual([{ state: "open", occurrences: 1, value: 40 }]);

      // Later evaluations: both commit at once, round after round; one applies each time.
      for (let round = 1; round <= 5; round++) {
        const now = T + round * 60_000;
        const data = await readA(createPgStore(db.pool), now);
        expect(data.fence.seq).toBe(round);
        const results = await Promise.all([
          commit(storeA, data.fence, now, fireWrites(40 + round, now), "A"),
          commit(storeB, data.fence, now, fireWrites(40 + round, now), "B"),
        ]);
        expect(results.filter((r) => r.applied)).toHaveLength(1);
        expect(results.filter((r) => !r.applied)).toEqual([REFUSED]);
      }
      expect(await fenceRow()).toMatchObject({ seq: "6", eval_ms: T + 300_000 });
      // One upsert per applied commit: the first fire and five still-firing updates.
      expect(await alertRows()).toEqual([{ state: "open", occurrences: 6, value: 45 }]);
    } finally {
      a.release();
      b.release();
    }
  });

  it("a commit whose tick time is older than the stored one is refused", async () => {
    await addRule();
    const store = createPgStore(db.pool);
    expect(await commit(store, (await readA(store)).fence, T)).toMatchObject({ applied: true });
    const current = (await readA(store)).fence;
    expect(current).toMatchObject({ seq: 1, evalMs: T });
    // The current seq, but an older tick (a tick that overran and finishes after a newer one read
    // the fence, say): refused, and its fire is not written.
    expect(await commit(store, current, T - 1, fireWrites(40, T - 1))).toEqual(REFUSED);
    expect(await alertRows()).toEqual([]);
    expect(await fenceRow()).toMatchObject({ seq: "1", eval_ms: T });
    // The same tick time is not older.
    expect(await commit(store, current, T, fireWrites(40, T))).toMatchObject({ applied: true, opened: 1 });
    expect(await fenceRow()).toMatchObject({ seq: "2", eval_ms: T });
  });
});

/** The ingest transaction id of tenant `a`'s reading with `value`. */
async function ingestXidOf(value: number): Promise<bigint> {
  const { rows } = await db.pool.query<{ xid: string }>(
    "SELECT ingest_xid::text AS xid FROM telemetry WHERE tenant_id = 'a' AND value = $1",
    [value],
  );
  return BigInt(rows[0]!.xid);
}

/** Waits until the backend `pid` waits for a lock (its statement is blocked). */
async function waitUntilLockWait(pid: number): Promise<void> {
  await eventually(
    async () =>
      (
        await db.pool.query<{ waiting: boolean }>(
          "SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1",
          [pid],
        )
      ).rows[0]?.waiting,
    10_000,
    `backend ${pid} waiting for a lock`,
  );
}
