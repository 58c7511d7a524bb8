import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../config/configError.ts";
import { registerEventsCommand } from "./cli.ts";
import type { RelayConfig } from "./relayConfig.ts";

/** Parses `events relay <args>` and returns the compiled configuration (the relay is not run). */
async function compiled(args: string[], env: Record<string, string> = {}): Promise<RelayConfig> {
  let config: RelayConfig | undefined;
  const program = new Command("evaluator-operator").exitOverride().configureOutput({ writeErr: () => {} });
  registerEventsCommand(program, {
    env: { DATABASE_URL: "postgres://app:secret@db/app", NATS_URL: "nats://nats:4222", ...env },
    stdout: { write: () => true },
    shutdownSignal: new AbortController().signal,
    runRelay: async (c) => {
      config = c;
    },
  });
  await program.parseAsync(["events", "relay", ...args], { from: "user" });
  return config!;
}

describe("events relay settings", () => {
  it("compiles each database URL's TLS with TLS_CA_FILE, the TLS parameters out of the string", async () => {
    const c = await compiled([], {
      DATABASE_URL: "postgres://app:secret@pooler/app?sslmode=require&application_name=x",
      DIRECT_DATABASE_URL: "postgres://app:secret@db/app?sslmode=disable",
    });
    expect(c.database).toEqual({
      connectionString: "postgres://app:secret@pooler/app?application_name=x",
      ssl: { rejectUnauthorized: false },
    });
    expect(c.directDatabase).toEqual({ connectionString: "postgres://app:secret@db/app", ssl: false });
    await expect(compiled([], { TLS_CA_FILE: "/nonexistent/ca.pem" })).rejects.toThrow(
      new ConfigError("TLS_CA_FILE: cannot read the CA file /nonexistent/ca.pem (ENOENT)"),
    );
    await expect(
      compiled([], { DIRECT_DATABASE_URL: "postgres://app:secret@db/app?sslmode=verify-ca" }),
    ).rejects.toThrow("DIRECT_DATABASE_URL (--direct-database-url): sslmode=verify-ca needs a CA");
  });

  it("applies the documented defaults", async () => {
    const c = await compiled([]);
    expect(c.directDatabaseUrl).toBe(c.databaseUrl);
    expect(c.nats).toMatchObject({
      url: "nats://nats:4222",
      stream: "ALERT_EVENTS",
      subjectPrefix: "alerts.events",
      createStream: true,
      duplicateWindowMs: 120_000,
      publishTimeoutMs: 5000,
    });
    expect(c.relay).toMatchObject({
      name: "default",
      batchSize: 500,
      pollIntervalMs: 1000,
      backoff: { minMs: 100, maxMs: 30_000 },
      retentionMs: 168 * 3_600_000,
      pruneIntervalMs: 3_600_000,
    });
    expect(c.httpAddress).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("takes flags over variables, and --retention 0 turns the retention off", async () => {
    const c = await compiled(
      ["--nats-url", "tls://n:4443", "--no-create-stream", "--retention", "0", "--name", "pager"],
      { DIRECT_DATABASE_URL: "postgres://direct/app" },
    );
    expect(c.nats.url).toBe("tls://n:4443");
    expect(c.nats.createStream).toBe(false);
    expect(c.relay.retentionMs).toBe(0);
    expect(c.relay.name).toBe("pager");
    expect(c.directDatabaseUrl).toBe("postgres://direct/app");
  });

  it.each([
    [["--subject-prefix", "alerts.*"], "--subject-prefix"],
    [["--subject-prefix", "alerts."], "--subject-prefix"],
    [["--stream", "a.b"], "--stream"],
    [["--batch-size", "0"], "--batch-size"],
    [["--poll-interval", "soon"], "--poll-interval"],
    [["--retention", "10s"], "--retention"],
    [["--log-level", "loud"], "--log-level"],
    [["--nats-url", "http://user:hunter2@n"], "NATS_URL (--nats-url): unsupported scheme"],
  ])("refuses %j naming the setting, without echoing a URL", async (args, says) => {
    const run = compiled(args);
    await expect(run).rejects.toBeInstanceOf(ConfigError);
    await expect(run).rejects.toThrow(says);
    await expect(run).rejects.not.toThrow("hunter2");
  });

  it("needs a database and a NATS server", async () => {
    await expect(compiled([], { DATABASE_URL: "" })).rejects.toThrow("DATABASE_URL (--database-url)");
    await expect(compiled([], { NATS_URL: "" })).rejects.toThrow("NATS_URL (--nats-url): no server given");
  });
});
