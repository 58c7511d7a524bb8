import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../config/configError.ts";
import type { OperatorConfig } from "../config/operatorConfig.ts";
import { createProgram } from "./program.ts";

class Stop extends Error {}

/** The program with output captured; `run` stops right after the configuration compiled. */
function program(env: Record<string, string> = {}) {
  let out = "";
  let config: OperatorConfig | undefined;
  const p = createProgram({
    env,
    stdout: { write: (s: string) => (out += s) },
    shutdownSignal: new AbortController().signal,
    run: async (c) => {
      config = c;
      throw new Stop();
    },
  });
  const capture = (c: Command) => {
    c.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
    for (const sub of c.commands) capture(sub);
  };
  capture(p);
  return { p, output: () => out, config: () => config };
}

async function help(args: string[]): Promise<string> {
  const { p, output } = program({ WATCH_NAMESPACES: "team-a", LOG_LEVEL: "debug" });
  await expect(p.parseAsync([...args, "--help"], { from: "user" })).rejects.toMatchObject({ exitCode: 0 });
  return output();
}

describe("evaluator-operator run", () => {
  it("prints the default of --namespaces once", async () => {
    const text = (await help(["run"])).replace(/\s+/g, " ");
    const namespaces = /--namespaces <list> (.*?) --no-leader-elect/.exec(text)?.[1] ?? "";
    expect(namespaces).toBe("comma-separated namespaces to watch (default: $WATCH_NAMESPACES, else all)");
    expect(namespaces.match(/default/g)).toHaveLength(1);
  });

  it("lists the settings read from the environment, those without a flag too, and the exit codes", async () => {
    const text = await help(["run"]);
    for (const name of ["KUBECONFIG", "WATCH_NAMESPACES", "LOG_LEVEL", "POD_NAMESPACE", "POD_NAME"]) {
      expect(text).toMatch(new RegExp(`^  ${name} `, "m"));
    }
    expect(text).toContain("2 for bad usage or an invalid setting");
  });

  it("reads WATCH_NAMESPACES and LOG_LEVEL when their flags are not given, and a flag wins", async () => {
    const fromEnv = program({ WATCH_NAMESPACES: "a,b", LOG_LEVEL: "debug" });
    await expect(fromEnv.p.parseAsync(["run"], { from: "user" })).rejects.toBeInstanceOf(Stop);
    expect(fromEnv.config()).toMatchObject({ namespaces: ["a", "b"], logLevel: "debug" });

    const fromFlags = program({ WATCH_NAMESPACES: "a,b", LOG_LEVEL: "debug" });
    await expect(
      fromFlags.p.parseAsync(["run", "--namespaces", "c", "--log-level", "warn"], { from: "user" }),
    ).rejects.toBeInstanceOf(Stop);
    expect(fromFlags.config()).toMatchObject({ namespaces: ["c"], logLevel: "warn" });

    const defaults = program();
    await expect(defaults.p.parseAsync(["run"], { from: "user" })).rejects.toBeInstanceOf(Stop);
    expect(defaults.config()).toMatchObject({ namespaces: [], logLevel: "info" });
  });

  it("takes the shard pod policy from --allowed-image-prefixes (or ALLOWED_IMAGE_PREFIXES) and --no-service-account-passthrough", async () => {
    const text = (await help(["run"])).replace(/\s+/g, " ");
    expect(text).toContain("--allowed-image-prefixes <list>");
    expect(text).toContain("--no-service-account-passthrough");
    expect(text).toContain("never registry.example.com/team-evil/x");
    expect(await help(["run"])).toMatch(/^ {2}ALLOWED_IMAGE_PREFIXES /m);

    const fromEnv = program({ ALLOWED_IMAGE_PREFIXES: "registry.example.com/team/" });
    await expect(fromEnv.p.parseAsync(["run"], { from: "user" })).rejects.toBeInstanceOf(Stop);
    expect(fromEnv.config()).toMatchObject({
      allowedImagePrefixes: ["registry.example.com/team/"],
      serviceAccountPassthrough: true,
    });

    const fromFlags = program({ ALLOWED_IMAGE_PREFIXES: "registry.example.com/team/" });
    await expect(
      fromFlags.p.parseAsync(
        [
          "run",
          "--allowed-image-prefixes=ghcr.io/example/,quay.io/example/",
          "--no-service-account-passthrough",
        ],
        { from: "user" },
      ),
    ).rejects.toBeInstanceOf(Stop);
    expect(fromFlags.config()).toMatchObject({
      allowedImagePrefixes: ["ghcr.io/example/", "quay.io/example/"],
      serviceAccountPassthrough: false,
    });

    const defaults = program();
    await expect(defaults.p.parseAsync(["run"], { from: "user" })).rejects.toBeInstanceOf(Stop);
    expect(defaults.config()).toMatchObject({ allowedImagePrefixes: [], serviceAccountPassthrough: true });
  });

  it("takes the kube-apiserver rate limit from --kube-api-qps/--kube-api-burst, else KUBE_API_QPS/KUBE_API_BURST, else 20/30", async () => {
    const text = await help(["run"]);
    expect(text).toMatch(/^ {2}KUBE_API_QPS /m);
    expect(text).toMatch(/^ {2}KUBE_API_BURST /m);
    expect(text.replace(/\s+/g, " ")).toContain("(default: $KUBE_API_QPS, else 20)");

    const defaults = program();
    await expect(defaults.p.parseAsync(["run"], { from: "user" })).rejects.toBeInstanceOf(Stop);
    expect(defaults.config()?.kubeApi).toEqual({ qps: 20, burst: 30 });

    const fromEnv = program({ KUBE_API_QPS: "2.5", KUBE_API_BURST: "7" });
    await expect(fromEnv.p.parseAsync(["run"], { from: "user" })).rejects.toBeInstanceOf(Stop);
    expect(fromEnv.config()?.kubeApi).toEqual({ qps: 2.5, burst: 7 });

    const fromFlags = program({ KUBE_API_QPS: "2.5", KUBE_API_BURST: "7" });
    await expect(
      fromFlags.p.parseAsync(["run", "--kube-api-qps", "100", "--kube-api-burst=150"], { from: "user" }),
    ).rejects.toBeInstanceOf(Stop);
    expect(fromFlags.config()?.kubeApi).toEqual({ qps: 100, burst: 150 });

    const bad = program({ KUBE_API_BURST: "lots" });
    const run = bad.p.parseAsync(["run"], { from: "user" });
    await expect(run).rejects.toBeInstanceOf(ConfigError);
    await expect(run).rejects.toThrow(
      '--kube-api-burst (or $KUBE_API_BURST): expected a whole number of requests between 1 and 10000, got "lots"',
    );
  });

  it("refuses a setting that would hurt before running anything, as a ConfigError", async () => {
    const { p, config } = program();
    await expect(p.parseAsync(["run", "--resync-period=0s"], { from: "user" })).rejects.toBeInstanceOf(
      ConfigError,
    );
    expect(config()).toBeUndefined();
  });
});

describe("evaluator-operator shards", () => {
  it.each([
    [
      ["shards", "status", "--shard-set", "iot/alerts", "--database-url", "mysql://u:pw@db/x"],
      'scheme "mysql:"',
    ],
    [["shards", "status", "--shard-set", "iot/alerts"], "DATABASE_URL (--database-url): no database given"],
    [["shards", "plan", "--shard-set", "iot/alerts", "--shards", "0"], "--shards"],
    [["shards", "status", "--shard-set", "alerts"], "--shard-set"],
  ])("refuses %j as a ConfigError before connecting", async (args, says) => {
    const { p } = program();
    const run = p.parseAsync(args, { from: "user" });
    await expect(run).rejects.toBeInstanceOf(ConfigError);
    await expect(run).rejects.toThrow(says);
    await expect(run).rejects.not.toThrow("pw@");
  });

  it("prefers DATABASE_URL to --database-url in its help", async () => {
    const text = await help(["shards", "status"]);
    expect(text).toContain("Prefer it to the flag: a flag's value, password included, shows in ps.");
  });
});
