import { Command } from "commander";
import { describe, expect, it } from "vitest";
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
    await expect(p.parseAsync(["migrate", "status"], { from: "user" })).rejects.toThrow(
      "No database: pass --database-url or set DATABASE_URL",
    );
  });
});
