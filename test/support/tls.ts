/**
 * A throwaway public-key infrastructure for TLS tests, made with the `openssl` command line: a CA,
 * a server certificate signed by it for `localhost` and `127.0.0.1` (subject alternative names), and
 * a second, unrelated CA that signed nothing (a client trusting only it must refuse the server).
 * Keys are P-256 (quick to make); certificates are valid for two days.
 *
 * ```ts
 * await using pki = await createTestPki();
 * // server: pki.certFile + pki.keyFile; client: ca = pki.caFile (accepted) or pki.otherCaFile (refused)
 * ```
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestPki {
  /** The temp folder holding every file below (and the CA keys). */
  readonly dir: string;
  /** PEM certificate of the CA that signed the server certificate. */
  readonly caFile: string;
  /** PEM server certificate for {@link TestPkiOptions.dnsNames} and {@link TestPkiOptions.ipAddresses}. */
  readonly certFile: string;
  /** PEM private key of the server certificate (mode 0600). */
  readonly keyFile: string;
  /** PEM certificate of another CA, which signed nothing here. */
  readonly otherCaFile: string;
  /** Removes {@link dir}. Idempotent. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface TestPkiOptions {
  /** DNS names of the server certificate (default: localhost). */
  readonly dnsNames?: readonly string[];
  /** IP addresses of the server certificate (default: 127.0.0.1). */
  readonly ipAddresses?: readonly string[];
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message?: string; code?: string };
    if (e.code === "ENOENT") throw new Error("openssl is not on PATH: apt-get install openssl");
    throw new Error(`openssl ${args[0]} failed: ${e.stderr || e.message}`);
  }
}

/** A self-signed CA certificate and its key, named `<name>.crt` and `<name>.key` in `dir`. */
async function makeCa(dir: string, name: string): Promise<string> {
  await openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=evaluator-operator test ${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  return join(dir, `${name}.crt`);
}

/** Creates the CA, the server certificate and the other CA in a new temp folder. */
export async function createTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const dnsNames = options.dnsNames ?? ["localhost"];
  const ipAddresses = options.ipAddresses ?? ["127.0.0.1"];
  const dir = await mkdtemp(join(tmpdir(), "eo-pki-"));
  const destroy = () => rm(dir, { recursive: true, force: true });
  try {
    const [caFile, otherCaFile] = await Promise.all([makeCa(dir, "ca"), makeCa(dir, "other-ca")]);
    const san = [...dnsNames.map((n) => `DNS:${n}`), ...ipAddresses.map((ip) => `IP:${ip}`)].join(",");
    await writeFile(
      join(dir, "server.ext"),
      [
        `subjectAltName=${san}`,
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "",
      ].join("\n"),
    );
    await openssl(
      [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        `/CN=${dnsNames[0] ?? ipAddresses[0] ?? "server"}`,
      ],
      dir,
    );
    await openssl(
      [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
      ],
      dir,
    );
    return {
      dir,
      caFile,
      certFile: join(dir, "server.crt"),
      keyFile: join(dir, "server.key"),
      otherCaFile,
      destroy,
      [Symbol.asyncDispose]: destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}
