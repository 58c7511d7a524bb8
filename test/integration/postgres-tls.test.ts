/**
 * TLS to PostgreSQL as runtime/pgTls.ts sets it up, against real private servers serving a
 * throwaway CA's certificate (for 127.0.0.1 and localhost): each sslmode's promise is checked on
 * the wire (pg_stat_ssl), and the refusals (wrong CA, wrong host name, plain text to a TLS-only
 * server) are real handshake or pg_hba failures. The shared server on 5432 is not touched.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgConnectionConfig } from "../../runtime/pgTls.ts";
import { type PrivatePostgres, startPrivatePostgres } from "../support/privateServices.ts";
import { createTestPki, type TestPki } from "../support/tls.ts";

let pki: TestPki;
/** TLS on, plain text allowed too; listens on 127.0.0.1 (in the certificate) and 127.0.0.2 (not). */
let tlsServer: PrivatePostgres;
/** TLS on, pg_hba lets TCP clients in over TLS only. */
let tlsOnly: PrivatePostgres;
/** No TLS at all. */
let plain: PrivatePostgres;

beforeAll(async () => {
  pki = await createTestPki();
  const tls = { certFile: pki.certFile, keyFile: pki.keyFile };
  [tlsServer, tlsOnly, plain] = await Promise.all([
    startPrivatePostgres({ tls, listenAddresses: ["127.0.0.1", "127.0.0.2"] }),
    startPrivatePostgres({ tls: { ...tls, requireTls: true } }),
    startPrivatePostgres(),
  ]);
});
afterAll(async () => {
  await Promise.all([tlsServer?.destroy(), tlsOnly?.destroy(), plain?.destroy()]);
  await pki?.destroy();
});

/** The URL of `server` with `query` and the host replaced by `host`. */
function url(server: PrivatePostgres, query: string, host = "127.0.0.1"): string {
  return `postgres://postgres@${host}:${server.port}/postgres${query ? `?${query}` : ""}`;
}

/** Connects as pgConnectionConfig says and returns whether the session is encrypted (pg_stat_ssl). */
async function sessionSsl(connectionString: string, caFile?: string): Promise<boolean> {
  const client = new pg.Client({
    ...pgConnectionConfig(connectionString, { caFile }),
    connectionTimeoutMillis: 5000,
  });
  client.on("error", () => {
    // A refused handshake rejects connect() below.
  });
  try {
    await client.connect();
    const { rows } = await client.query<{ ssl: boolean }>(
      "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    return rows[0]!.ssl;
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe("PostgreSQL over TLS (runtime/pgTls.ts)", () => {
  it("verify-full with the right CA connects, encrypted", async () => {
    expect(await sessionSsl(url(tlsServer, "sslmode=verify-full"), pki.caFile)).toBe(true);
    // The URL's sslrootcert does the same without TLS_CA_FILE, and by host name.
    const rootcert = `sslmode=verify-full&sslrootcert=${encodeURIComponent(pki.caFile)}`;
    expect(await sessionSsl(url(tlsServer, rootcert, "localhost"))).toBe(true);
  });

  it("refuses a server whose certificate another CA signed", async () => {
    await expect(sessionSsl(url(tlsServer, "sslmode=verify-full"), pki.otherCaFile)).rejects.toThrow(
      /self[- ]signed certificate|unable to (get local issuer|verify)/,
    );
    await expect(sessionSsl(url(tlsServer, "sslmode=verify-ca"), pki.otherCaFile)).rejects.toThrow(
      /self[- ]signed certificate|unable to (get local issuer|verify)/,
    );
    // require with a CA checks the chain (libpq's rule), so the wrong CA is refused there too.
    await expect(sessionSsl(url(tlsServer, "sslmode=require"), pki.otherCaFile)).rejects.toThrow(
      /self[- ]signed certificate|unable to (get local issuer|verify)/,
    );
  });

  it("verify-full refuses a host name the certificate does not hold; verify-ca accepts it", async () => {
    const other = url(tlsServer, "sslmode=verify-full", "127.0.0.2");
    await expect(sessionSsl(other, pki.caFile)).rejects.toThrow(
      /IP: 127\.0\.0\.2 is not in the cert's list|does not match certificate's altnames/,
    );
    expect(await sessionSsl(url(tlsServer, "sslmode=verify-ca", "127.0.0.2"), pki.caFile)).toBe(true);
  });

  it("require without a CA connects encrypted, checking nothing", async () => {
    expect(await sessionSsl(url(tlsServer, "sslmode=require", "127.0.0.2"))).toBe(true);
    expect(await sessionSsl(url(tlsServer, "sslmode=prefer"))).toBe(true);
    expect(await sessionSsl(url(tlsServer, "sslmode=allow"))).toBe(true);
  });

  it("disable (and no sslmode) is plain text, even with TLS_CA_FILE set", async () => {
    expect(await sessionSsl(url(tlsServer, "sslmode=disable"), pki.caFile)).toBe(false);
    expect(await sessionSsl(url(tlsServer, ""), pki.caFile)).toBe(false);
  });

  it("ignores sslmode on the server's Unix-domain socket, as libpq does", async () => {
    const socket = `postgres://postgres@/postgres?host=${encodeURIComponent(tlsServer.dir)}&port=${tlsServer.port}`;
    expect(await sessionSsl(`${socket}&sslmode=verify-full`)).toBe(false);
  });

  it("a TLS-only server (hostssl) refuses a disable client and takes a verify-full one", async () => {
    await expect(sessionSsl(url(tlsOnly, "sslmode=disable"))).rejects.toThrow(
      /no pg_hba\.conf entry for host "127\.0\.0\.1".*no encryption/,
    );
    expect(await sessionSsl(url(tlsOnly, "sslmode=verify-full"), pki.caFile)).toBe(true);
  });

  it("prefer cannot fall back to plain text as libpq does: a server without TLS is refused", async () => {
    await expect(sessionSsl(url(plain, "sslmode=prefer"))).rejects.toThrow(
      "The server does not support SSL connections",
    );
    expect(await sessionSsl(url(plain, "sslmode=disable"))).toBe(false);
  });
});
