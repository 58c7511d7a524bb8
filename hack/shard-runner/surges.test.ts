import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { surges } from "./shardRunner.ts";

const withStrategy = (strategy: k8s.V1DeploymentStrategy | undefined): k8s.V1Deployment => ({
  spec: { selector: {}, template: {}, ...(strategy ? { strategy } : {}) },
});

describe("surges", () => {
  it("the operator's strategy (maxSurge 1, maxUnavailable 0) surges", () => {
    expect(
      surges(withStrategy({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } })),
    ).toBe(true);
    expect(
      surges(
        withStrategy({ type: "RollingUpdate", rollingUpdate: { maxSurge: "50%", maxUnavailable: "0%" } }),
      ),
    ).toBe(true);
  });

  it("Recreate, maxSurge 0, or an unavailable allowance stops the old process first", () => {
    expect(surges(withStrategy({ type: "Recreate" }))).toBe(false);
    expect(
      surges(withStrategy({ type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } })),
    ).toBe(false);
    // The apiserver's defaults (25% and 25%) may take the old pod down first.
    expect(surges(withStrategy(undefined))).toBe(false);
  });
});
