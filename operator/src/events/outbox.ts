import { readFileSync } from "node:fs";
import type pg from "pg";
import { withPoolClient } from "../../../runtime/poolClient.ts";

/**
 * A read position in the alert-event outbox (migration 000009): the (xid, id) of an event, both as
 * decimal strings (xid8 and bigint). Positions are ordered by xid, then id.
 */
export interface EventPosition {
  readonly xid: string;
  readonly id: string;
}

/** Before the first event. */
export const START: EventPosition = { xid: "0", id: "0" };

/** Orders two positions: negative when `a` comes first. */
export function comparePositions(a: EventPosition, b: EventPosition): number {
  const x = BigInt(a.xid) - BigInt(b.xid);
  if (x !== 0n) return x < 0n ? -1 : 1;
  const y = BigInt(a.id) - BigInt(b.id);
  return y === 0n ? 0 : y < 0n ? -1 : 1;
}

/** The later of the positions. */
export function latest(...positions: EventPosition[]): EventPosition {
  return positions.reduce((a, b) => (comparePositions(a, b) >= 0 ? a : b), START);
}

/** One `alert_events` row. Ids are bigints as decimal strings. */
export interface OutboxEvent {
  readonly id: string;
  readonly xid: string;
  readonly tenantId: string;
  readonly ruleId: string;
  readonly deviceId: string | null;
  readonly kind: "fired" | "escalated" | "resolved" | "suppressed";
  readonly severity: string;
  readonly alertId: string | null;
  readonly fingerprint: string;
  readonly seq: string;
  readonly tickAt: Date;
  readonly payload: unknown;
  readonly createdAt: Date;
}

/** The event's position. */
export function positionOf(e: Pick<OutboxEvent, "xid" | "id">): EventPosition {
  return { xid: e.xid, id: e.id };
}

/**
 * The message body of an event (JSON, UTF-8): its columns under their SQL names; ids, alert ids
 * and seqs as JSON numbers (they stay far below 2^53), times in ISO 8601.
 */
export function eventBody(e: OutboxEvent): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      id: Number(e.id),
      tenant_id: e.tenantId,
      rule_id: e.ruleId,
      device_id: e.deviceId,
      kind: e.kind,
      severity: e.severity,
      alert_id: e.alertId === null ? null : Number(e.alertId),
      fingerprint: e.fingerprint,
      seq: Number(e.seq),
      tick_at: e.tickAt.toISOString(),
      created_at: e.createdAt.toISOString(),
      payload: e.payload,
    }),
    "utf8",
  );
}

/** The relay's reads and writes of the outbox. */
export interface Outbox {
  /** The relay's saved cursor ({@link START} when it has none). */
  loadCursor(name: string): Promise<EventPosition>;
  /** Moves the relay's saved cursor forward to `position` (never back). */
  saveCursor(name: string, position: EventPosition): Promise<void>;
  /**
   * Up to `limit` events after `after` in read order, only of transactions below the read's xmin
   * horizon (`read_batch.sql`), and only durable ones: the read's transaction commits with
   * `synchronous_commit = on` after taking a transaction id, which flushes the WAL past the commit
   * of every event it returned. The evaluator commits asynchronously by default, and a commit is
   * visible before it is flushed: without this, a database crash could take back an event the relay
   * had already published.
   */
  readBatch(after: EventPosition, limit: number): Promise<OutboxEvent[]>;
  /** How many events follow `after` (published or not yet readable), counting at most `cap`. */
  backlog(after: EventPosition, cap: number): Promise<number>;
  /** Deletes up to `limit` events created before `beforeMs` (epoch ms); returns how many. */
  prune(beforeMs: number, limit: number): Promise<number>;
}

const SQL_FILES = ["read_batch", "load_cursor", "save_cursor", "prune", "backlog"] as const;

function loadSql(): Record<(typeof SQL_FILES)[number], string> {
  const out = {} as Record<(typeof SQL_FILES)[number], string>;
  for (const name of SQL_FILES)
    out[name] = readFileSync(new URL(`./sql/${name}.sql`, import.meta.url), "utf8");
  return out;
}

interface EventRow {
  id: string;
  xid: string;
  tenant_id: string;
  rule_id: string;
  device_id: string | null;
  kind: OutboxEvent["kind"];
  severity: string;
  alert_id: string | null;
  fingerprint: string;
  seq: string;
  tick_at: Date;
  payload: unknown;
  created_at: Date;
}

/**
 * The PostgreSQL {@link Outbox} on `pool`. Every statement is a transaction of its own or an
 * explicit one (no session state): it works through PgBouncer's transaction pooling.
 */
export function createPgOutbox(pool: pg.Pool): Outbox {
  const sql = loadSql();
  return {
    async loadCursor(name) {
      const { rows } = await pool.query<{ xid: string; event_id: string }>(sql.load_cursor, [name]);
      const row = rows[0];
      return row ? { xid: row.xid, id: row.event_id } : START;
    },

    async saveCursor(name, position) {
      await pool.query(sql.save_cursor, [name, position.xid, position.id]);
    },

    readBatch(after, limit) {
      return withPoolClient(pool, async (client) => {
        await client.query("BEGIN");
        try {
          await client.query("SET LOCAL synchronous_commit = on");
          const { rows } = await client.query<EventRow>(sql.read_batch, [after.xid, after.id, limit]);
          // A transaction id makes COMMIT write (and, synchronous, flush) a commit record: the WAL
          // is then flushed past the commits of the events read, which precede it.
          if (rows.length > 0) await client.query("SELECT pg_current_xact_id()");
          await client.query("COMMIT");
          return rows.map((r) => ({
            id: r.id,
            xid: r.xid,
            tenantId: r.tenant_id,
            ruleId: r.rule_id,
            deviceId: r.device_id,
            kind: r.kind,
            severity: r.severity,
            alertId: r.alert_id,
            fingerprint: r.fingerprint,
            seq: r.seq,
            tickAt: r.tick_at,
            payload: r.payload,
            createdAt: r.created_at,
          }));
        } catch (err) {
          await client.query("ROLLBACK").catch(() => undefined);
          throw err;
        }
      });
    },

    async backlog(after, cap) {
      const { rows } = await pool.query<{ backlog: number }>(sql.backlog, [after.xid, after.id, cap]);
      return rows[0]?.backlog ?? 0;
    },

    async prune(beforeMs, limit) {
      const result = await pool.query(sql.prune, [beforeMs, limit]);
      return result.rowCount ?? 0;
    },
  };
}
