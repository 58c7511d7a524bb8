/**
 * The image's recipe, checked statically (no Docker here): the Dockerfile pins its base by digest and
 * leaves no package manager in the runtime stage, and .dockerignore lets into the build context
 * exactly what the two programs run: no tests, fixtures, benchmarks, snapshots or hack/.
 *
 * The build context is computed the way Docker reads .dockerignore (moby/patternmatcher: `*` and `?`
 * stop at `/`, `**` crosses directories, a pattern also matches below a matching directory, and the
 * last matching pattern wins, `!` letting a path back in).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const read = (file: string) => readFileSync(join(repo, file), "utf8");

/** The programs the image runs (Dockerfile ENTRYPOINT, and the chart's operator command). */
const ENTRY_POINTS = ["evaluator/bin/evaluator.ts", "operator/bin/evaluator-operator.ts"];

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's instructions: continuation lines joined, comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const logical: string[] = [];
  let current = "";
  for (const line of text.split("\n")) {
    if (current === "" && /^\s*(#|$)/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      current += `${line.replace(/\\\s*$/, "")} `;
      continue;
    }
    logical.push(current + line);
    current = "";
  }
  return logical.map((l) => {
    const m = /^\s*(\S+)\s*(.*)$/.exec(l)!;
    return { keyword: m[1]!.toUpperCase(), args: m[2]!.trim() };
  });
}

/** The stages: each FROM with the instructions after it. */
function stages(all: Instruction[]): { from: string; name?: string; body: Instruction[] }[] {
  const out: { from: string; name?: string; body: Instruction[] }[] = [];
  for (const ins of all) {
    if (ins.keyword === "FROM") {
      const [image, as, name] = ins.args.replace(/--platform=\S+\s+/, "").split(/\s+/);
      out.push({ from: image!, ...(as?.toUpperCase() === "AS" ? { name: name! } : {}), body: [] });
    } else out.at(-1)?.body.push(ins);
  }
  return out;
}

/** A .dockerignore pattern as Docker compiles it (moby/patternmatcher). */
interface Pattern {
  readonly exclusion: boolean;
  readonly regexp: RegExp;
}

function compile(line: string): Pattern {
  const exclusion = line.startsWith("!");
  const cleaned = posix.normalize((exclusion ? line.slice(1) : line).trim()).replace(/^\/+/, "");
  let re = "";
  for (let i = 0; i < cleaned.length; i++) {
    const ch = cleaned[i]!;
    if (ch === "*" && cleaned[i + 1] === "*") {
      i++;
      if (cleaned[i + 1] === "/") i++;
      re += i === cleaned.length - 1 ? ".*" : "(.*/)?";
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return { exclusion, regexp: new RegExp(`^${re}$`) };
}

function dockerignore(text: string): Pattern[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map(compile);
}

/** Whether Docker leaves `path` (relative, `/`-separated) out of the build context. */
function excluded(path: string, patterns: readonly Pattern[]): boolean {
  const parents = path.split("/").slice(0, -1);
  let matched = false;
  for (const p of patterns) {
    // Only a pattern that could change the verdict is tried (patternmatcher's order).
    if (p.exclusion !== matched) continue;
    let match = p.regexp.test(path);
    for (let i = 1; !match && i <= parents.length; i++) match = p.regexp.test(parents.slice(0, i).join("/"));
    if (match) matched = !p.exclusion;
  }
  return matched;
}

/** Every file of the working tree (not .git; node_modules only as one entry), relative to the repo. */
function workingTree(dir = repo): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const rel = relative(repo, full).split("\\").join("/");
    if (rel === ".git") continue;
    if (rel === "node_modules" || !statSync(full).isDirectory()) out.push(rel);
    else out.push(...workingTree(full));
  }
  return out;
}

/** The relative imports of a TypeScript file (static, re-exports, side-effect and dynamic). */
function relativeImports(file: string): string[] {
  const source = read(file);
  const specs = [
    ...source.matchAll(/(?:import|export)\s[^;]*?\sfrom\s+["'](\.{1,2}\/[^"']+)["']/g),
    ...source.matchAll(/import\s+["'](\.{1,2}\/[^"']+)["']/g),
    ...source.matchAll(/import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g),
  ].map((m) => m[1]!);
  return specs.map((s) =>
    normalize(join(dirname(file), s))
      .split("\\")
      .join("/"),
  );
}

const dockerfile = instructions(read("Dockerfile"));
const all = stages(dockerfile);
const final = all.at(-1)!;
const patterns = dockerignore(read(".dockerignore"));
const context = workingTree().filter((f) => !excluded(f, patterns));

