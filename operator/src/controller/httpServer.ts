import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `host:port`, `:port` or `port`; port 0 picks a free one. */
export function parseAddress(raw: string, setting: string): ListenAddress {
  const m = /^(?:(.*):)?(\d+)$/.exec(raw.trim());
  if (!m) throw new Error(`${setting}: expected host:port or :port, got "${raw}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`${setting}: port ${port} is out of range`);
  return { host: m[1] || "0.0.0.0", port };
}

/**
 * Serves /metrics from the given registry and the probes: /healthz answers while the process runs,
 * /readyz while `ready()` holds. One server per address; the operator runs two (metrics, probes).
 */
export function startHttpServer(
  address: ListenAddress,
  routes: { registry?: Registry; ready?: () => boolean; healthy?: () => boolean },
): Promise<Server & { port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics" && routes.registry) {
      routes.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { "content-type": routes.registry!.contentType });
          res.end(body);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    if (path === "/healthz" || path === "/livez") {
      const ok = routes.healthy?.() ?? true;
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
      res.end(ok ? "ok" : "unhealthy");
      return;
    }
    if (path === "/readyz") {
      const ok = routes.ready?.() ?? true;
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
      res.end(ok ? "ok" : "not ready");
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      const a = server.address();
      resolve(Object.assign(server, { port: typeof a === "object" && a ? a.port : address.port }));
    });
  });
}
