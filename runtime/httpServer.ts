import { createServer, type Server } from "node:http";
import { isIP } from "node:net";
import type { Registry } from "prom-client";

/** Where a server listens. */
export interface ListenAddress {
  host: string;
  port: number;
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/**
 * The host to listen on as Node wants it (an IPv6 address without brackets), or undefined when
 * `raw` is neither an IP address nor a host name; checked at start, so that a typo fails naming
 * its setting instead of as a resolver error with a stack trace.
 */
export function listenHost(raw: string): string | undefined {
  const host = /^\[(.*)\]$/.exec(raw)?.[1] ?? raw;
  if (isIP(host) !== 0) return host;
  return host === raw && HOST_NAME.test(host) ? host : undefined;
}

/** Parses `host:port`, `:port` or `port` (host 0.0.0.0 when omitted); port 0 picks a free one. */
export function parseAddress(raw: string, setting: string): ListenAddress {
  const m = /^(?:(.*):)?(\d+)$/.exec(raw.trim());
  if (!m) throw new Error(`${setting}: expected host:port or :port, got "${raw}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`${setting}: port ${port} is out of range`);
  if (!m[1]) return { host: "0.0.0.0", port };
  const host = listenHost(m[1]);
  if (host === undefined) {
    throw new Error(`${setting}: expected an IP address or a host name before ":${port}", got "${m[1]}"`);
  }
  return { host, port };
}

/**
 * The server could not listen (address in use, a host name that does not resolve, no permission):
 * the message names the address; the entry points print it without a stack trace.
 */
export class ListenError extends Error {
  override readonly name = "ListenError";
  /** The system error's code (`EADDRINUSE`, `ENOTFOUND`, …). */
  readonly code: string | undefined;

  constructor(address: ListenAddress, cause: NodeJS.ErrnoException) {
    super(`cannot listen on ${address.host}:${address.port}: ${cause.message}`, { cause });
    this.code = cause.code;
  }
}

/**
 * A probe's answer: a boolean, or the reasons it fails (none: it passes). Reasons are short,
 * single-line texts; a failing probe answers 503 with one per line.
 */
export type ProbeAnswer = boolean | { readonly reasons: readonly string[] };

/** What the endpoints of one server answer; a route left out is not served (metrics) or always ok (probes). */
export interface ProbeRoutes {
  /** Served at `/metrics`: the component's own registry, never prom-client's default one. */
  readonly registry?: Registry;
  /** Liveness at `/healthz` and `/livez`. */
  readonly healthy?: () => ProbeAnswer;
  /** Readiness at `/readyz`; may take a moment (expected to be cached and bounded by its caller). */
  readonly ready?: () => ProbeAnswer | Promise<ProbeAnswer>;
}

/** The status and plain-text body of a probe's answer: 200 `ok`, or 503 `<failed>` then the reasons. */
function probeResponse(answer: ProbeAnswer, failed: string): { status: number; body: string } {
  const reasons = typeof answer === "boolean" ? (answer ? [] : [failed]) : answer.reasons;
  if (reasons.length === 0) return { status: 200, body: "ok\n" };
  const lines = typeof answer === "boolean" ? reasons : [failed, ...reasons];
  return { status: 503, body: `${lines.join("\n")}\n` };
}

/** A listening server and the port it got (useful with port 0). */
export interface RunningServer {
  readonly server: Server;
  readonly port: number;
  /** Stops listening and closes open connections (keep-alive ones too); resolves once closed. */
  close(): Promise<void>;
}

/**
 * Serves `/metrics`, `/healthz` (`/livez`) and `/readyz` on one address. The evaluator serves all
 * three on its `metrics` port; the operator runs two servers, one for metrics and one for probes,
 * as controller-runtime does. A readiness check that throws or rejects answers 503.
 */
export function startHttpServer(address: ListenAddress, routes: ProbeRoutes): Promise<RunningServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const text = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "method not allowed\n");
    const registry = routes.registry;
    if (path === "/metrics" && registry) {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(body);
        },
        (err: unknown) => text(500, `${String(err)}\n`),
      );
      return;
    }
    if (path === "/healthz" || path === "/livez") {
      let answer: ProbeAnswer;
      try {
        answer = routes.healthy?.() ?? true;
      } catch (err) {
        answer = { reasons: [`health check failed: ${String(err)}`] };
      }
      const { status, body } = probeResponse(answer, "unhealthy");
      return text(status, body);
    }
    if (path === "/readyz") {
      const ready = routes.ready ?? (() => true);
      Promise.resolve()
        .then(ready)
        .then(
          (answer) => {
            const { status, body } = probeResponse(answer, "not ready");
            text(status, body);
          },
          () => text(503, "not ready\n"),
        );
      return;
    }
    text(404, "not found\n");
  });
  // Probes must not hold the process open on shutdown.
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(new ListenError(address, err));
    server.once("error", failed);
    server.listen(address.port, address.host, () => {
      server.off("error", failed);
      const a = server.address();
      resolve({
        server,
        port: typeof a === "object" && a ? a.port : address.port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
