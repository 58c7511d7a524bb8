/**
 * A private nats-server with JetStream for tests that stop, kill or restart it: a free loopback
 * port and a store folder of its own (`-js -sd <dir> -p <port>`), so the shared server on 4222 is
 * never touched. The store survives `stop`/`kill` and `start` (same port, same folder), as a
 * restarted server's would.
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { findOnPath, superviseProcess } from "./privateServices.ts";

export interface PrivateNats {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Graceful stop (SIGTERM). Resolves once the process has exited. */
  stop(): Promise<void>;
  /** Hard crash (SIGKILL). */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server if it runs and removes its store. Idempotent. */
  destroy(): Promise<void>;
}

function natsServerBinary(): string {
  const found = findOnPath("nats-server") ?? "/usr/sbin/nats-server";
  return found;
}

/** Resolves true when the port answers with the server's INFO line. */
function natsInfo(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    let buf = "";
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("error", () => done(false));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("INFO "));
    });
  });
}

export async function startPrivateNats(): Promise<PrivateNats> {
  const bin = natsServerBinary();
  const dir = await mkdtemp(join(tmpdir(), `eo-nats-${process.pid}-`));
  const port = await freePort();
  const server = await superviseProcess({
    what: `nats-server on port ${port}`,
    dir,
    spawnServer: () =>
      spawn(bin, ["-js", "-sd", join(dir, "store"), "-p", String(port), "-a", "127.0.0.1"], {
        stdio: "ignore",
      }),
    ready: () => natsInfo(port),
  });
  return { url: `nats://127.0.0.1:${port}`, port, ...server };
}