describe("the Dockerfile", () => {
  it("pins every base image by digest, through the NODE_IMAGE argument", () => {
    const args = new Map(
      dockerfile
        .filter((i) => i.keyword === "ARG")
        .map((i) => i.args.split("=") as [string, string | undefined])
        .map(([k, v]) => [k, v ?? ""]),
    );
    const nodeImage = args.get("NODE_IMAGE") ?? "";
    expect(nodeImage, "ARG NODE_IMAGE's default").toMatch(/^[a-z0-9./_:-]+@sha256:[0-9a-f]{64}$/);
    expect(all.length).toBeGreaterThanOrEqual(2);
    const names = new Set(all.flatMap((s) => (s.name ? [s.name] : [])));
    for (const stage of all) {
      const arg = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(stage.from)?.[1];
      const image = arg !== undefined ? (args.get(arg) ?? "") : stage.from;
      if (arg === undefined && names.has(stage.from)) continue; // an earlier stage
      expect(image, `FROM ${stage.from}`).toMatch(/@sha256:[0-9a-f]{64}$/);
    }
  });

  it("leaves no package manager in the runtime stage, and runs node as a non-root user", () => {
    const runs = final.body.filter((i) => i.keyword === "RUN").map((i) => i.args);
    const removal = runs.find((r) => /^rm\s+-rf?\s/.test(r)) ?? "";
    for (const path of ["/usr/local/lib/node_modules", "/usr/local/bin/npm", "/usr/local/bin/npx"]) {
      expect(removal.split(/\s+/), `the final stage removes ${path}`).toContain(path);
    }
    // Nothing else in the final stage runs a package manager.
    for (const r of runs.filter((r) => r !== removal)) expect(r).not.toMatch(/\b(npm|npx|corepack|yarn)\b/);
    const user = final.body.filter((i) => i.keyword === "USER").at(-1)?.args ?? "";
    expect(user).toMatch(/^[1-9][0-9]*:[1-9][0-9]*$/);
    expect(final.body.find((i) => i.keyword === "ENTRYPOINT")?.args).toMatch(/^\["node", "\/app\//);
  });

  it("copies into the runtime stage only the dependencies and the programs' folders", () => {
    const copies = final.body.filter((i) => i.keyword === "COPY").map((i) => i.args.split(/\s+/));
    const fromStages = copies.filter((c) => c[0]!.startsWith("--from="));
    expect(fromStages.map((c) => c.slice(1, -1))).toEqual([["/app/node_modules"]]);
    const sources = copies.filter((c) => !c[0]!.startsWith("--")).flatMap((c) => c.slice(0, -1));
    expect(new Set(sources)).toEqual(
      new Set(["package.json", "runtime/", "operator/", "evaluator/", "migrations/", "crds/"]),
    );
  });
});

describe("the build context (.dockerignore)", () => {
  it("matches like Docker: `*` stops at a slash, `**` crosses directories, the last pattern wins", () => {
    const p = dockerignore("*\n!operator\n**/*.test.ts\n!operator/keep.test.ts");
    expect(excluded("bench/x.ts", p)).toBe(true);
    expect(excluded("operator", p)).toBe(false);
    expect(excluded("operator/src/a.ts", p)).toBe(false);
    expect(excluded("operator/src/a.test.ts", p)).toBe(true);
    expect(excluded("operator/keep.test.ts", p)).toBe(false);
    expect(excluded("a.test.ts", p)).toBe(true);
  });

  it("holds what the image needs", () => {
    for (const file of [
      "package.json",
      "package-lock.json",
      ...ENTRY_POINTS,
      ...context.filter((f) => f.startsWith("migrations/")),
      "crds/evaluator.iot.dev_evaluatorshardsets.yaml",
    ]) {
      expect(context, file).toContain(file);
    }
    expect(context.filter((f) => /^migrations\/\d+_.*\.sql$/.test(f)).length).toBeGreaterThan(0);
    // SQL and Lua files the programs read at run time.
    for (const dir of [
      "operator/src/assignments/sql",
      "evaluator/src/store/sql",
      "evaluator/src/state/lua",
    ]) {
      const onDisk = readdirSync(join(repo, dir)).map((f) => `${dir}/${f}`);
      expect(context).toEqual(expect.arrayContaining(onDisk));
    }
  });

  it("holds no tests, fixtures, benchmarks, snapshots, hack/, helm/ or node_modules", () => {
    const forbidden = context.filter(
      (f) =>
        /^(test|bench|hack|helm|\.ci|node_modules)(\/|$)/.test(f) ||
        /(\.test|\.bench)\.ts$/.test(f) ||
        /(^|\/)__snapshots__\//.test(f) ||
        /(^|\/)fixtures?(\.ts$|\/)/.test(f),
    );
    expect(forbidden).toEqual([]);
  });

  it("holds only TypeScript the two programs import, and everything they import", () => {
    const shipped = new Set(context.filter((f) => f.endsWith(".ts")));
    const reached = new Set<string>();
    const missing: string[] = [];
    const queue = [...ENTRY_POINTS];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (reached.has(file)) continue;
      reached.add(file);
      if (!shipped.has(file)) {
        missing.push(file);
        continue;
      }
      for (const dep of relativeImports(file)) if (dep.endsWith(".ts")) queue.push(dep);
    }
    expect(missing, "imported by the programs but left out of the image").toEqual([]);
    expect(
      [...shipped].filter((f) => !reached.has(f)),
      "shipped but imported by neither program (a test helper?)",
    ).toEqual([]);
  });
});
