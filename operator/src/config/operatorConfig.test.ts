import { describe, expect, it } from "vitest";
import {
  ConfigError,
  compileOperatorConfig,
  parseDuration,
  type RawOperatorOptions,
} from "./operatorConfig.ts";

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
  it("takes TLS_CA_FILE from the environment once it reads as a PEM bundle, and refuses one that does not", () => {
    expect(compileOperatorConfig(raw, {}).tlsCaFile).toBeUndefined();
    expect(compileOperatorConfig(raw, { TLS_CA_FILE: "" }).tlsCaFile).toBeUndefined();
    expect(() => compileOperatorConfig(raw, { TLS_CA_FILE: "/nonexistent/ca.crt" })).toThrow(
      new ConfigError("TLS_CA_FILE: cannot read the CA file /nonexistent/ca.crt (ENOENT)"),
    );
    // A file that is not a certificate bundle (this test file) is refused at start too.
    const notPem = new URL(import.meta.url).pathname;
    expect(() => compileOperatorConfig(raw, { TLS_CA_FILE: notPem })).toThrow(
      `TLS_CA_FILE: ${notPem} holds no PEM certificate`,
    );
  });

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
    // controller-runtime's rate limit when none is given; fractions of a request per second allowed.
    expect(c.kubeApi).toEqual({ qps: 20, burst: 30 });
    expect(compileOperatorConfig({ ...raw, kubeApiQps: "1.5", kubeApiBurst: "3" }, {}).kubeApi).toEqual({
      qps: 1.5,
      burst: 3,
    });
  });

  it.each([
    [{ logLevel: "loud" }, "--log-level"],
    [{ workers: "0" }, "--workers"],
    [{ resyncPeriod: "soon" }, "--resync-period"],
    [{ metricsBindAddress: "localhost" }, "--metrics-bind-address"],
    [{ renewDeadline: "20s" }, "lease-duration > renew-deadline"],
    // Values that would hurt: a resync or an autoscale interval of 0 loops every millisecond, a
    // retry period of 0 hammers the Lease, and Node runs an over-long timer at once.
    [{ resyncPeriod: "0s" }, "--resync-period: must be at least 1s"],
    [{ resyncPeriod: "999ms" }, "--resync-period: must be at least 1s"],
    [{ resyncPeriod: "600h" }, "--resync-period: must be at most 596h"],
    [{ autoscaleInterval: "0s" }, "--autoscale-interval: must be at least 1s"],
    [{ retryPeriod: "0s" }, "--leader-election-retry-period: must be at least 100ms"],
    [{ retryPeriod: "99ms" }, "--leader-election-retry-period: must be at least 100ms"],
    [{ drainSlack: "1000h" }, "--drain-slack: must be at most 596h"],
    // client-go's order: lease-duration > renew-deadline > retry-period × 1.2 (JitterFactor).
    [{ leaseDuration: "10s" }, "--leader-election-lease-duration: must be greater than"],
    [{ leaseDuration: "5s" }, "--leader-election-lease-duration: must be greater than"],
    [{ retryPeriod: "10s" }, "--leader-election-renew-deadline: must be greater than 1.2 ×"],
    [{ retryPeriod: "8500ms" }, "--leader-election-renew-deadline: must be greater than 1.2 ×"],
    // The apiserver rate limit: a number in [1, 10000] per second, a whole burst in [1, 10000].
    [
      { kubeApiQps: "fast" },
      '--kube-api-qps (or $KUBE_API_QPS): expected a number of requests per second, got "fast"',
    ],
    [{ kubeApiQps: "-5" }, "--kube-api-qps (or $KUBE_API_QPS): expected a number"],
    [{ kubeApiQps: "" }, "--kube-api-qps (or $KUBE_API_QPS): expected a number"],
    [{ kubeApiQps: "0" }, '--kube-api-qps (or $KUBE_API_QPS): must be between 1 and 10000, got "0"'],
    [{ kubeApiQps: "0.5" }, "--kube-api-qps (or $KUBE_API_QPS): must be between 1 and 10000"],
    [{ kubeApiQps: "20000" }, "--kube-api-qps (or $KUBE_API_QPS): must be between 1 and 10000"],
    [
      { kubeApiBurst: "0" },
      "--kube-api-burst (or $KUBE_API_BURST): expected a whole number of requests between 1 and 10000",
    ],
    [{ kubeApiBurst: "2.5" }, "--kube-api-burst (or $KUBE_API_BURST): expected a whole number"],
    [{ kubeApiBurst: "1e3" }, "--kube-api-burst (or $KUBE_API_BURST): expected a whole number"],
    [{ kubeApiBurst: "10001" }, "--kube-api-burst (or $KUBE_API_BURST): expected a whole number"],
  ])("fails fast naming the setting for %o", (bad, name) => {
    expect(() => compileOperatorConfig({ ...raw, ...bad }, {})).toThrow(name);
    expect(() => compileOperatorConfig({ ...raw, ...bad }, {})).toThrow(ConfigError);
  });

  it("accepts the smallest values that cannot hurt, and the e2e suites' short timings", () => {
    const c = compileOperatorConfig(
      { ...raw, resyncPeriod: "1s", autoscaleInterval: "1s", retryPeriod: "100ms", drainSlack: "0s" },
      {},
    );
    expect(c).toMatchObject({ resyncMs: 1000, autoscaleIntervalMs: 1000, drainSlackMs: 0 });
    const short = compileOperatorConfig(
      { ...raw, leaseDuration: "4s", renewDeadline: "3s", retryPeriod: "500ms" },
      {},
    );
    expect(short.leaderElection).toMatchObject({
      leaseDurationMs: 4000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 500,
    });
    // 8.3 s is just over 1.2 × 6.9 s = 8.28 s.
    expect(() =>
      compileOperatorConfig({ ...raw, renewDeadline: "8.3s", retryPeriod: "6.9s" }, {}),
    ).not.toThrow();
  });

  it("checks the leader-election order only with leader election on (the values are unused then)", () => {
    const c = compileOperatorConfig(
      { ...raw, leaderElect: false, leaseDuration: "1s", renewDeadline: "10s" },
      {},
    );
    expect(c.leaderElection).toEqual({ enabled: false });
    // A retry period that would hammer the Lease is refused either way: it is a flag of its own.
    expect(() => compileOperatorConfig({ ...raw, leaderElect: false, retryPeriod: "0s" }, {})).toThrow(
      "--leader-election-retry-period",
    );
  });

  it("compiles the shard pod policy: image prefixes (none: every image) and the ServiceAccount passthrough", () => {
    const defaults = compileOperatorConfig(raw, {});
    expect(defaults.allowedImagePrefixes).toEqual([]);
    expect(defaults.serviceAccountPassthrough).toBe(true);
    const set = compileOperatorConfig(
      {
        ...raw,
        allowedImagePrefixes: " registry.example.com/team/, ghcr.io/example/evaluator ,,",
        serviceAccountPassthrough: false,
      },
      {},
    );
    expect(set.allowedImagePrefixes).toEqual(["registry.example.com/team/", "ghcr.io/example/evaluator"]);
    expect(set.serviceAccountPassthrough).toBe(false);
  });

  it.each([
    ["registry.example.com/team/ ghcr.io/example/", "holds a blank"],
    // A registry host ending in ":" would allow registry.example.com:anything, a Docker Hub image.
    ["registry.example.com:", 'ends in ":" but names no repository'],
    ["registry.example.com@", 'ends in "@" but names no repository'],
  ])("refuses the image prefix %j", (prefixes, says) => {
    const compile = () => compileOperatorConfig({ ...raw, allowedImagePrefixes: prefixes }, {});
    expect(compile).toThrow(ConfigError);
    expect(compile).toThrow(`--allowed-image-prefixes: "${prefixes.split(" ")[0]}`);
    expect(compile).toThrow(says);
  });

  it("parses durations", () => {
    expect(parseDuration("500ms", "x")).toBe(500);
    expect(parseDuration("2m", "x")).toBe(120_000);
    expect(parseDuration("3", "x")).toBe(3000);
  });
});
