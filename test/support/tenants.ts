import type pg from "pg";

/**
 * Inserts `count` tenants of `shardSet` with heavy-tailed (Zipf-like) weights in one statement,
 * unassigned. Deterministic for a given prefix and count.
 */
export async function seedTenants(
  db: pg.Pool,
  shardSet: string,
  count: number,
  prefix = "tenant",
): Promise<void> {
  await db.query(
    `INSERT INTO tenants (id, name, shard_set, weight)
     SELECT $2 || '-' || i, 'Tenant ' || i, $1, round((1000.0 / power(i, 1.1))::numeric, 3) + 1
       FROM generate_series(1, $3::int) AS i`,
    [shardSet, prefix, count],
  );
}

/** shard_index → number of tenants, plus the unassigned and out-of-range counts. */
export async function shardHistogram(
  db: pg.Pool,
  shardSet: string,
): Promise<{ perShard: Map<number, number>; unassigned: number; total: number }> {
  const { rows } = await db.query<{ shard_index: number | null; n: number }>(
    "SELECT shard_index, count(*)::int AS n FROM tenants WHERE shard_set = $1 GROUP BY shard_index",
    [shardSet],
  );
  const perShard = new Map<number, number>();
  let unassigned = 0;
  let total = 0;
  for (const r of rows) {
    total += r.n;
    if (r.shard_index === null) unassigned += r.n;
    else perShard.set(r.shard_index, r.n);
  }
  return { perShard, unassigned, total };
}
