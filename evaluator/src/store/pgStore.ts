import { readFileSync } from "node:fs";
import type { PgSynchronousCommit } from "../config/evaluatorConfig.ts";
import { pairKey } from "../rules/planTenant.ts";
import type { Reading } from "../rules/types.ts";
import type { AlertWrites, Maintenance } from "./alertWrites.ts";
import { NO_MAINTENANCE } from "./alertWrites.ts";

/**
 * A statement: SQL text, parameters, and a name under which each connection prepares it once
 * (parsed and planned once per connection instead of on every tick).
 */
export interface Statement {
  readonly name: string;
  readonly text: string;
  readonly values: unknown[];
}

/** The narrow slice of `pg.Pool` the store uses (a Pool or a Client fits). */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    statement: Statement,
  ): Promise<{ rows: R[] }>;
}

/** The `shard_sets` row. `epoch` is a bigint in SQL; it stays far below 2^53. */
export interface ShardSetInfo {
  readonly shardCount: number;
  readonly epoch: number;
}

/** A tenant of this shard's membership for one tick. */
export interface MemberTenant {
  readonly id: string;
  /** `shard_index` is this shard (else it left this shard less than one interval ago). */
  readonly owned: boolean;
  /**
   * The tenant moved in or out less than one interval ago, so another shard may be evaluating it
   * too: the evaluation takes the Valkey tick lease first (one evaluator per slot does the work).
   */
  readonly handoff: boolean;
}

/**
 * A tenant's evaluation fence as one read saw it (`tenant_fences`, migration 000008), and the
 * snapshot of that read. The evaluation judges exactly the readings visible in `readSnapshot` and
 * not in `judged`, and commits `seq → seq + 1`, storing `readSnapshot` as the judged one.
 */
export interface TenantFence {
  /** Committed evaluations so far (0: never evaluated). */
  readonly seq: number;
  /** The snapshot (pg_snapshot, as text) of the newest evaluation: what it saw is judged. `null`: none. */
  readonly judged: string | null;
  /** Tick time of the newest committed evaluation (`null`: none). */
  readonly evalMs: number | null;
  /** The snapshot of the read that returned this fence (pg_snapshot, as text). */
  readonly readSnapshot: string;
}

/** Everything one tenant's evaluation reads from PostgreSQL. */
export interface TenantData {
  /** The tenant's fence; {@link TenantData.readings} are the readings `readSnapshot` adds to it. */
  readonly fence: TenantFence;
  /** Raw `alert_rules` rows (enabled), for `parseRule`. */
  readonly ruleRows: readonly Record<string, unknown>[];
  readonly deviceIds: readonly string[];
  /**
   * The readings no committed evaluation has judged yet, in no particular order (`readingsFor` sorts each group),
   * parsed afresh by each call: a batch waiting for its turn keeps one JSON text per tenant rather
   * than thousands of objects, which would outlive many young-generation collections.
   */
  readonly readings: () => Reading[];
  /**
   * How many readings no committed evaluation has judged yet, counted up to the `maxReadings`
   * given to `readTenantData` plus one. Above `maxReadings`, {@link TenantData.readings} is empty:
   * the tenant is over its limit and is not evaluated (its readings stay unjudged).
   */
  readonly readingCount: number;
  readonly maintenance: Maintenance;
  /** (rule, device) pairs with an open alert, as `pairKey` strings. */
  readonly openPairs: ReadonlySet<string>;
}

/** Outcome of one `commitEvaluation`. */
export interface WriteResult {
  /**
   * The fence moved and the alert writes were made. `false`: a newer evaluation had committed
   * first (the evaluation is stale), and nothing was written.
   */
  readonly applied: boolean;
  readonly opened: number;
  readonly updated: number;
  readonly resolved: number;
  /** Rows appended to the alert-event outbox (`alert_events`, migration 000009). */
  readonly events: number;
}

/** What a commit needs besides the alert writes. */
export interface EvaluationCommit {
  readonly fence: TenantFence;
  /** Tick time (ms). */
  readonly nowMs: number;
  /** The evaluator's lease token (stored with the fence). */
  readonly evaluator: string;
}

