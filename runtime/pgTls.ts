import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";

/**
 * The values of libpq's `sslmode`, weakest first. node-postgres cannot retry a connection with or
 * without TLS the way libpq does for `allow` and `prefer` (see {@link pgConnectionConfig}).
 */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;

/** One value of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/**
 * Connection-string parameters taken out of the string and decided here. Everything else stays in
 * the string exactly as it was written.
 */
const HANDLED = new Set(["sslmode", "sslrootcert"]);

/**
 * libpq parameters node-postgres ignores and whose libpq meaning needs no TLS setting here: SNI is
 * always sent for a host name (never for an IP address), and compression is long gone from
 * PostgreSQL. They are left in the string.
 */
const HARMLESS = new Set(["sslsni", "sslcompression"]);

/**
 * A TLS setting of a PostgreSQL connection that cannot be honoured: an unknown `sslmode`, a CA file
 * that cannot be read or holds no certificate, a parameter this module does not support. Its
 * message names the setting (the URL's parameter or `TLS_CA_FILE`) and never holds the connection
 * string or a part of its password.
 */
export class PgTlsError extends Error {
  override readonly name = "PgTlsError";
}

/** What {@link pgConnectionConfig} returns: spread it into `new pg.Pool({...})` or `new pg.Client({...})`. */
export interface PgConnectionConfig {
  /** The connection string without its `sslmode` and `sslrootcert` parameters. */
  readonly connectionString: string;
  /**
   * pg's `ssl` option: `false` for no TLS, else the options of Node's `tls.connect`. Always set, so
   * neither pg's `PGSSLMODE` environment fallback nor the string (which no longer holds the
   * parameters) can change it.
   */
  readonly ssl?: ConnectionOptions | false;
}

/** Options of {@link pgConnectionConfig}. */
export interface PgTlsOptions {
  /**
   * A PEM bundle of the CA certificates to trust (env `TLS_CA_FILE`) when the URL names none with
   * `sslrootcert`. Unused when the URL's `sslmode` needs no CA.
   */
  readonly caFile?: string | undefined;
  /** The setting the connection string came from (`DATABASE_URL`), prefixed to error messages. */
  readonly setting?: string | undefined;
}

/**
 * What to pass to node-postgres so that TLS follows the connection string's `sslmode` with libpq's
 * meaning (https://www.postgresql.org/docs/current/libpq-ssl.html):
 *
 * | sslmode        | TLS | certificate chain                          | host name |
 * |----------------|-----|--------------------------------------------|-----------|
 * | (none)         | no  |                                            |           |
 * | disable        | no  |                                            |           |
 * | allow, prefer  | yes | not checked                                | no        |
 * | require        | yes | checked only when a CA is given            | no        |
 * | verify-ca      | yes | checked against the CA (required)          | no        |
 * | verify-full    | yes | checked against the CA (required)          | checked   |
 *
 * The CA is the file named by the URL's `sslrootcert=<path>`, else `options.caFile` (`TLS_CA_FILE`).
 * `sslrootcert=system` trusts Node's bundled public root CAs instead and, as in libpq, requires
 * `verify-full` (the default then). With a CA, only that CA is trusted (Node's bundled roots are not).
 *
 * Where node-postgres differs from libpq:
 * - no `sslmode` means no TLS (node-postgres's default; libpq's default is `prefer`), and pg's
 *   `PGSSLMODE` variable is not read: put `sslmode` in the URL;
 * - `allow` and `prefer` cannot fall back: node-postgres makes one attempt. Both encrypt without
 *   checking the certificate, so a server without TLS is refused ("The server does not support SSL
 *   connections"), where libpq would connect in plain text;
 * - on a Unix-domain socket `sslmode` is ignored, as libpq ignores it (no TLS there);
 * - `verify-ca` and `verify-full` without any CA are refused here, as libpq refuses them when its
 *   default root file (~/.postgresql/root.crt) is missing; node-postgres alone would trust its
 *   bundled public roots.
 *
 * node-postgres reads `sslmode` itself, with other meanings (pg 8 treats `require` and `verify-ca`
 * as `verify-full` unless `uselibpqcompat=true`), and merges what it parses from the string over
 * the config object: so the TLS parameters are taken out of the string returned, and the ones this
 * module does not handle are refused rather than left for pg to act on (`ssl`, `uselibpqcompat`,
 * `sslnegotiation`, client certificates `sslcert`/`sslkey`, `sslcrl` …).
 *
 * Reads the CA file (synchronously) at each call: call it when a pool is created.
 *
 * @throws PgTlsError naming the setting for an unknown `sslmode`, an unreadable CA file, a mode that
 *   needs a CA without one, or an unsupported TLS parameter
 */
