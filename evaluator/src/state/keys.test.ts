import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  baselineWindowKey,
  cooldownKey,
  KEY_KINDS,
  keyPart,
  pairField,
  pairPart,
  RETIRED_STATE_FIELDS,
  STATE_VERSION_FIELD,
  TENANT_STATE_KINDS,
  type TenantStateKind,
  tenantKeysPattern,
  tenantStateField,
  tenantStateKey,
  tenantTag,
  tickLeaseKey,
  windowBufferKey,
} from "./keys.ts";
import { readScript, SCRIPT_COMMANDS } from "./valkeyState.ts";

const TENANT = "6f1c2d3e-0000-4000-8000-000000000001";

describe("keys", () => {
  it("puts the tenant in a hash tag and follows the documented layout", () => {
    expect(windowBufferKey(TENANT, "42", "dev-7")).toBe(`wbuf:{${TENANT}}:42:dev-7`);
    expect(cooldownKey(TENANT, "42", "dev-7")).toBe(`cooldown:{${TENANT}}:42:dev-7`);
    expect(tenantStateKey(TENANT)).toBe(`tstate:{${TENANT}}`);
    expect(tenantStateField("42", "dev-7", "cond")).toBe("42:dev-7:cond");
    expect(tenantStateField("a:b", "c", "anom")).toBe("a%3Ab:c:anom");
    expect(pairPart("a:b", "c")).toBe("a%3Ab:c");
    expect(pairField(pairPart("42", "dev-7"), "cd")).toBe("42:dev-7:cd");
    expect(baselineWindowKey(TENANT, "42", "dev-7")).toBe(`wbufjson:{${TENANT}}:42:dev-7`);
    expect(tickLeaseKey(TENANT, 29_000_000)).toBe(`tick:{${TENANT}}:29000000`);
  });

  it("escapes separators so distinct pairs never share a key, and braces so the tag holds", () => {
    expect(windowBufferKey("t", "a:b", "c")).not.toBe(windowBufferKey("t", "a", "b:c"));
    expect(keyPart("a:b{c}%")).toBe("a%3Ab%7Bc%7D%25");
    expect(tenantTag("x}y")).toBe("{x%7Dy}");
    // The first "{...}" of every key is exactly the tenant's tag: one Cluster slot per tenant.
    for (const key of [windowBufferKey("x}y", "r", "d"), tickLeaseKey("x}y", 1), tenantStateKey("x}y")]) {
      expect(key.slice(key.indexOf("{"), key.indexOf("}") + 1)).toBe(tenantTag("x}y"));
    }
  });

  it("refuses a tick slot that is not a non-negative integer", () => {
    expect(() => tickLeaseKey(TENANT, 1.5)).toThrow(RangeError);
    expect(() => tickLeaseKey(TENANT, -1)).toThrow(RangeError);
  });

  it("builds a SCAN pattern for all of a tenant's keys, escaping glob characters", () => {
    expect(tenantKeysPattern(TENANT)).toBe(`*{${TENANT}}*`);
    expect(tenantKeysPattern("a*b[c]")).toBe("*{a\\*b\\[c\\]}*");
  });
});

// The Lua scripts build no key: every call declares the keys it touches (scriptProtocol.ts builds
// them with keys.ts), so Valkey Cluster routes it by the tenant's slot and refuses it while that
// slot moves. What follows reads the scripts' code and checks that every key they touch is a KEYS
// entry and that the only strings they build are hash fields as keys.ts names them.

type ScriptName = keyof typeof SCRIPT_COMMANDS;
const SCRIPTS = Object.keys(SCRIPT_COMMANDS) as ScriptName[];

/** A script's code without its comments (the scripts' strings hold no `--`). */
function luaCode(script: ScriptName): string {
  return readScript(script)
    .replace(/--\[\[[\s\S]*?\]\]/g, "")
    .replace(/--[^\n]*/g, "");
}

/** The string literals of some Lua code (the scripts quote with `'` only; checked below). */
function literals(code: string): string[] {
  return [...code.matchAll(/'([^'\\]*)'/g)].map((m) => m[1]!);
}

