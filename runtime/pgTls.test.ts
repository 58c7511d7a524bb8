import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { ConnectionOptions } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../test/support/tls.ts";
import { PgTlsError, pgConnectionConfig } from "./pgTls.ts";

/** pg's own reading of a client config (connection string merged over the object), as a Client does. */
const ConnectionParameters = createRequire(import.meta.url)("pg/lib/connection-parameters.js") as new (
  config: object,
) => { ssl: unknown; host: string; database: string; application_name?: string };

let pki: TestPki;
let caPem: string;
beforeAll(async () => {
  pki = await createTestPki();
  caPem = readFileSync(pki.caFile, "utf8").trim();
});
afterAll(() => pki?.destroy());

const base = "postgres://app:hunter2@db.example:5432/app";

/** The TLS options of a result that encrypts. */
function tlsOf(cfg: ReturnType<typeof pgConnectionConfig>): ConnectionOptions {
  if (!cfg.ssl) throw new Error("expected TLS");
  return cfg.ssl;
}

describe("pgConnectionConfig", () => {
  it("turns TLS off without sslmode and with sslmode=disable", () => {
    expect(pgConnectionConfig(base)).toEqual({ connectionString: base, ssl: false });
    expect(pgConnectionConfig(`${base}?sslmode=disable`, { caFile: pki.caFile })).toEqual({
      connectionString: base,
      ssl: false,
    });
  });

  it("encrypts without checking the certificate for allow and prefer, even with a CA", () => {
    for (const mode of ["allow", "prefer"]) {
      expect(pgConnectionConfig(`${base}?sslmode=${mode}`, { caFile: pki.caFile }).ssl).toEqual({
        rejectUnauthorized: false,
      });
    }
  });

  it("encrypts without a check for require without a CA, and checks the chain only with one", () => {
    expect(pgConnectionConfig(`${base}?sslmode=require`).ssl).toEqual({ rejectUnauthorized: false });
    const withCa = tlsOf(pgConnectionConfig(`${base}?sslmode=require`, { caFile: pki.caFile }));
    expect(withCa).toMatchObject({ ca: caPem });
    expect(withCa.rejectUnauthorized).toBeUndefined(); // Node's default: true
    expect(withCa.checkServerIdentity?.("other.example", {} as never)).toBeUndefined();
  });

  it("checks the chain and not the host for verify-ca, both for verify-full", () => {
    const ca = tlsOf(pgConnectionConfig(`${base}?sslmode=verify-ca`, { caFile: pki.caFile }));
    expect(ca).toMatchObject({ ca: caPem });
    expect(ca.checkServerIdentity?.("other.example", {} as never)).toBeUndefined();
    expect(pgConnectionConfig(`${base}?sslmode=verify-full`, { caFile: pki.caFile }).ssl).toEqual({
      ca: caPem,
    });
  });

  it("prefers the URL's sslrootcert to TLS_CA_FILE", async () => {
    const other = readFileSync(pki.otherCaFile, "utf8").trim();
    const cfg = pgConnectionConfig(
      `${base}?sslmode=verify-full&sslrootcert=${encodeURIComponent(pki.otherCaFile)}`,
      {
        caFile: pki.caFile,
      },
    );
    expect(cfg).toEqual({ connectionString: base, ssl: { ca: other } });
  });

  it("trusts the public roots for sslrootcert=system, only with verify-full", () => {
    expect(pgConnectionConfig(`${base}?sslrootcert=system`).ssl).toEqual({});
    expect(pgConnectionConfig(`${base}?sslrootcert=system&sslmode=verify-full`).ssl).toEqual({});
    expect(() => pgConnectionConfig(`${base}?sslrootcert=system&sslmode=require`)).toThrow(
      "sslrootcert=system requires sslmode=verify-full (got sslmode=require)",
    );
  });

  it.each([
    ["a host parameter", "postgres://app:hunter2@/app?host=/run/postgresql&sslmode=verify-full"],
    ["a percent-encoded host", "postgres://app:hunter2@%2Frun%2Fpostgresql/app?sslmode=require"],
  ])("ignores sslmode on a Unix-domain socket, as libpq does (%s)", (_, url) => {
    const cfg = pgConnectionConfig(url);
    expect(cfg.ssl).toBe(false);
    expect(cfg.connectionString).not.toContain("sslmode");
    // An unknown mode is still refused.
    expect(() => pgConnectionConfig(url.replace(/sslmode=[a-z-]+/, "sslmode=bogus"))).toThrow(
      "sslmode: unknown value",
    );
  });

  it("keeps every other parameter as written, in order", () => {
    const url = `${base}?application_name=a%20b&sslmode=verify-full&options=-c%20x%3Dy&sslrootcert=${pki.caFile}#frag`;
    expect(pgConnectionConfig(url).connectionString).toBe(
      `${base}?application_name=a%20b&options=-c%20x%3Dy#frag`,
    );
    expect(pgConnectionConfig(`${base}?sslmode=require&sslsni=1`).connectionString).toBe(`${base}?sslsni=1`);
  });

  it.each([
    ["an unknown sslmode", "sslmode=verify", 'DATABASE_URL: sslmode: unknown value "verify"'],
    ["node-postgres's own no-verify", "sslmode=no-verify", 'sslmode: unknown value "no-verify"'],
    ["an sslmode twice", "sslmode=disable&sslmode=verify-full", "sslmode is given twice"],
    ["pg's ssl parameter", "ssl=true", 'the "ssl" parameter is not supported: use sslmode'],
    ["uselibpqcompat", "uselibpqcompat=true&sslmode=require", 'the "uselibpqcompat" parameter'],
    ["a client certificate", "sslmode=require&sslcert=/c.pem", 'the "sslcert" parameter is not supported'],
    ["a revocation list", "sslmode=verify-full&sslcrl=/crl.pem", 'the "sslcrl" parameter'],
    ["direct TLS negotiation", "sslmode=require&sslnegotiation=direct", 'the "sslnegotiation" parameter'],
    ["verify-full without any CA", "sslmode=verify-full", "sslmode=verify-full needs a CA: set TLS_CA_FILE"],
    ["verify-ca without any CA", "sslmode=verify-ca", "sslmode=verify-ca needs a CA"],
    ["sslrootcert without sslmode", "sslrootcert=/etc/ca.pem", "sslrootcert is set but sslmode is not"],
    [
      "an unreadable sslrootcert",
      "sslmode=require&sslrootcert=/nonexistent/ca.pem",
      "sslrootcert: cannot read the CA file /nonexistent/ca.pem (ENOENT)",
    ],
  ])("refuses %s, naming the setting and never the password", (_, query, message) => {
    let error: unknown;
    try {
      pgConnectionConfig(`${base}?${query}`, { setting: "DATABASE_URL" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PgTlsError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).toMatch(/^DATABASE_URL: /);
    expect((error as Error).message).not.toContain("hunter2");
  });

  it("shows no sslmode value that may be part of a password", () => {
    expect(() => pgConnectionConfig(`${base}?sslmode=hunter2%40x`)).toThrow(
      /^sslmode: unknown value \(expected/,
    );
  });

  it("refuses a TLS_CA_FILE that is missing, empty or not a certificate, naming TLS_CA_FILE", async () => {
    const empty = join(pki.dir, "empty.pem");
    const garbled = join(pki.dir, "garbled.pem");
    await writeFile(empty, "");
    await writeFile(garbled, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const url = `${base}?sslmode=verify-full`;
    expect(() => pgConnectionConfig(url, { caFile: join(pki.dir, "missing.pem") })).toThrow(
      `TLS_CA_FILE: cannot read the CA file ${join(pki.dir, "missing.pem")} (ENOENT)`,
    );
    expect(() => pgConnectionConfig(url, { caFile: empty })).toThrow(
      `TLS_CA_FILE: ${empty} holds no PEM certificate`,
    );
    expect(() => pgConnectionConfig(url, { caFile: pki.keyFile })).toThrow("holds no PEM certificate");
    expect(() => pgConnectionConfig(url, { caFile: garbled })).toThrow(
      `TLS_CA_FILE: certificate 1 of ${garbled} does not parse`,
    );
    // A mode that needs no CA does not read it.
    expect(pgConnectionConfig(`${base}?sslmode=disable`, { caFile: empty }).ssl).toBe(false);
  });

  it("takes every certificate of a bundle", async () => {
    const bundle = join(pki.dir, "bundle.pem");
    await writeFile(
      bundle,
      `# comment\n${readFileSync(pki.caFile, "utf8")}\n${readFileSync(pki.otherCaFile, "utf8")}`,
    );
    const ssl = pgConnectionConfig(`${base}?sslmode=verify-full`, { caFile: bundle }).ssl;
    expect(ssl && typeof ssl.ca === "string" && ssl.ca.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });
});

describe("what pg makes of the result", () => {
  it.each([
    ["prefer", { rejectUnauthorized: false }],
    ["require", "chain"],
    ["verify-ca", "chain"],
    ["disable", false],
    [undefined, false],
  ])("keeps sslmode=%s as decided, whatever pg's own parse and PGSSLMODE say", (mode, expected) => {
    const url = `${base}?application_name=relay${mode ? `&sslmode=${mode}` : ""}`;
    const cfg = pgConnectionConfig(url, { caFile: pki.caFile });
    const saved = process.env["PGSSLMODE"];
    process.env["PGSSLMODE"] = "verify-full";
    try {
      const params = new ConnectionParameters({ ...cfg, max: 1 });
      // The very object decided here: pg's parse of the string no longer holds sslmode to override it.
      expect(params.ssl).toBe(cfg.ssl);
      if (expected === "chain") expect(params.ssl).toMatchObject({ ca: caPem });
      else expect(params.ssl).toEqual(expected);
      expect(params.host).toBe("db.example");
      expect(params.database).toBe("app");
      expect(params.application_name).toBe("relay");
    } finally {
      if (saved === undefined) delete process.env["PGSSLMODE"];
      else process.env["PGSSLMODE"] = saved;
    }
  });

  it("would be overridden by pg had the string kept its sslmode (why it is taken out)", () => {
    const cfg = pgConnectionConfig(`${base}?sslmode=require`);
    const params = new ConnectionParameters({ ...cfg, connectionString: `${base}?sslmode=require` });
    // pg 8 reads require as verify-full: the certificate would be checked after all.
    expect(params.ssl).not.toBe(cfg.ssl);
    expect(params.ssl).toEqual({});
  });
});
