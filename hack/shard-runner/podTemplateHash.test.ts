import type { V1Deployment } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { podTemplateHash } from "./shardRunner.ts";

function deployment(template: Record<string, unknown>, extra: Record<string, unknown> = {}): V1Deployment {
  return { metadata: { name: "alerts-shard-0" }, spec: { selector: {}, template, ...extra } } as V1Deployment;
}

describe("podTemplateHash", () => {
  const base = {
    metadata: { labels: { a: "1", b: "2" } },
    spec: { containers: [{ name: "evaluator", env: [{ name: "LOG_LEVEL", value: "info" }] }] },
  };

  it("ignores key order, null members and everything outside the template", () => {
    const reordered = {
      spec: { containers: [{ env: [{ value: "info", name: "LOG_LEVEL" }], name: "evaluator" }] },
      metadata: { labels: { b: "2", a: "1" }, creationTimestamp: null },
    };
    expect(podTemplateHash(deployment(reordered, { replicas: 3 }))).toBe(podTemplateHash(deployment(base)));
  });

  it("changes when the container env changes", () => {
    const debug = structuredClone(base);
    debug.spec.containers[0]!.env[0]!.value = "debug";
    expect(podTemplateHash(deployment(debug))).not.toBe(podTemplateHash(deployment(base)));
  });
});
