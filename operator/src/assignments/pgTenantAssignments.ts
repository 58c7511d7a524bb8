import type pg from "pg";
import { withPoolClient } from "../../../runtime/poolClient.ts";
import { advisoryLockKey } from "../migrate/advisoryLockKey.ts";
import {
  type AssignmentPlan,
  placeNewTenants,
  planAssignment,
  type TenantLoad,
} from "../sharding/planAssignment.ts";
import { sql } from "./sqlFiles.ts";
import type { AssignmentSnapshot, CommitResult, TenantAssignments } from "./tenantAssignments.ts";

/** Every tenant of `shardSet` with its load and current shard (inside a transaction, or on a pool). */
export async function readTenantLoads(db: pg.Pool | pg.PoolClient, shardSet: string): Promise<TenantLoad[]> {
  const { rows } = await db.query<{ id: string; weight: number | string; shard_index: number | null }>(
    sql("select_tenant_loads"),
    [shardSet],
  );
  return rows.map((r) => ({ id: r.id, weight: Number(r.weight), shard: r.shard_index }));
}

interface LastReshardRow {
  from: number;
  to: number;
  moved: number;
  movedLoad: number;
  minimumMovedLoad: number;
}

/** Advisory lock key of one shard set's assignments (distinct from the migration lock). */
export function shardSetLockKey(shardSet: string): bigint {
  return advisoryLockKey(`evaluator-operator:shard-set:${shardSet}`);
}

/**
 * Tenant assignments of one shard set in PostgreSQL. Every write is one transaction under the
 * set's advisory lock, so two operators (say, an old leader still finishing) never interleave.
 */
export function createPgTenantAssignments(pool: pg.Pool, shardSet: string): TenantAssignments {
  const lockKey = shardSetLockKey(shardSet).toString();

  function inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return withPoolClient(pool, async (client) => {
      await client.query("BEGIN");
      try {
        await client.query(sql("upsert_shard_set"), [shardSet]);
        await client.query(sql("lock_shard_set"), [lockKey]);
        const result = await fn(client);
        await client.query("COMMIT");
        return result;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
    });
  }

  async function writeMoves(c: pg.PoolClient, plan: AssignmentPlan, oldCount: number): Promise<void> {
    if (plan.moves.length === 0) return;
    const ids: string[] = [];
    const shards: number[] = [];
    const handoff: boolean[] = [];
    for (const m of plan.moves) {
      ids.push(m.id);
      shards.push(m.to);
      // Only a tenant that some running shard evaluated needs the overlap interval.
      handoff.push(m.from !== null && m.from >= 0 && m.from < oldCount);
    }
    await c.query(sql("move_tenants"), [shardSet, ids, shards, handoff]);
  }

  return {
    async read(): Promise<AssignmentSnapshot> {
      const { rows } = await pool.query<{
        shard_count: number | null;
        epoch: string | null;
        tenants: number;
        total_load: number;
      }>(sql("read_shard_set"), [shardSet]);
      const row = rows[0];
      const count = row?.shard_count ?? null;
      return {
        shardCount: count === 0 ? null : count,
        epoch: Number(row?.epoch ?? 0),
        tenants: row?.tenants ?? 0,
        totalLoad: row?.total_load ?? 0,
      };
    },

    commit(shardCount: number): Promise<CommitResult> {
      return inTransaction(async (c) => {
        const { rows } = await c.query<{
          shard_count: number;
          epoch: string;
          last_reshard: LastReshardRow | null;
        }>(sql("select_shard_set_for_update"), [shardSet]);
        const current = rows[0]!;
        const tenants = await readTenantLoads(c, shardSet);
        if (current.shard_count === shardCount) {
          // Resumed after a crash that followed the commit: place stragglers, report the real reshard.
          const plan = placeNewTenants(tenants, shardCount);
          await writeMoves(c, plan, shardCount);
          const last = current.last_reshard;
          return {
            epoch: Number(current.epoch),
            shardCount,
            tenants: tenants.length,
            moved: last?.to === shardCount ? last.moved : 0,
            movedLoad: last?.to === shardCount ? last.movedLoad : 0,
            minimumMovedLoad: last?.to === shardCount ? last.minimumMovedLoad : 0,
            alreadyCommitted: true,
          };
        }
        const plan = planAssignment(tenants, shardCount);
        await writeMoves(c, plan, current.shard_count);
        const moved = plan.moves.filter((m) => m.from !== null && m.from < current.shard_count).length;
        const summary: LastReshardRow = {
          from: current.shard_count,
          to: shardCount,
          moved,
          movedLoad: plan.movedLoad,
          minimumMovedLoad: plan.minimumMovedLoad,
        };
        const updated = await c.query<{ epoch: string }>(sql("commit_shard_set"), [
          shardSet,
          shardCount,
          true,
          JSON.stringify(summary),
        ]);
        return {
          epoch: Number(updated.rows[0]!.epoch),
          shardCount,
          tenants: tenants.length,
          moved,
          movedLoad: plan.movedLoad,
          minimumMovedLoad: plan.minimumMovedLoad,
          alreadyCommitted: false,
        };
      });
    },

    async assignNew(): Promise<number> {
      const snapshot = await this.read();
      const count = snapshot.shardCount;
      if (!count) return 0;
      const { rows } = await pool.query<{ unplaced: boolean }>(sql("count_unplaced"), [shardSet, count]);
      // Cheap check first: the full load scan runs only when some tenant needs a shard.
      if (!rows[0]?.unplaced) return 0;
      return inTransaction(async (c) => {
        const locked = await c.query<{ shard_count: number }>(sql("select_shard_set_for_update"), [shardSet]);
        const shardCount = locked.rows[0]!.shard_count;
        if (shardCount === 0) return 0;
        const plan = placeNewTenants(await readTenantLoads(c, shardSet), shardCount);
        await writeMoves(c, plan, shardCount);
        return plan.moves.length;
      });
    },
  };
}
