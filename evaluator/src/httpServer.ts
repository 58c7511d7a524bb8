import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

/** What the probe endpoints ask. */
export interface ProbeRoutes {
  readonly registry: Registry;
  /** Liveness: the process runs and its event loop turns. */
  readonly healthy: () => boolean;
  /** Readiness (may take a moment; expected to be cached and bounded by its caller). */
  readonly ready: () => Promise<boolean>;
}

/** A listening server and the port it got (useful with port 0). */
export interface RunningServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (the evaluator's own registry, never prom-client's default), `/healthz` and
 * `/readyz` on one port — the one the shard Deployment exposes as `metrics`.
 */
export function startHttpServer(host: string, port: number, routes: ProbeRoutes): Promise<RunningServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const text = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "method not allowed\n");
    if (path === "/metrics") {
      routes.registry.metrics().then(
        (body) => {
          res.writeHead(200, { "content-type": routes.registry.contentType });
          res.end(body);
        },
        (err: unknown) => text(500, `${String(err)}\n`),
      );
      return;
    }
    if (path === "/healthz" || path === "/livez") {
      const ok = routes.healthy();
      return text(ok ? 200 : 503, ok ? "ok\n" : "event loop stalled\n");
    }
    if (path === "/readyz") {
      routes.ready().then(
        (ok) => text(ok ? 200 : 503, ok ? "ok\n" : "not ready\n"),
        () => text(503, "not ready\n"),
      );
      return;
    }
    text(404, "not found\n");
  });
  // Probes must not hold the process open on shutdown.
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const a = server.address();
      resolve({
        server,
        port: typeof a === "object" && a ? a.port : port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