/** The evaluator's PostgreSQL reads and writes. */
export interface EvaluatorStore {
  readShardSet(shardSet: string): Promise<ShardSetInfo | null>;
  /** Tenants of the shard at `now`: own ones and those that left it after `movedAfterMs`. */
  readMembership(shardSet: string, shardIndex: number, movedAfterMs: number): Promise<MemberTenant[]>;
  /**
   * One batch of tenants: fences with the readings not judged yet, rules, devices, active
   * maintenance and open alerts — five parameterized statements in parallel, whatever the batch
   * size. A tenant never evaluated reads only readings with ts after `firstReadAfterMs`. Device
   * lists are kept between calls with their version (`tenants.devices_version`): only tenants
   * whose devices changed send theirs again. Of a tenant with more than `maxReadings` new readings
   * (default: no limit) only their count is read, up to `maxReadings + 1`.
   */
  readTenantData(
    tenantIds: readonly string[],
    nowMs: number,
    firstReadAfterMs: number,
    maxReadings?: number,
  ): Promise<Map<string, TenantData>>;
  /**
   * Commits one tenant's evaluation in one statement (atomic): moves the fence from
   * `commit.fence.seq` to the next seq and the judged snapshot to `commit.fence.readSnapshot`, and makes
   * the alert writes and appends their alert events — or, when a newer evaluation committed first,
   * nothing (`applied: false`).
   */
  commitEvaluation(tenantId: string, writes: AlertWrites, commit: EvaluationCommit): Promise<WriteResult>;
  /** A trivial round trip (readiness probe). */
  ping(): Promise<void>;
  /** Forgets what is kept in memory for tenants not in `tenantIds` (they left this shard). */
  retainTenants?(tenantIds: ReadonlySet<string>): void;
}

/** SQL files of this folder, by name. Read once per store (not at import time). */
function loadSql<N extends string>(names: readonly N[]): Record<N, string> {
  const out = {} as Record<N, string>;
  for (const name of names) out[name] = readFileSync(new URL(`./sql/${name}.sql`, import.meta.url), "utf8");
  return out;
}

const SQL_FILES = [
  "shard_set",
  "membership",
  "rules",
  "devices",
  "telemetry",
  "maintenance",
  "open_alerts",
  "commit_evaluation",
] as const;

type ReadingTuple = [string, string, number, number];

/** The reader of a tenant's readings: the JSON text of `telemetry.sql`, parsed on each call. */
function readingsOf(json: string | undefined): () => Reading[] {
  if (json === undefined) return () => [];
  return () =>
    (JSON.parse(json) as ReadingTuple[]).map(([deviceId, metric, ts, value]) => ({
      deviceId,
      metric,
      ts,
      value,
    }));
}

/** Options of {@link createPgStore}. */
export interface PgStoreOptions {
  /**
   * Append one `alert_events` row per change of an alert's state in each commit, and NOTIFY
   * `alert_events` (default true). false: the outbox is left alone (the statement is the same).
   */
  readonly alertEvents?: boolean;
  /**
   * `synchronous_commit` of each commit's transaction, set inside it (SET LOCAL), so that it holds
   * through a transaction pooler too (default: the session's).
   */
  readonly synchronousCommit?: PgSynchronousCommit;
}

