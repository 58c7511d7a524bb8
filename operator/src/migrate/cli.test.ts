import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../config/configError.ts";
import { registerMigrateCommand } from "./cli.ts";

function program(env: Record<string, string | undefined>) {
  let out = "";
  const p = new Command("evaluator-operator").exitOverride().configureOutput({
    writeOut: (s) => {
      out += s;
    },
    writeErr: (s) => {
      out += s;
    },
  });
  registerMigrateCommand(p, {
    env,
    stdout: {
      write: (s: string) => {
        out += s;
      },
    },
  });
  return { p, output: () => out };
}

describe("registerMigrateCommand", () => {
  it("adds migrate up and migrate status", () => {
    const { p } = program({});
    const migrate = p.commands.find((c) => c.name() === "migrate");
    expect(migrate?.commands.map((c) => c.name())).toEqual(["up", "status"]);
  });

  it("never prints the connection string in the help", async () => {
    const { p, output } = program({ DATABASE_URL: "postgres://user:secret@db/app" });
    await expect(p.parseAsync(["migrate", "up", "--help"], { from: "user" })).rejects.toThrow();
    expect(output()).toContain("--database-url <url>");
    expect(output()).not.toContain("secret");
  });

  it("fails with a clear error when no database is given", async () => {
    const { p } = program({});
    const run = p.parseAsync(["migrate", "status"], { from: "user" });
    await expect(run).rejects.toBeInstanceOf(ConfigError);
    await expect(run).rejects.toThrow("DATABASE_URL (--database-url): no database given; set DATABASE_URL");
  });

  it.each([
    ["mysql://app:secret@db/app", 'unsupported scheme "mysql:"'],
    ["http://db:5432/app", 'unsupported scheme "http:"'],
    // Not in the scheme:// form: what precedes the colon may be a password, and is not named.
    ["secret:5432", "unsupported scheme (expected postgres: or postgresql:)"],
    ["not a url", "not a valid URL"],
  ])("refuses %s before connecting, without echoing it", async (url, says) => {
    for (const args of [
      ["migrate", "up"],
      ["migrate", "status", "--database-url", url],
    ]) {
      const { p } = program({ DATABASE_URL: url });
      const run = p.parseAsync(args, { from: "user" });
      await expect(run).rejects.toBeInstanceOf(ConfigError);
      await expect(run).rejects.toThrow(`DATABASE_URL (--database-url): ${says}`);
      await expect(run).rejects.not.toThrow("secret");
    }
  });

  it("connects to DIRECT_DATABASE_URL when it is given (the lock needs a session), refusing a bad one by its name", async () => {
    for (const [env, args] of [
      [{ DATABASE_URL: "postgres://db/app", DIRECT_DATABASE_URL: "mysql://app:secret@db/app" }, []],
      [{ DATABASE_URL: "postgres://db/app" }, ["--direct-database-url", "mysql://app:secret@db/app"]],
    ] as const) {
      const { p } = program(env);
      const run = p.parseAsync(["migrate", "up", ...args], { from: "user" });
      await expect(run).rejects.toThrow(
        'DIRECT_DATABASE_URL (--direct-database-url): unsupported scheme "mysql:"',
      );
      await expect(run).rejects.not.toThrow("secret");
    }
    // Without it, DATABASE_URL is the one (and an empty variable is none).
    const { p } = program({ DATABASE_URL: "mysql://db/app", DIRECT_DATABASE_URL: "" });
    await expect(p.parseAsync(["migrate", "status"], { from: "user" })).rejects.toThrow(
      "DATABASE_URL (--database-url): unsupported scheme",
    );
  });

  it("prefers DATABASE_URL to --database-url in its help (a flag's value shows in ps)", async () => {
    const { p, output } = program({});
    await expect(p.parseAsync(["migrate", "status", "--help"], { from: "user" })).rejects.toThrow();
    expect(output().replace(/\s+/g, " ")).toContain("prefer the variable: a flag shows in ps");
    expect(output()).toMatch(/^ {2}DATABASE_URL {2}PostgreSQL connection string/m);
    expect(output()).toMatch(
      /^ {2}DIRECT_DATABASE_URL\n {16}A connection string that reaches PostgreSQL without/m,
    );
    expect(output()).toContain("--direct-database-url <url>");
  });
});
