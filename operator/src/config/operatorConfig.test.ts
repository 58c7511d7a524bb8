import { describe, expect, it } from "vitest";
import { compileOperatorConfig, parseDuration, type RawOperatorOptions } from "./operatorConfig.ts";

const raw: RawOperatorOptions = {
  leaderElect: true,
  leaderElectionId: "evaluator-operator-leader",
  leaseDuration: "15s",
  renewDeadline: "10s",
  retryPeriod: "2s",
  metricsBindAddress: ":8080",
  healthProbeBindAddress: "127.0.0.1:8081",
  logLevel: "info",
  resyncPeriod: "30s",
  workers: "4",
  assignments: true,
  scaleUpTimeout: "5m",
  drainSlack: "5s",
};

describe("compileOperatorConfig", () => {
  it("applies units and env fallbacks", () => {
    const c = compileOperatorConfig(
      { ...raw, namespaces: "a, b,," },
      { POD_NAMESPACE: "ops", KUBECONFIG: "/k" },
    );
    expect(c.namespaces).toEqual(["a", "b"]);
    expect(c.kubeconfig).toBe("/k");
    expect(c.leaderElection).toMatchObject({ enabled: true, namespace: "ops", leaseDurationMs: 15_000 });
    expect(c.metricsAddress).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(c.healthAddress).toEqual({ host: "127.0.0.1", port: 8081 });
    expect(c.scaleUpTimeoutMs).toBe(300_000);
  });

  it.each([
    [{ logLevel: "loud" }, "--log-level"],
    [{ workers: "0" }, "--workers"],
    [{ resyncPeriod: "soon" }, "--resync-period"],
    [{ metricsBindAddress: "localhost" }, "--metrics-bind-address"],
    [{ renewDeadline: "20s" }, "lease-duration > renew-deadline"],
  ])("fails fast naming the setting for %o", (bad, name) => {
    expect(() => compileOperatorConfig({ ...raw, ...bad }, {})).toThrow(name);
  });

  it("parses durations", () => {
    expect(parseDuration("500ms", "x")).toBe(500);
    expect(parseDuration("2m", "x")).toBe(120_000);
    expect(parseDuration("3", "x")).toBe(3000);
  });
});
