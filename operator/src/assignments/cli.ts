import type { Command } from "commander";
import pg from "pg";
import { ConfigError } from "../config/configError.ts";
import { DATABASE_URL_FLAG, databaseUrlHelp, requirePostgresUrl } from "../config/databaseUrl.ts";
import { compilePgConnection, compileTlsCaFile, TLS_CA_FILE_HELP } from "../config/tlsCaFile.ts";
import { planAssignment } from "../sharding/planAssignment.ts";
import { createPgTenantAssignments, readTenantLoads } from "./pgTenantAssignments.ts";
import { formatPlan, formatStatus } from "./shardsReport.ts";
import { sql } from "./sqlFiles.ts";

export interface ShardsCommandDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
}

/** The `shards` commands' help on their environment. */
const SHARDS_HELP = databaseUrlHelp(TLS_CA_FILE_HELP);

async function withPool<T>(
  raw: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  fn: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const setting = "DATABASE_URL (--database-url)";
  const url = requirePostgresUrl(raw, setting);
  const pool = new pg.Pool({ ...compilePgConnection(url, compileTlsCaFile(env), setting), max: 2 });
  pool.on("error", () => {
    // Reported by the failing query.
  });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

function shardSetName(raw: string): string {
  if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(raw))
    throw new ConfigError(`--shard-set: expected namespace/name, got "${raw}"`);
  return raw;
}

/** `evaluator-operator shards plan|status`: a dry run of a resize, and the current per-shard load. */
export function registerShardsCommand(program: Command, deps: ShardsCommandDeps): Command {
  const shards = program.command("shards").description("Inspect and plan tenant assignments");

  shards
    .command("plan")
    .description("Dry run: what resizing to N shards would move (changes nothing)")
    .requiredOption("--shards <n>", "target shard count")
    .requiredOption("--shard-set <namespace/name>", "the EvaluatorShardSet")
    .option("--database-url <url>", DATABASE_URL_FLAG)
    .addHelpText("after", SHARDS_HELP)
    .action(async (opts: { shards: string; shardSet: string; databaseUrl?: string }) => {
      const n = Number(opts.shards);
      if (!Number.isInteger(n) || n < 1 || n > 256)
        throw new ConfigError(`--shards: expected 1..256, got "${opts.shards}"`);
      const set = shardSetName(opts.shardSet);
      await withPool(opts.databaseUrl ?? deps.env["DATABASE_URL"], deps.env, async (pool) => {
        const tenants = await readTenantLoads(pool, set);
        const current = await createPgTenantAssignments(pool, set).read();
        deps.stdout.write(formatPlan(tenants, planAssignment(tenants, n), current.shardCount));
      });
    });

  shards
    .command("status")
    .description("Per-shard tenants and load, and the shard set's epoch")
    .requiredOption("--shard-set <namespace/name>", "the EvaluatorShardSet")
    .option("--database-url <url>", DATABASE_URL_FLAG)
    .addHelpText("after", SHARDS_HELP)
    .action(async (opts: { shardSet: string; databaseUrl?: string }) => {
      const set = shardSetName(opts.shardSet);
      await withPool(opts.databaseUrl ?? deps.env["DATABASE_URL"], deps.env, async (pool) => {
        const snapshot = await createPgTenantAssignments(pool, set).read();
        const { rows } = await pool.query<{ shard_index: number | null; tenants: number; load: number }>(
          sql("shard_loads"),
          [set],
        );
        deps.stdout.write(
          formatStatus(
            set,
            snapshot,
            rows.map((r) => ({ shard: r.shard_index, tenants: r.tenants, load: r.load })),
          ),
        );
      });
    });
  return shards;
}
