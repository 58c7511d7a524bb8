/**
 * Private PostgreSQL and Redis/Valkey servers for tests that stop, kill or restart a service (outage
 * and chaos tests). Each instance runs on a free loopback port with its data in a temp folder of its
 * own, so such tests never touch the shared servers on 5432 and 6379 that every other suite uses.
 *
 * ```ts
 * const redis = await startPrivateRedis();
 * const db = await startPrivatePostgres();
 * try {
 *   await db.stop(); // an outage
 *   await db.start(); // back on the same port
 * } finally {
 *   await Promise.all([redis.destroy(), db.destroy()]);
 * }
 * ```
 *
 * Speed: instance folders live on tmpfs (/dev/shm) when it is writable, where `initdb` takes about
 * 0.4 s; on a disk-backed /tmp it takes seconds. An initdb template copied per instance was measured
 * and dropped: on tmpfs it saves little, and a template that outlives its test process (vitest ends
 * workers with SIGTERM, so no exit hook runs) would leak. Instead, every start sweeps the folders
 * (and servers) of test processes that died without calling `destroy`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync, statSync } from "node:fs";
import {
  appendFile,
  chmod,
  chown,
  copyFile,
  mkdtemp,
  readFile,
  readlink,
  rm,
  writeFile,
} from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import { freePort } from "./ports.ts";

const run = promisify(execFile);

export interface PrivateRedis {
  /** `redis://127.0.0.1:<port>/0` */
  readonly url: string;
  readonly port: number;
  /** The instance's temp folder (working directory, pid file and log). */
  readonly dir: string;
  /** Pid of the running server, or undefined while it is stopped. */
  pid(): number | undefined;
  /** Graceful stop (SIGTERM; nothing is persisted). Resolves once the process has exited. */
  stop(): Promise<void>;
  /** Hard crash (SIGKILL). Resolves once the process has exited. */
  kill(): Promise<void>;
  /** Starts the server again on the same port (empty: nothing was persisted). Resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops the server if it runs and removes its temp folder. Idempotent. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** The instance's temp folder (data directory, unix socket and log). */
  readonly dir: string;
  /** Pid of the postmaster, or undefined while it is stopped. */
  pid(): number | undefined;
  /** `pg_ctl stop -m fast` (default) or `-m immediate` (a crash: no checkpoint, recovery on the next start). */
  stop(opts?: { mode?: "fast" | "immediate" }): Promise<void>;
  /** Starts the server again on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server immediately if it runs and removes its temp folder. Idempotent. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** True while `pid` is a running process (a zombie waiting to be reaped counts as gone). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..." — the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

// ---------------------------------------------------------------------------------------------------
// Folders

/** tmpfs when available (PostgreSQL's initdb is several times faster there), else the OS temp dir. */
function baseDir(): string {
  try {
    accessSync("/dev/shm", constants.W_OK);
    if (statSync("/dev/shm").isDirectory()) return "/dev/shm";
  } catch {
    // No usable tmpfs.
  }
  return tmpdir();
}

/** Kinds of private instances, each folder named `eo-<kind>-<owner pid>-…`. */
export type InstanceKind = "redis" | "pg" | "pgbouncer";

/** Folder names carry the owning test process's pid, so a later run can sweep what a dead one left. */
export async function makeInstanceDir(kind: InstanceKind): Promise<string> {
  return mkdtemp(join(baseDir(), `eo-${kind}-${process.pid}-`));
}

/** Folders of `kind` whose owning test process is gone. */
export function orphanedDirs(kind: InstanceKind): string[] {
  const base = baseDir();
  const pattern = new RegExp(`^eo-${kind}-(\\d+)-`);
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const owner = pattern.exec(name)?.[1];
    return owner !== undefined && !isProcessAlive(Number(owner)) ? [join(base, name)] : [];
  });
}

// ---------------------------------------------------------------------------------------------------
// Redis

/** Finds redis-server (or valkey-server) on PATH. */
function redisServerBinary(): string {
  const found = findOnPath("redis-server") ?? findOnPath("valkey-server");
  if (!found) throw new Error("redis-server (or valkey-server) is not on PATH: apt-get install redis-server");
  return found;
}