export function pgConnectionConfig(connectionString: string, options: PgTlsOptions = {}): PgConnectionConfig {
  const prefix = options.setting ? `${options.setting}: ` : "";
  const fail = (message: string): never => {
    throw new PgTlsError(`${prefix}${message}`);
  };
  const { kept, params } = splitTlsParams(connectionString, fail);
  const rootcert = params.get("sslrootcert");
  const rawMode = params.get("sslmode");
  let mode: SslMode | undefined;
  if (rawMode !== undefined) {
    if (!(SSL_MODES as readonly string[]).includes(rawMode)) {
      // The value is shown only when it looks like a mode: in a malformed URL it may hold part of a password.
      const shown = /^[a-z-]{1,20}$/.test(rawMode) ? ` "${rawMode}"` : "";
      fail(`sslmode: unknown value${shown} (expected one of ${SSL_MODES.join(", ")})`);
    }
    mode = rawMode as SslMode;
  }
  // libpq ignores sslmode on a Unix-domain socket, where PostgreSQL serves no TLS; so does this
  // (node-postgres would ask for TLS there and be refused).
  if (isUnixSocket(connectionString)) return { connectionString: kept, ssl: false };

  if (rootcert === "system") {
    // libpq (16+): the system's roots are only worth trusting with the host name checked.
    if (mode !== undefined && mode !== "verify-full") {
      fail(`sslrootcert=system requires sslmode=verify-full (got sslmode=${mode})`);
    }
    return { connectionString: kept, ssl: {} };
  }
  if (mode === undefined) {
    if (rootcert !== undefined) {
      fail("sslrootcert is set but sslmode is not: add sslmode=verify-full (or verify-ca, require)");
    }
    return { connectionString: kept, ssl: false };
  }
  if (mode === "disable") return { connectionString: kept, ssl: false };
  if (mode === "allow" || mode === "prefer") {
    // libpq checks no certificate in these modes, even with a CA at hand.
    return { connectionString: kept, ssl: { rejectUnauthorized: false } };
  }

  const ca =
    rootcert !== undefined
      ? readCaBundle(rootcert, "sslrootcert", fail)
      : options.caFile
        ? readCaBundle(options.caFile, "TLS_CA_FILE", fail)
        : undefined;
  switch (mode) {
    case "require":
      // libpq: with a root CA at hand, require checks the chain as verify-ca does.
      return {
        connectionString: kept,
        ssl: ca === undefined ? { rejectUnauthorized: false } : { ca, checkServerIdentity: skipHostCheck },
      };
    case "verify-ca":
    case "verify-full":
      if (ca === undefined) {
        fail(
          `sslmode=${mode} needs a CA: set TLS_CA_FILE to a PEM bundle, or add sslrootcert=<path> ` +
            "(sslrootcert=system trusts the public root CAs, with verify-full)",
        );
      }
      return {
        connectionString: kept,
        ssl: mode === "verify-ca" ? { ca, checkServerIdentity: skipHostCheck } : { ca },
      };
  }
}

/**
 * Whether the connection goes to a Unix-domain socket, as node-postgres decides it: the string is a
 * socket path, or its host (the `host` parameter, else the host part, percent-decoded) starts with
 * `/` (`postgres:///app?host=/run/postgresql`, `postgres://%2Frun%2Fpostgresql/app`).
 */
function isUnixSocket(connectionString: string): boolean {
  if (connectionString.startsWith("/") || /^socket:/i.test(connectionString)) return true;
  const q = connectionString.indexOf("?");
  if (q >= 0) {
    const host = new URLSearchParams(connectionString.slice(q + 1).split("#")[0]).get("host");
    if (host !== null) return host.startsWith("/");
  }
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(connectionString)?.[1] ?? "";
  try {
    return decodeURIComponent(authority.slice(authority.lastIndexOf("@") + 1)).startsWith("/");
  } catch {
    return false;
  }
}

/** verify-ca: the chain is checked (rejectUnauthorized stays on), the host name is not. */
function skipHostCheck(): undefined {
  return undefined;
}

/**
 * Takes `sslmode` and `sslrootcert` out of the connection string's query, leaving every other byte
 * as written, and refuses the TLS parameters node-postgres would act on in its own way. The query
 * starts at the first `?` and ends at `#`, as the URL parser node-postgres uses reads it.
 */
function splitTlsParams(
  connectionString: string,
  fail: (message: string) => never,
): { kept: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  const q = connectionString.indexOf("?");
  if (q < 0) return { kept: connectionString, params };
  const hash = connectionString.indexOf("#", q);
  const end = hash < 0 ? connectionString.length : hash;
  const kept: string[] = [];
  for (const segment of connectionString.slice(q + 1, end).split("&")) {
    if (segment === "") continue;
    const entry = [...new URLSearchParams(segment)][0];
    const name = entry?.[0] ?? "";
    if (HANDLED.has(name)) {
      if (params.has(name)) fail(`${name} is given twice`);
      params.set(name, entry?.[1] ?? "");
    } else if (name === "ssl" || name === "uselibpqcompat" || name === "requiressl") {
      fail(
        `the "${name}" parameter is not supported: use sslmode (disable, require, verify-ca or verify-full)`,
      );
    } else if (name.startsWith("ssl") && !HARMLESS.has(name)) {
      fail(`the "${name}" parameter is not supported (only sslmode and sslrootcert are)`);
    } else {
      kept.push(segment);
    }
  }
  const query = kept.length > 0 ? `?${kept.join("&")}` : "";
  return { kept: connectionString.slice(0, q) + query + connectionString.slice(end), params };
}

/**
 * The CA certificates of the PEM bundle at `path`, each checked to parse: what a process checks at
 * start for its `TLS_CA_FILE`, so a wrong file fails there rather than at the first handshake.
 *
 * @throws PgTlsError naming `setting` when the file cannot be read, holds no certificate, or one
 *   does not parse
 */
export function readCaFile(path: string, setting = "TLS_CA_FILE"): string {
  return readCaBundle(path, setting, (message) => {
    throw new PgTlsError(message);
  });
}

function readCaBundle(path: string, setting: string, fail: (message: string) => never): string {
  if (path === "") fail(`${setting}: empty path`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return fail(`${setting}: cannot read the CA file ${path} (${code})`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) fail(`${setting}: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      fail(`${setting}: certificate ${i + 1} of ${path} does not parse (${(err as Error).message})`);
    }
  });
  return blocks.join("\n");
}
