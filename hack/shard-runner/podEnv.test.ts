import { describe, expect, it } from "vitest";
import { EnvResolutionError, type EnvSources, expandEnvReferences, resolveContainerEnv } from "./podEnv.ts";

const sources: EnvSources = {
  namespace: "iot",
  podName: "alerts-shard-0-abc",
  nodeName: "shard-runner",
  podIP: "127.0.0.1",
  async secret(name) {
    return name === "db" ? { url: "postgres://db/x", password: "s3cret" } : undefined;
  },
  async configMap(name) {
    return name === "tuning" ? { CONCURRENCY: "4", LOG_LEVEL: "debug" } : undefined;
  },
};

describe("expandEnvReferences", () => {
  const defined = new Map([
    ["A", "1"],
    ["B", "two"],
  ]);
  it.each([
    ["plain", "plain"],
    ["$(A)-$(B)", "1-two"],
    ["$(MISSING)", "$(MISSING)"],
    ["$$(A)", "$(A)"],
    ["cost $5", "cost $5"],
    ["trailing $", "trailing $"],
    ["$(A", "$(A"],
  ])("%s → %s", (input, want) => {
    expect(expandEnvReferences(input, defined)).toBe(want);
  });
});

describe("resolveContainerEnv", () => {
  it("resolves values, Secret and ConfigMap keys, the downward API and envFrom, in Kubernetes order", async () => {
    const env = await resolveContainerEnv(
      {
        name: "evaluator",
        envFrom: [{ configMapRef: { name: "tuning" }, prefix: "CM_" }],
        env: [
          { name: "SHARD_INDEX", value: "3" },
          { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: "db", key: "url" } } },
          { name: "CONCURRENCY", valueFrom: { configMapKeyRef: { name: "tuning", key: "CONCURRENCY" } } },
          { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "NS", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
          { name: "LABEL", value: "$(NS)/shard-$(SHARD_INDEX) $(LATER)" },
          { name: "LATER", value: "x" },
          { name: "OPTIONAL", valueFrom: { secretKeyRef: { name: "nope", key: "k", optional: true } } },
        ],
      },
      sources,
    );
    expect(Object.fromEntries(env)).toEqual({
      CM_CONCURRENCY: "4",
      CM_LOG_LEVEL: "debug",
      SHARD_INDEX: "3",
      DATABASE_URL: "postgres://db/x",
      CONCURRENCY: "4",
      POD: "alerts-shard-0-abc",
      NS: "iot",
      LABEL: "iot/shard-3 $(LATER)",
      LATER: "x",
    });
  });

  it.each([
    ["a missing Secret", { secretKeyRef: { name: "nope", key: "url" } }, "Secret nope not found"],
    ["a missing key", { secretKeyRef: { name: "db", key: "user" } }, "Secret db has no key user"],
    ["a missing ConfigMap", { configMapKeyRef: { name: "nope", key: "k" } }, "ConfigMap nope not found"],
    [
      "an unsupported field",
      { fieldRef: { fieldPath: "metadata.uid" } },
      "fieldRef metadata.uid is not supported",
    ],
    [
      "a resource field",
      { resourceFieldRef: { resource: "limits.cpu" } },
      "valueFrom source is not supported",
    ],
  ])("refuses %s", async (_what, valueFrom, message) => {
    const run = resolveContainerEnv({ name: "c", env: [{ name: "X", valueFrom }] }, sources);
    await expect(run).rejects.toThrow(EnvResolutionError);
    await expect(run).rejects.toThrow(message);
  });
});