/** Kills redis servers and removes folders left by test processes that died without `destroy`. */
async function sweepOrphanedRedis(): Promise<void> {
  for (const dir of orphanedDirs("redis")) {
    const pid = Number((await readFile(join(dir, "redis.pid"), "utf8").catch(() => "")).trim());
    // Only a process that really is the server of this folder (redis-server works inside its --dir;
    // it rewrites its command line, so that cannot tell).
    if (pid > 0 && isProcessAlive(pid) && (await readlink(`/proc/${pid}/cwd`).catch(() => "")) === dir) {
      process.kill(pid, "SIGKILL");
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Starts a private redis-server on a free loopback port, without persistence, with its working
 * folder in a temp dir. Call `destroy()` (or `await using`) when done.
 */
export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const bin = redisServerBinary();
  await sweepOrphanedRedis();
  const dir = await makeInstanceDir("redis");
  const port = options.port ?? (await freePort());
  const tls = options.tls;
  // With TLS the port speaks TLS only (no plain-text port).
  const listen = tls
    ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        tls.certFile,
        "--tls-key-file",
        tls.keyFile,
        "--tls-ca-cert-file",
        tls.caFile,
        "--tls-auth-clients",
        "no",
      ]
    : ["--port", String(port)];
  const server = await superviseProcess({
    what: `redis-server on port ${port}`,
    dir,
    spawnServer: () =>
      spawn(
        bin,
        [
          ...listen,
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "no",
          "--dir",
          dir,
          "--pidfile",
          join(dir, "redis.pid"),
          "--logfile",
          join(dir, "redis.log"),
          "--daemonize",
          "no",
          ...(options.args ?? []),
        ],
        { stdio: "ignore" },
      ),
    ready: () => (tls ? redisTlsPing(port, tls.caFile) : redisPing(port)),
    logTail: () => readTail(join(dir, "redis.log")),
  });
  return {
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}/0`,
    port,
    dir,
    ...server,
    [Symbol.asyncDispose]: server.destroy,
  };
}

/** Options of {@link startPrivateRedis}. */
export interface PrivateRedisOptions {
  /** The port (default: a free one). */
  readonly port?: number;
  /** More server arguments (`--cluster-enabled yes`, …), after the defaults. */
  readonly args?: readonly string[];
  /**
   * Serve TLS only, with this certificate and key (the CA for `--tls-ca-cert-file`; clients are not
   * asked for a certificate).
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

/** Resolves true when a RESP PING over TLS (trusting `caFile`) answers +PONG. */
function redisTlsPing(port: number, caFile: string): Promise<boolean> {
  return redisPing(port, () => tlsConnect({ port, host: "127.0.0.1", ca: readFileSync(caFile) }));
}

/** Resolves true when a RESP PING on the port answers +PONG. */
function redisPing(port: number, open: () => Socket = () => connect(port, "127.0.0.1")): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = open();
    let buf = "";
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("error", () => done(false));
    sock.on(sock instanceof TLSSocket ? "secureConnect" : "connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

interface PgToolchain {
  initdb: string;
  pgCtl: string;
  /** Wraps a command so it runs as the `postgres` OS user when this process is root (postgres refuses root). */
  asPostgres: (file: string, args: string[]) => { file: string; args: string[] };
  /** uid/gid that must own the instance folders, when running as root. */
  owner?: { uid: number; gid: number };
}

let toolchain: Promise<PgToolchain> | undefined;

/** Resolved once per process; a failure is not cached, so a later call retries. */
function pgToolchain(): Promise<PgToolchain> {
  if (!toolchain) {
    toolchain = resolveToolchain();
    toolchain.catch(() => {
      toolchain = undefined;
    });
  }
  return toolchain;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Directories that may hold initdb and pg_ctl, best first: PG_BINDIR, `pg_config --bindir`, Debian's layout. */
async function pgBinDirCandidates(): Promise<string[]> {
  const dirs: string[] = [];
  if (process.env["PG_BINDIR"]) dirs.push(process.env["PG_BINDIR"]);
  try {
    const { stdout } = await run("pg_config", ["--bindir"]);
    dirs.push(stdout.trim());
  } catch {
    // No pg_config on PATH: the other candidates decide.
  }
  try {
    const versions = readdirSync("/usr/lib/postgresql")
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(join("/usr/lib/postgresql", v, "bin"));
  } catch {
    // Not a Debian-style install.
  }
  return dirs;
}

async function resolveToolchain(): Promise<PgToolchain> {
  let initdb: string | undefined;
  let pgCtl: string | undefined;
  for (const dir of await pgBinDirCandidates()) {
    if (isExecutable(join(dir, "initdb")) && isExecutable(join(dir, "pg_ctl"))) {
      initdb = join(dir, "initdb");
      pgCtl = join(dir, "pg_ctl");
      break;
    }
  }
  initdb ??= findOnPath("initdb");
  pgCtl ??= findOnPath("pg_ctl");
  if (!initdb || !pgCtl) {
    throw new Error(
      "initdb/pg_ctl not found (looked in PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH): apt-get install postgresql",
    );
  }
  if (process.getuid?.() !== 0) {
    return { initdb, pgCtl, asPostgres: (file, args) => ({ file, args }) };
  }
  // PostgreSQL refuses to run as root: run initdb and pg_ctl as the `postgres` OS user, which then
  // owns the instance folder. runuser (util-linux) needs no password and no shell; su is the fallback.
  const id = async (flag: string) => Number((await run("id", [flag, "postgres"])).stdout.trim());
  const [uid, gid] = await Promise.all([id("-u"), id("-g")]).catch(() => [Number.NaN, Number.NaN]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error("running as root, but there is no `postgres` OS user to run PostgreSQL as");
  }
  const runuser =
    findOnPath("runuser") ?? (isExecutable("/usr/sbin/runuser") ? "/usr/sbin/runuser" : undefined);
  const asPostgres = runuser
    ? (file: string, args: string[]) => ({ file: runuser, args: ["-u", "postgres", "--", file, ...args] })
    : (file: string, args: string[]) => ({
        file: "su",
        args: ["postgres", "-s", "/bin/sh", "-c", [file, ...args].map(shellQuote).join(" ")],
      });
  return { initdb, pgCtl, asPostgres, owner: { uid: uid!, gid: gid! } };
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

async function runPg(tc: PgToolchain, file: string, args: string[]): Promise<string> {
  const cmd = tc.asPostgres(file, args);
  try {
    const { stdout } = await run(cmd.file, cmd.args, { maxBuffer: 4 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(`${[file, ...args].join(" ")} failed: ${e.stderr || e.message}`);
  }
}

function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    // A postmaster killed with SIGKILL leaves its pid file behind: only a live process counts.
    return Number.isInteger(pid) && pid > 0 && isProcessAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops the servers and removes the folders of test processes that died without `destroy`. */
async function sweepOrphanedPostgres(tc: PgToolchain): Promise<void> {
  for (const dir of orphanedDirs("pg")) {
    const data = join(dir, "data");
    if (readPostmasterPid(data) !== undefined) {
      await runPg(tc, tc.pgCtl, ["-D", data, "-w", "-m", "immediate", "stop"]).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** Options of {@link startPrivatePostgres}. */
export interface PrivatePostgresOptions {
  /**
   * Serve TLS (`ssl = on`) with this certificate and key (PEM; test/support/tls.ts makes them). The
   * files are copied into the instance folder, owned by the server's user.
   */
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    /** Accept TCP connections over TLS only (`hostssl` lines in pg_hba.conf, no `host` ones). */
    readonly requireTls?: boolean;
  };
  /** Loopback addresses to listen on (default 127.0.0.1); the URL names the first. */
  readonly listenAddresses?: readonly string[];
}

/**
 * Starts a throwaway PostgreSQL cluster (its own `initdb`) on a free loopback port: trust auth,
 * fsync off, its unix socket in its own folder, database `postgres`; with `options.tls`, TLS too.
 * When this process is root, the server runs as the `postgres` OS user (via runuser, else su).
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const listen = options.listenAddresses ?? ["127.0.0.1"];
  const tc = await pgToolchain();
  await sweepOrphanedPostgres(tc);
  const dir = await makeInstanceDir("pg");
  if (tc.owner) await chown(dir, tc.owner.uid, tc.owner.gid);
  const data = join(dir, "data");
  const logFile = join(dir, "postgres.log");
  let destroyed = false;

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    if (readPostmasterPid(data) !== undefined) {
      await runPg(tc, tc.pgCtl, ["-D", data, "-w", "-m", "immediate", "stop"]).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error("private postgres was destroyed");
    if (readPostmasterPid(data) !== undefined) return;
    try {
      await runPg(tc, tc.pgCtl, ["-D", data, "-l", logFile, "-w", "-t", "30", "start"]);
    } catch (err) {
      throw new Error(`${String(err)}\n${readTail(logFile)}`);
    }
  };

  let port = 0;
  try {
    await runPg(tc, tc.initdb, [
      "-D",
      data,
      "-U",
      "postgres",
      "-A",
      "trust",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ]);
    port = await freePort();
    const settings = [
      `listen_addresses = '${listen.join(",")}'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      "fsync = off",
      "synchronous_commit = off",
      "full_page_writes = off",
      "max_connections = 100",
    ];
    if (options.tls) settings.push(...(await installTls(tc, data, options.tls)));
    await appendFile(join(data, "postgresql.conf"), `\n# private test instance\n${settings.join("\n")}\n`);
    await start();
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    url: `postgres://postgres@${listen[0]}:${port}/postgres`,
    port,
    dir,
    pid: () => readPostmasterPid(data),
    async stop(opts) {
      if (readPostmasterPid(data) === undefined) return;
      await runPg(tc, tc.pgCtl, ["-D", data, "-w", "-t", "30", "-m", opts?.mode ?? "fast", "stop"]);
    },
    start,
    destroy,
    [Symbol.asyncDispose]: destroy,
  };
}

