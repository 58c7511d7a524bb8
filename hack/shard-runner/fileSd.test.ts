import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildFileSd, writeFileAtomic } from "./fileSd.ts";

describe("buildFileSd", () => {
  it("lists one loopback target per process, ordered by Deployment, with the shard labels", () => {
    const doc = buildFileSd([
      { namespace: "iot", shardSet: "alerts", shard: "1", deployment: "alerts-shard-1", port: 4002 },
      { namespace: "iot", shardSet: "alerts", shard: "0", deployment: "alerts-shard-0", port: 4001 },
    ]);
    expect(doc).toEqual([
      {
        targets: ["127.0.0.1:4001"],
        labels: { namespace: "iot", shardset: "alerts", shard: "0", deployment: "alerts-shard-0" },
      },
      {
        targets: ["127.0.0.1:4002"],
        labels: { namespace: "iot", shardset: "alerts", shard: "1", deployment: "alerts-shard-1" },
      },
    ]);
    expect(buildFileSd([])).toEqual([]);
  });
});

describe("writeFileAtomic", () => {
  it("creates the folder, replaces the file and leaves no temp file behind", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eo-filesd-"));
    try {
      const path = join(dir, "sd", "shards.json");
      await writeFileAtomic(path, "[]\n");
      await writeFileAtomic(path, '[{"targets":[]}]\n');
      expect(await readFile(path, "utf8")).toBe('[{"targets":[]}]\n');
      expect(await readdir(join(dir, "sd"))).toEqual(["shards.json"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
