/**
 * No secret in the evaluator's output: with the passwords given as `?password=` (which pg and
 * ioredis both honour) and in the user-info part, the real process connects, evaluates, stops, and
 * none of those values appears in anything it printed. Its log names the servers by scheme, host,
 * port and database only (Valkey with its topology).
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { useEvaluatorFixture } from "../support/evaluatorFixture.ts";

const fx = useEvaluatorFixture("secrets");

/**
 * `raw` with its password moved to (or, when it has none, a marker put in) `?password=`; the
 * servers the suites run against accept any password when they ask for none. Returns the URL and
 * the password it carries.
 */
function withPasswordParam(raw: string, marker: string): { url: string; password: string } {
  const u = new URL(raw);
  const password = u.password === "" ? marker : decodeURIComponent(u.password);
  u.password = "";
  u.searchParams.set("password", password);
  return { url: u.toString(), password };
}

const marker = (what: string) => `${what}-${randomBytes(6).toString("hex")}`;

describe("evaluator output", () => {
  it("never shows a password given in the URL, as ?password= or otherwise", async () => {
    const tenant = await fx.tenant({
      rules: [{ id: "hot", rule_type: "threshold", operator: ">", threshold: 30 }],
    });
    await fx.reading(tenant, 42);

    const db = withPasswordParam(fx.db.url, marker("pg-query-password"));
    const dbUrl = new URL(db.url);
    // The user-info password is an extra marker pg reads but the server never asks for (?password=
    // overrides it); with a real password it is left out. (?sslpassword= is refused at start, as
    // every client-key parameter is: runtime/pgTls.ts.)
    const dbUserInfo = new URL(fx.db.url).password === "" ? marker("pg-userinfo-password") : "";
    dbUrl.password = dbUserInfo;
    const valkey = withPasswordParam(fx.env()["VALKEY_URL"]!, marker("valkey-query-password"));
    const secrets = [db.password, dbUserInfo, valkey.password].filter((s) => s !== "");

    const p = fx.start({
      DATABASE_URL: dbUrl.toString(),
      VALKEY_URL: valkey.url,
      TICK_INTERVAL_SECONDS: "1",
      LOG_LEVEL: "debug",
    });
    // Connected to both with those URLs: the tenant's rows were read and its state written.
    await p.waitForLog((l) => l.msg === "valkey_connected");
    await p.waitForLog((l) => l.msg === "tick_done" && (l["evaluated"] as number) >= 1);
    expect(await p.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    const starting = p.logs.find((l) => l.msg === "evaluator_starting");
    const pgShown = new URL(fx.db.url);
    expect(starting?.["database"]).toBe(`postgres://${pgShown.host}${pgShown.pathname}`);
    const vkShown = new URL(valkey.url);
    expect(starting?.["valkey"]).toBe(`standalone redis://${vkShown.host}${vkShown.pathname}`);

    const output = p.stdoutText() + p.stderrText();
    for (const secret of secrets) {
      expect(output).not.toContain(secret);
      expect(output).not.toContain(encodeURIComponent(secret));
    }
    expect(output).not.toContain("password=");
  });
});
