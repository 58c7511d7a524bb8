/**
 * Prometheus file-based service discovery (`file_sd_configs`): the shard runner publishes one
 * target per shard process, and Prometheus picks up the file whenever it changes.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** One running shard process as Prometheus should see it. */
export interface ShardTarget {
  namespace: string;
  shardSet: string;
  shard: string;
  deployment: string;
  port: number;
}

export interface FileSdGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** The file_sd document: one group per process, ordered by Deployment so the file is stable. */
export function buildFileSd(targets: readonly ShardTarget[]): FileSdGroup[] {
  return [...targets]
    .sort((a, b) => a.deployment.localeCompare(b.deployment))
    .map((t) => ({
      targets: [`127.0.0.1:${t.port}`],
      labels: { namespace: t.namespace, shardset: t.shardSet, shard: t.shard, deployment: t.deployment },
    }));
}

/**
 * Writes `content` so that a reader sees either the old file or the new one, never a torn write:
 * a temp file in the same folder, then rename (atomic within one file system).
 */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // Hidden and ending in .tmp, so a file_sd glob such as `*.json` never picks it up half-written.
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, content);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
