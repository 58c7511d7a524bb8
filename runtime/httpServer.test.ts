import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { ListenError, listenHost, parseAddress, type RunningServer, startHttpServer } from "./httpServer.ts";

describe("parseAddress", () => {
  it.each([
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    [":8081", { host: "0.0.0.0", port: 8081 }],
    ["9464", { host: "0.0.0.0", port: 9464 }],
    [" :0 ", { host: "0.0.0.0", port: 0 }],
    ["localhost:8080", { host: "localhost", port: 8080 }],
    ["[::1]:8080", { host: "::1", port: 8080 }],
    ["operator.ops.svc:9000", { host: "operator.ops.svc", port: 9000 }],
  ])("%s", (raw, expected) => {
    expect(parseAddress(raw, "--x")).toEqual(expected);
  });

  it.each(["", "host:", "host:port", ":70000", "bad host:8080", "-x:8080", "a..b:8080"])(
    "rejects %j naming the setting",
    (raw) => {
      expect(() => parseAddress(raw, "--metrics-bind-address")).toThrow(/^--metrics-bind-address: /);
    },
  );
});

describe("listenHost", () => {
  it.each([
    ["0.0.0.0", "0.0.0.0"],
    ["::", "::"],
    ["[::]", "::"],
    ["my-host.example", "my-host.example"],
    ["bad host", undefined],
    ["[my-host]", undefined],
    ["host_name", undefined],
    ["", undefined],
  ])("%j → %j", (raw, expected) => {
    expect(listenHost(raw)).toBe(expected);
  });
});

describe("startHttpServer", () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  const get = async (path: string, method = "GET") => {
    const res = await fetch(`http://127.0.0.1:${server!.port}${path}`, { method });
    return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
  };

  it("serves the given registry at /metrics and the probes", async () => {
    const registry = new Registry();
    new Counter({ name: "runtime_test_total", help: "A counter.", registers: [registry] }).inc(3);
    server = await startHttpServer({ host: "127.0.0.1", port: 0 }, { registry });
    expect(server.port).toBeGreaterThan(0);
    const metrics = await get("/metrics?x=1");
    expect(metrics.status).toBe(200);
    expect(metrics.type).toBe(registry.contentType);
    expect(metrics.body).toContain("runtime_test_total 3");
    for (const path of ["/healthz", "/livez", "/readyz"]) expect((await get(path)).status).toBe(200);
    expect((await get("/nope")).status).toBe(404);
    expect((await get("/healthz", "POST")).status).toBe(405);
  });

  it("answers 503 while unhealthy or not ready, and when the readiness check fails", async () => {
    let healthy = false;
    let ready: () => boolean | Promise<boolean> = () => false;
    server = await startHttpServer(
      { host: "127.0.0.1", port: 0 },
      { healthy: () => healthy, ready: () => ready() },
    );
    expect((await get("/metrics")).status).toBe(404); // no registry given
    expect(await get("/healthz")).toMatchObject({ status: 503, body: "unhealthy\n" });
    expect(await get("/readyz")).toMatchObject({ status: 503, body: "not ready\n" });
    healthy = true;
    ready = async () => true;
    expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    expect(await get("/readyz")).toMatchObject({ status: 200, body: "ok\n" });
    ready = async () => {
      throw new Error("database down");
    };
    expect((await get("/readyz")).status).toBe(503);
    ready = () => {
      throw new Error("thrown synchronously");
    };
    expect((await get("/readyz")).status).toBe(503);
  });

  it("answers a failing probe with its reasons, one per line, and ok when there are none", async () => {
    let health: string[] = ["Lease last renewed 12s ago"];
    let readiness: string[] = ["informer caches not synced", "shutting down"];
    server = await startHttpServer(
      { host: "127.0.0.1", port: 0 },
      { healthy: () => ({ reasons: health }), ready: async () => ({ reasons: readiness }) },
    );
    expect(await get("/healthz")).toMatchObject({
      status: 503,
      body: "unhealthy\nLease last renewed 12s ago\n",
      type: "text/plain; charset=utf-8",
    });
    expect(await get("/livez")).toMatchObject({ status: 503 });
    expect(await get("/readyz")).toMatchObject({
      status: 503,
      body: "not ready\ninformer caches not synced\nshutting down\n",
    });
    health = [];
    readiness = [];
    expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    expect(await get("/readyz")).toMatchObject({ status: 200, body: "ok\n" });
  });

  it("answers 503 when the health check throws", async () => {
    server = await startHttpServer(
      { host: "127.0.0.1", port: 0 },
      {
        healthy: () => {
          throw new Error("boom");
        },
      },
    );
    expect(await get("/healthz")).toMatchObject({
      status: 503,
      body: "unhealthy\nhealth check failed: Error: boom\n",
    });
  });

  it("rejects when the port is taken, and close() frees it", async () => {
    server = await startHttpServer({ host: "127.0.0.1", port: 0 }, {});
    const port = server.port;
    const taken = startHttpServer({ host: "127.0.0.1", port }, {});
    await expect(taken).rejects.toBeInstanceOf(ListenError);
    await expect(taken).rejects.toMatchObject({
      code: "EADDRINUSE",
      message: expect.stringContaining(`cannot listen on 127.0.0.1:${port}: `),
    });
    await server.close();
    server = await startHttpServer({ host: "127.0.0.1", port }, {});
    expect(server.port).toBe(port);
  });
});
