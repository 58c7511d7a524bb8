import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../config/configError.ts";
import { loadKubeConfig } from "./loadKubeConfig.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "eo-kubeconfig-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("loadKubeConfig", () => {
  it("names the flag and the path when the file is missing, a directory, or not a kubeconfig", async () => {
    const garbage = join(dir, "garbage");
    await writeFile(garbage, "{ not: [yaml");
    for (const [path, problem] of [
      ["/nonexistent", "no such file"],
      [dir, "is a directory"],
      [garbage, "not a valid kubeconfig"],
    ]) {
      let thrown: unknown;
      try {
        loadKubeConfig(path);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect(
        (thrown as Error).message.startsWith(`--kubeconfig (or $KUBECONFIG): cannot load "${path}": `),
      ).toBe(true);
      expect((thrown as Error).message).toContain(problem);
    }
  });

  it("loads a valid file", async () => {
    const file = join(dir, "config");
    await writeFile(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]",
        "users: [{name: u, user: {token: t}}]",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
      ].join("\n"),
    );
    expect(loadKubeConfig(file).getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
  });
});