/** The PostgreSQL implementation of {@link EvaluatorStore}; queries live in `./sql/*.sql`. */
export function createPgStore(db: Queryable, options: PgStoreOptions = {}): EvaluatorStore {
  const alertEvents = options.alertEvents ?? true;
  const sql = loadSql(SQL_FILES);
  const stmt = (name: (typeof SQL_FILES)[number], values: unknown[]): Statement => ({
    name: `eo_${name}`,
    text: sql[name],
    values,
  });
  /** Device lists read, by tenant, with their version. */
  const deviceLists = new Map<string, { readonly version: string; readonly ids: readonly string[] }>();
  return {
    async readShardSet(shardSet) {
      const { rows } = await db.query<{ shard_count: number; epoch: string }>(stmt("shard_set", [shardSet]));
      const row = rows[0];
      return row ? { shardCount: row.shard_count, epoch: Number(row.epoch) } : null;
    },

    async readMembership(shardSet, shardIndex, movedAfterMs) {
      const { rows } = await db.query<{ id: string; owned: boolean; handoff: boolean }>(
        stmt("membership", [shardSet, shardIndex, movedAfterMs]),
      );
      return rows.map((r) => ({ id: r.id, owned: r.owned, handoff: r.handoff }));
    },

    async readTenantData(tenantIds, nowMs, firstReadAfterMs, maxReadings) {
      const ids = [...tenantIds];
      const [rules, devices, telemetry, maintenance, open] = await Promise.all([
        db.query<Record<string, unknown> & { tenant_id: string }>(stmt("rules", [ids])),
        db.query<{ tenant_id: string; version: string; device_ids: string[] }>(
          stmt("devices", [ids, ids.map((id) => deviceLists.get(id)?.version ?? null)]),
        ),
        db.query<{
          tenant_id: string;
          seq: string;
          judged: string | null;
          eval_ms: number | null;
          read_snapshot: string;
          reading_count: number;
          readings: string | null;
        }>(stmt("telemetry", [ids, firstReadAfterMs, maxReadings ?? null])),
        db.query<{ tenant_id: string; device_id: string | null }>(stmt("maintenance", [ids, nowMs])),
        db.query<{ tenant_id: string; rule_id: string; device_id: string | null }>(
          stmt("open_alerts", [ids]),
        ),
      ]);
      const ruleRows = groupBy(rules.rows, (r) => r.tenant_id);
      for (const r of devices.rows) deviceLists.set(r.tenant_id, { version: r.version, ids: r.device_ids });
      const fenced = new Map(telemetry.rows.map((r) => [r.tenant_id, r]));
      const maint = new Map<string, { tenantWide: boolean; deviceIds: Set<string> }>();
      for (const r of maintenance.rows) {
        let m = maint.get(r.tenant_id);
        if (!m) {
          m = { tenantWide: false, deviceIds: new Set() };
          maint.set(r.tenant_id, m);
        }
        if (r.device_id === null) m.tenantWide = true;
        else m.deviceIds.add(r.device_id);
      }
      const openPairs = new Map<string, Set<string>>();
      for (const r of open.rows) {
        // A tenant-wide alert (no device) is never produced by a (rule, device) pair.
        if (r.device_id === null) continue;
        let s = openPairs.get(r.tenant_id);
        if (!s) {
          s = new Set();
          openPairs.set(r.tenant_id, s);
        }
        s.add(pairKey(r.rule_id, r.device_id));
      }
      const out = new Map<string, TenantData>();
      for (const id of ids) {
        const f = fenced.get(id);
        if (f === undefined) throw new Error(`the telemetry read returned no fence for tenant ${id}`);
        out.set(id, {
          fence: {
            seq: Number(f.seq),
            judged: f.judged,
            evalMs: f.eval_ms,
            readSnapshot: f.read_snapshot,
          },
          ruleRows: ruleRows.get(id) ?? [],
          deviceIds: deviceLists.get(id)?.ids ?? [],
          readings: readingsOf(f.readings ?? undefined),
          readingCount: f.reading_count,
          maintenance: maint.get(id) ?? NO_MAINTENANCE,
          openPairs: openPairs.get(id) ?? new Set(),
        });
      }
      return out;
    },

    async commitEvaluation(tenantId, writes, commit) {
      const u = writes.upserts;
      const { rows } = await db.query<{
        applied: boolean;
        opened: number;
        updated: number;
        resolved: number;
        events: number;
      }>(
        stmt("commit_evaluation", [
          tenantId,
          u.map((x) => x.ruleId),
          u.map((x) => x.deviceId),
          u.map((x) => x.fingerprint),
          u.map((x) => x.severity),
          u.map((x) => x.firstSeenMs),
          u.map((x) => x.lastSeenMs),
          u.map((x) => x.value),
          u.map((x) => x.message),
          u.map((x) => x.escalated),
          [...writes.resolves],
          commit.nowMs,
          commit.fence.seq,
          commit.fence.readSnapshot,
          commit.evaluator,
          alertEvents,
          ...suppressionArrays(writes),
          options.synchronousCommit ?? null,
        ]),
      );
      const r = rows[0];
      return {
        applied: r?.applied === true,
        opened: r?.opened ?? 0,
        updated: r?.updated ?? 0,
        resolved: r?.resolved ?? 0,
        events: r?.events ?? 0,
      };
    },

    async ping() {
      await db.query({ name: "eo_ping", text: "SELECT 1", values: [] });
    },

    retainTenants(tenantIds) {
      for (const id of deviceLists.keys()) if (!tenantIds.has(id)) deviceLists.delete(id);
    },
  };
}

/** The suppressed fires of `writes` as the commit statement's parallel arrays ($17-$22). */
function suppressionArrays(writes: AlertWrites): unknown[][] {
  const s = writes.suppressions ?? [];
  return [
    s.map((x) => x.ruleId),
    s.map((x) => x.deviceId),
    s.map((x) => x.fingerprint),
    s.map((x) => x.severity),
    s.map((x) => x.value),
    s.map((x) => x.message),
  ];
}

function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = out.get(k);
    if (list) list.push(row);
    else out.set(k, [row]);
  }
  return out;
}