/**
 * Copies the server certificate and key into the data directory (the key readable by the server's
 * user only, as PostgreSQL demands) and returns the settings that serve them. With `requireTls`,
 * pg_hba.conf lets TCP clients in over TLS only.
 */
async function installTls(
  tc: PgToolchain,
  data: string,
  tls: NonNullable<PrivatePostgresOptions["tls"]>,
): Promise<string[]> {
  const cert = join(data, "server.crt");
  const key = join(data, "server.key");
  await copyFile(tls.certFile, cert);
  await copyFile(tls.keyFile, key);
  await chmod(key, 0o600);
  if (tc.owner) {
    await chown(cert, tc.owner.uid, tc.owner.gid);
    await chown(key, tc.owner.uid, tc.owner.gid);
  }
  if (tls.requireTls) {
    const hba = ["local all all trust", "hostssl all all 127.0.0.0/8 trust", "hostssl all all ::1/128 trust"];
    await writeFile(join(data, "pg_hba.conf"), `${hba.join("\n")}\n`);
    if (tc.owner) await chown(join(data, "pg_hba.conf"), tc.owner.uid, tc.owner.gid);
  }
  return ["ssl = on", `ssl_cert_file = '${cert}'`, `ssl_key_file = '${key}'`];
}

/** A server process a test can stop, kill and start again (same port, same folder). */
export interface RestartableProcess {
  /** Starts the server (no-op while it runs); resolves once `ready` says so. */
  start(): Promise<void>;
  /** Graceful stop (SIGTERM); resolves once the process has exited. */
  stop(): Promise<void>;
  /** Hard crash (SIGKILL); resolves once the process has exited. */
  kill(): Promise<void>;
  /** Kills the server if it runs and removes `dir`. Idempotent. */
  destroy(): Promise<void>;
  pid(): number | undefined;
}

