/**
 * The real `evaluator-operator` binary on bad usage: exit code 2 (as the evaluator's) and one line
 * on stderr naming the flag or setting, never a stack trace or a bare system error. Nothing here
 * reaches a cluster or a database: each case fails before connecting.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../../operator/bin/evaluator-operator.ts", import.meta.url));

/** Runs the binary to its exit with only `env` (plus PATH) in its environment. */
function runOperatorCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env["PATH"] ?? "", ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: unknown }).code as number | null) : 0;
        resolve({ code: typeof code === "number" ? code : null, stdout, stderr });
      },
    );
  });
}

const noPortsTaken = ["--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0"];

describe("evaluator-operator on bad usage", () => {
  it.each([
    [["run", "--bogus"], {}, "unknown option '--bogus'"],
    [["frobnicate"], {}, "unknown command 'frobnicate'"],
    [["run", "--resync-period=0s"], {}, "evaluator-operator: --resync-period: must be at least 1s"],
    [
      ["run", "--leader-election-lease-duration=5s"],
      {},
      "evaluator-operator: --leader-election-lease-duration: must be greater than --leader-election-renew-deadline",
    ],
    [
      ["run", "--metrics-bind-address", "bad host:8080"],
      {},
      "--metrics-bind-address: expected an IP address",
    ],
    [
      ["run", "--kubeconfig=/nonexistent", ...noPortsTaken],
      {},
      'evaluator-operator: --kubeconfig (or $KUBECONFIG): cannot load "/nonexistent": no such file',
    ],
    [
      ["run", ...noPortsTaken],
      { KUBECONFIG: "/nonexistent" },
      'evaluator-operator: --kubeconfig (or $KUBECONFIG): cannot load "/nonexistent": no such file',
    ],
    [["migrate", "up"], {}, "evaluator-operator: DATABASE_URL (--database-url): no database given"],
    [
      ["migrate", "up"],
      { DATABASE_URL: "mysql://app:hunter2@db.invalid/app" },
      'evaluator-operator: DATABASE_URL (--database-url): unsupported scheme "mysql:"',
    ],
    [
      [
        "shards",
        "status",
        "--shard-set",
        "iot/alerts",
        "--database-url",
        "mysql://app:hunter2@db.invalid/app",
      ],
      {},
      'unsupported scheme "mysql:"',
    ],
    [
      ["run", ...noPortsTaken],
      { TLS_CA_FILE: "/nonexistent/ca.crt" },
      "evaluator-operator: TLS_CA_FILE: cannot read the CA file /nonexistent/ca.crt (ENOENT)",
    ],
    [
      ["migrate", "up"],
      { DATABASE_URL: "postgres://app:hunter2@db.invalid/app?sslmode=verify" },
      'evaluator-operator: DATABASE_URL (--database-url): sslmode: unknown value "verify"',
    ],
    [
      ["events", "relay"],
      {
        DATABASE_URL: "postgres://app:hunter2@db.invalid/app?sslmode=verify-full",
        NATS_URL: "nats://127.0.0.1:4222",
      },
      "evaluator-operator: DATABASE_URL (--database-url): sslmode=verify-full needs a CA: set TLS_CA_FILE",
    ],
    [
      ["shards", "status", "--shard-set", "iot/alerts"],
      { DATABASE_URL: "postgres://app:hunter2@db.invalid/app?sslmode=require&sslcert=/tls/client.crt" },
      'evaluator-operator: DATABASE_URL (--database-url): the "sslcert" parameter is not supported',
    ],
  ] as [string[], Record<string, string>, string][])(
    "%j (env %j) exits 2 saying why",
    async (args, env, says) => {
      const result = await runOperatorCli(args, env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(says);
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(result.stderr).not.toContain("hunter2");
      expect(result.stderr).not.toMatch(/^evaluator-operator: ENOENT/m);
    },
  );

  it("exits 0 for --help", async () => {
    const result = await runOperatorCli(["run", "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("POD_NAME");
  });
});