/** Splits `a, f(b, c), d[e]` at its top-level commas. */
function splitTopLevel(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) depth--;
    else if (c === "," && depth === 0) {
      out.push(list.slice(from, i).trim());
      from = i + 1;
    }
  }
  out.push(list.slice(from).trim());
  return out;
}

/** `name` of `name`, `name[i]`; null for anything else (a call, a literal, a concatenation). */
function baseName(expression: string): string | null {
  return /^([A-Za-z_]\w*)(?:\[[^\]]*\])?$/.exec(expression.trim())?.[1] ?? null;
}

/** Every assignment of a script: target base names and their right-hand expressions, paired. */
function assignments(code: string): { target: string; value: string }[] {
  const out: { target: string; value: string }[] = [];
  // `local a, b = x, y`, `t[k] = x`; not `==`, `~=`, `<=`, `>=`.
  for (const m of code.matchAll(/^[ \t]*(?:local\s+)?([\w[\]+ .,#-]+?)\s*(?<![=~<>])=(?!=)\s*([^\n]+)$/gm)) {
    const targets = splitTopLevel(m[1]!);
    const values = splitTopLevel(m[2]!);
    targets.forEach((t, i) => {
      const target = baseName(t);
      if (target !== null && values[i] !== undefined) out.push({ target, value: values[i]! });
    });
  }
  return out;
}

/**
 * Why the key expression `expression` of a script is not a declared key, or null when it is: a
 * `KEYS[…]` entry, or a variable (or table) every assignment of which is such an expression, or
 * `x and <key> or <not a key>` (a key only where it is one).
 */
function undeclaredKey(code: string, expression: string, seen = new Set<string>()): string | null {
  const base = baseName(expression);
  if (base === "KEYS") return null;
  if (base === null) return `'${expression}' is not a KEYS entry or a variable holding one`;
  if (seen.has(base)) return null;
  seen.add(base);
  const sources = assignments(code).filter((a) => a.target === base);
  if (sources.length === 0) return `'${base}' is never assigned`;
  for (const { value } of sources) {
    if (value === "{}") continue; // a table filled by later assignments, checked with it
    const why = undeclaredKey(code, value, seen);
    if (why !== null) return `'${base}' is assigned ${value}: ${why}`;
  }
  return null;
}

/** The key expression (first argument after the command) of every `redis.call`/`redis.pcall`. */
function keyArguments(code: string): { command: string; key: string }[] {
  return [...code.matchAll(/redis\.p?call\('([A-Z]+)',\s*([^,)]+)/g)].map((m) => ({
    command: m[1]!,
    key: m[2]!.trim(),
  }));
}

/** A string a script builds with `..`, its operands as written. */
function concatenations(code: string): string[][] {
  const operand = String.raw`'[^']*'|[A-Za-z_]\w*(?:\[[^\]]*\])?`;
  const re = new RegExp(String.raw`(?:${operand})(?:\s*\.\.\s*(?:${operand}))+`, "g");
  return [...code.matchAll(re)].map((m) => [...m[0].matchAll(new RegExp(operand, "g"))].map((o) => o[0]));
}

describe("the key layout of the Lua scripts", () => {
  it("covers every script ValkeyState loads, and the lua directory holds no other", () => {
    const files = readdirSync(new URL("./lua/", import.meta.url)).filter((f) => f.endsWith(".lua"));
    expect(files.sort()).toEqual(SCRIPTS.map((s) => `${s}.lua`).sort());
    for (const script of SCRIPTS) expect(luaCode(script)).not.toMatch(/"|\[\[/); // '-quoted strings only
  });

  it("touches keys through KEYS only: every key a command names is declared by the call", () => {
    const commands = new Set<string>();
    for (const script of SCRIPTS) {
      const code = luaCode(script);
      const calls = keyArguments(code);
      expect(calls.length, script).toBeGreaterThan(0);
      for (const { command, key } of calls) {
        commands.add(command);
        // `x and redis.call(…, key) or -2`: the key expression is what the command gets.
        expect(undeclaredKey(code, key), `${script}.lua: ${command} ${key}`).toBeNull();
      }
    }
    // Every command the scripts send takes its key first (so the argument checked above is the key).
    expect([...commands].sort()).toEqual(
      ["DEL", "GET", "HDEL", "HGET", "HGETALL", "HMGET", "HSET", "PEXPIRE", "PTTL", "SET", "ZRANGE"].sort(),
    );
  });

  it("the check above fails on a key a script would build", () => {
    const built = `local tag = string.match(KEYS[1], '{[^}]*}')\nlocal k = 'wbuf:' .. tag\nredis.call('GET', k)`;
    expect(undeclaredKey(built, "k")).toMatch(/'k' is assigned 'wbuf:' \.\. tag/);
    const indirect = `local t = {}\nt[1] = KEYS[2]\nlocal k = t[1]\nredis.call('GET', k)`;
    expect(undeclaredKey(indirect, "k")).toBeNull();
    expect(undeclaredKey("local k = ARGV[1]", "k")).toMatch(/ARGV/);
  });

  it("builds no key, only hash fields: a pair part and `:<kind>`", () => {
    const fields = new Set<string>();
    for (const script of SCRIPTS) {
      for (const operands of concatenations(luaCode(script))) {
        const where = `${script}.lua: ${operands.join(" .. ")}`;
        const quoted = operands.filter((o) => o.startsWith("'")).map((o) => o.slice(1, -1));
        expect(quoted, where).toHaveLength(1);
        const literal = quoted[0]!;
        if (operands[0]!.startsWith("'")) {
          // `':' .. part`: the end of a declared key, checked against its op's pair part.
          expect([literal, operands.length], where).toEqual([":", 2]);
        } else {
          // `<pair part> .. ':<kind>'`: a field of the state hash, as keys.ts names it.
          const kind = literal.replace(/^:/, "") as TenantStateKind;
          expect(TENANT_STATE_KINDS, where).toContain(kind);
          expect(pairField(pairPart("r:1", "d}2"), kind)).toBe(`${pairPart("r:1", "d}2")}${literal}`);
          fields.add(`${script}${literal}`);
        }
      }
    }
    // So a change in the scripts' shape cannot make this test vacuous.
    expect([...fields].sort()).toEqual([
      "tenant_read:anom",
      "tenant_read:cd",
      "tenant_read:cond",
      "tenant_read:seen",
      "tenant_write:cd",
    ]);
  });

  it("cuts a field suffix off by its own length", () => {
    for (const script of SCRIPTS) {
      const code = luaCode(script);
      for (const m of code.matchAll(/string\.sub\((\w+),\s*-(\d+)\)\s*==\s*'([^']*)'/g)) {
        const [, variable, length, suffix] = m;
        expect(Number(length), m[0]).toBe(suffix!.length);
        expect(TENANT_STATE_KINDS.map((k) => `:${k}`)).toContain(suffix);
        // The pair part before it: everything but the suffix.
        for (const cut of code.matchAll(
          new RegExp(String.raw`string\.sub\(${variable},\s*1,\s*-(\d+)\)`, "g"),
        )) {
          expect(Number(cut[1]), cut[0]).toBe(suffix!.length + 1);
        }
      }
    }
  });

  it("spells no key prefix, and no field other than keys.ts's", () => {
    const layout = new Set<string>([
      ":",
      ...TENANT_STATE_KINDS.map((kind) => `:${kind}`),
      STATE_VERSION_FIELD,
      ...RETIRED_STATE_FIELDS,
    ]);
    const notLayout = new Set(["", ",", "0", "1", "^%d+", "delta", "full", "b", "f", "c", "table"]);
    for (const script of SCRIPTS) {
      for (const literal of literals(luaCode(script))) {
        if (/^[A-Z]+$/.test(literal)) continue; // a Redis command or option
        if (literal.startsWith(`${script}: `)) continue; // an error message
        if (notLayout.has(literal)) continue;
        expect(
          Object.values(KEY_KINDS).some((kind) => literal.startsWith(kind)),
          `${script}.lua spells '${literal}'`,
        ).toBe(false);
        expect(layout, `${script}.lua spells '${literal}': name it in keys.ts and check it here`).toContain(
          literal,
        );
      }
    }
  });
});