/**
 * Runs `spawnServer()` and waits for `ready()`, now and at every `start()`; a server that does not
 * get ready in 10 s is killed and the error names `what` (plus `logTail()`). Started once before it
 * resolves: a first start that fails removes `dir` and throws.
 */
export async function superviseProcess(options: {
  readonly what: string;
  readonly dir: string;
  readonly spawnServer: () => ChildProcess;
  readonly ready: () => Promise<boolean>;
  readonly logTail?: () => string;
}): Promise<RestartableProcess> {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error(`${options.what} was destroyed`);
    if (child) return;
    const proc = options.spawnServer();
    child = proc;
    exited = new Promise((resolve) => {
      proc.once("exit", () => {
        if (child === proc) child = undefined;
        resolve();
      });
    });
    proc.once("error", () => {
      // Spawn failures surface as the readiness timeout below, with the server's log.
    });
    try {
      await waitFor(options.ready, { timeoutMs: 10_000, what: options.what });
    } catch (err) {
      proc.kill("SIGKILL");
      await exited;
      const tail = options.logTail?.() ?? "";
      throw new Error(tail ? `${String(err)}\n${tail}` : String(err));
    }
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill(sig);
    await exited;
  };

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    await signal("SIGKILL");
    await rm(options.dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (err) {
    await destroy();
    throw err;
  }
  return {
    start,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    destroy,
    pid: () => child?.pid,
  };
}

// ---------------------------------------------------------------------------------------------------

export async function waitFor(
  probe: () => Promise<boolean>,
  { timeoutMs, what }: { timeoutMs: number; what: string },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function readTail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "";
  }
}
