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

// The Lua scripts build keys too (tenant_read and tenant_write are sent one key and build the
// others from its hash tag). What follows reads their code and checks that every key and field
// they spell is the one keys.ts builds, so the layout cannot drift apart in the two languages.

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

/** The hash tag pattern a script matches on KEYS[1], and the variable it keeps the tag in. */
function tagOf(code: string): { variable: string; pattern: string } | null {
  const m = /local\s+(\w+)\s*=\s*string\.match\(KEYS\[1\],\s*'([^']*)'\)/.exec(code);
  return m ? { variable: m[1]!, pattern: m[2]! } : null;
}

/**
 * A Lua pattern as a RegExp: the part of the syntax a hash-tag pattern needs (character classes,
 * `*`, `+`, `?`, lazy `-`, `%` escapes of punctuation); anything else fails the test.
 */
function luaPatternToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      out += pattern.slice(i, end + 1).replace(/\\/g, "\\\\");
      i = end;
    } else if (c === "%") {
      const next = pattern[++i]!;
      if (/[A-Za-z0-9]/.test(next)) throw new Error(`Lua class %${next} is not supported here`);
      out += `\\${next}`;
    } else if (c === "-") {
      out += "*?";
    } else if ("*+?.".includes(c)) {
      out += c;
    } else {
      out += c.replace(/[\\^$|(){}]/g, "\\$&");
    }
  }
  return new RegExp(out);
}

/** One operand of a `..` concatenation: a string literal or a (possibly indexed) variable. */
const OPERAND = String.raw`'[^']*'|[A-Za-z_]\w*(?:\[[^\]]*\])?`;
const CONCATENATION = new RegExp(String.raw`(?:${OPERAND})(?:\s*\.\.\s*(?:${OPERAND}))+`, "g");
const LOCAL_CONCATENATION = new RegExp(
  String.raw`local\s+(\w+)\s*=\s*((?:${OPERAND})(?:\s*\.\.\s*(?:${OPERAND}))+)`,
  "g",
);

function operands(concatenation: string): string[] {
  return [...concatenation.matchAll(new RegExp(OPERAND, "g"))].map((m) => m[0]);
}

/** A string a script builds by concatenation, with sample ids in its variables. */
interface Built {
  readonly script: ScriptName;
  readonly source: string;
  /** Its first literal (`wbuf:`) or, when there is no tag in it, its last (`:cd`). */
  readonly literal: string;
  readonly hasTag: boolean;
  readonly value: string;
}

/** Awkward ids: every character keyPart escapes. */
const T = "t{1}:%";
const R = "r:1";
const D = "d}2";

/**
 * Every string the script builds with `..`, evaluated: the tag variable holds `tenantTag(T)`, a
 * local built by `..` earlier holds its value, and every other variable a pair part the script was
 * sent or read from a field name, here `pairPart(R, D)`.
 */
function builtStrings(script: ScriptName): Built[] {
  const code = luaCode(script);
  const tag = tagOf(code);
  const locals = new Map<string, string[]>();
  const definitions = new Map<number, string>();
  for (const m of code.matchAll(LOCAL_CONCATENATION)) {
    locals.set(m[1]!, operands(m[2]!));
    definitions.set(m.index! + m[0].length - m[2]!.length, m[1]!);
  }
  const concatenations = [...code.matchAll(CONCATENATION)];
  const prefixes = new Set(concatenations.flatMap((m) => operands(m[0])).filter((p) => locals.has(p)));
  const expand = (parts: string[]): string[] =>
    parts.flatMap((p) => (locals.has(p) ? expand(locals.get(p)!) : [p]));
  const built: Built[] = [];
  for (const m of concatenations) {
    // A local that later concatenations extend is a prefix: checked where it is extended.
    if (prefixes.has(definitions.get(m.index!) ?? "")) continue;
    const parts = expand(operands(m[0]));
    const isLiteral = (p: string) => p.startsWith("'");
    const hasTag = tag !== null && parts.includes(tag.variable);
    const value = parts
      .map((p) => (isLiteral(p) ? p.slice(1, -1) : p === tag?.variable ? tenantTag(T) : pairPart(R, D)))
      .join("");
    const literal = (hasTag ? parts.find(isLiteral) : parts.findLast(isLiteral))?.slice(1, -1) ?? "";
    built.push({ script, source: m[0], literal, hasTag, value });
  }
  return built;
}

/** What keys.ts builds for a key kind, with the sample ids. */
const KEY_OF_KIND: Readonly<Record<string, string>> = {
  [KEY_KINDS.windowBuffer]: windowBufferKey(T, R, D),
  [KEY_KINDS.cooldown]: cooldownKey(T, R, D),
  [KEY_KINDS.tenantState]: tenantStateKey(T),
  [KEY_KINDS.baselineWindow]: baselineWindowKey(T, R, D),
};

/** Literals of the scripts that are no part of the key layout: request vocabulary and values. */
const NOT_KEY_LAYOUT = new Set(["", ",", "0", "1", "^%d+", "delta", "full", "b", "f", "c", "table"]);

describe("the key layout of the Lua scripts", () => {
  it("covers every script ValkeyState loads, and the lua directory holds no other", () => {
    const files = readdirSync(new URL("./lua/", import.meta.url)).filter((f) => f.endsWith(".lua"));
    expect(files.sort()).toEqual(SCRIPTS.map((s) => `${s}.lua`).sort());
    for (const script of SCRIPTS) expect(luaCode(script)).not.toMatch(/"|\[\[/); // '-quoted strings only
  });

  it("finds the tenant's hash tag in KEYS[1] exactly as keys.ts puts it in every key", () => {
    const patterns = SCRIPTS.flatMap((s) => {
      const tag = tagOf(luaCode(s));
      return tag ? [tag.pattern] : [];
    });
    expect(patterns).toHaveLength(2); // tenant_read, tenant_write
    for (const pattern of patterns) {
      const re = luaPatternToRegExp(pattern);
      for (const tenant of [T, "6f1c2d3e-0000-4000-8000-000000000001", "x}y", "{", "%7B", "a*b[c]"]) {
        const keys = [
          tickLeaseKey(tenant, 7),
          tenantStateKey(tenant),
          windowBufferKey(tenant, "{r}", "d"),
          cooldownKey(tenant, R, D),
          baselineWindowKey(tenant, R, D),
        ];
        for (const key of keys) expect(key.match(re)?.[0], key).toBe(tenantTag(tenant));
      }
    }
  });

  it("builds every key and hash field as keys.ts does", () => {
    const built = SCRIPTS.flatMap(builtStrings);
    for (const b of built) {
      const where = `${b.script}.lua: ${b.source}`;
      if (b.hasTag) {
        // A key: `<kind>:` + the tag + …, the whole of it what keys.ts builds for that kind.
        const kind = b.literal.replace(/:$/, "");
        expect(Object.values(KEY_KINDS), where).toContain(kind);
        expect(b.value, where).toBe(KEY_OF_KIND[kind]);
      } else {
        // Else only a field of the state hash: a pair part + `:<kind>`.
        const kind = b.literal.replace(/^:/, "") as TenantStateKind;
        expect(TENANT_STATE_KINDS, where).toContain(kind);
        expect(b.value, where).toBe(tenantStateField(R, D, kind));
      }
    }
    // What each script builds (so a change in the scripts' shape cannot make this test vacuous).
    const byScript = Object.fromEntries(
      SCRIPTS.map((s) => [s, [...new Set(built.filter((b) => b.script === s).map((b) => b.literal))].sort()]),
    );
    expect(byScript).toEqual({
      // The fields of a slice of pairs (a plan read in several calls), and the keys.
      tenant_read: [":anom", ":cd", ":cond", ":seen", "cooldown:", "tstate:", "wbuf:"],
      tenant_write: [":cd", "cooldown:", "tstate:", "wbuf:"],
      tick_lease: [],
      tick_release: [],
    });
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

  it("spells no other key, field or tag than keys.ts's", () => {
    const layout = new Set<string>([
      ...Object.values(KEY_KINDS).map((kind) => `${kind}:`),
      ":",
      ...TENANT_STATE_KINDS.map((kind) => `:${kind}`),
      STATE_VERSION_FIELD,
      ...RETIRED_STATE_FIELDS,
    ]);
    for (const script of SCRIPTS) {
      const code = luaCode(script);
      const tagPattern = tagOf(code)?.pattern;
      for (const literal of literals(code)) {
        if (/^[A-Z]+$/.test(literal)) continue; // a Redis command or option
        if (literal.startsWith(`${script}: `)) continue; // an error message
        if (literal === tagPattern || NOT_KEY_LAYOUT.has(literal)) continue;
        expect(layout, `${script}.lua spells '${literal}': build it in keys.ts and check it here`).toContain(
          literal,
        );
      }
    }
  });
});
