import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MigrationError } from "./MigrationError.ts";
import {
  checkMigrationNames,
  defaultMigrationsDir,
  findTransactionControl,
  lineOfOffset,
  migrationChecksum,
  parseMigrationFileName,
  readMigrations,
} from "./readMigrations.ts";

describe("parseMigrationFileName", () => {
  it.each([
    ["000001_init.sql", 1],
    ["000042_add_alert_labels.sql", 42],
    ["123456_a1_b2.sql", 123456],
  ])("accepts %s as version %i", (name, version) => {
    expect(parseMigrationFileName(name)).toEqual({ version });
  });

  it.each([
    "1_init.sql",
    "0000001_init.sql",
    "000001-init.sql",
    "000001_Init.sql",
    "000001_add-column.sql",
    "000001_.sql",
    "000001_init.SQL",
    "000001_init.sql.bak",
    "000001_init.up.sql",
    "README.md",
  ])("refuses %s", (name) => {
    expect(parseMigrationFileName(name)).toEqual({
      problem: expect.stringContaining("NNNNNN_lower_snake_case.sql"),
    });
  });

  it("refuses version 000000", () => {
    expect(parseMigrationFileName("000000_init.sql")).toEqual({ problem: "versions start at 000001" });
  });
});

describe("checkMigrationNames", () => {
  it("accepts a clean listing in any order", () => {
    expect(checkMigrationNames(["000002_b.sql", "000001_a.sql"])).toEqual([]);
  });

  it("reports every bad name and every duplicate version", () => {
    expect(checkMigrationNames(["000001_a.sql", "000001_b.sql", "2_c.sql", "notes.txt"])).toEqual([
      { file: "000001_b.sql", message: "version 000001 is also used by 000001_a.sql" },
      { file: "2_c.sql", message: expect.stringContaining("not a migration file name") },
      { file: "notes.txt", message: expect.stringContaining("not a migration file name") },
    ]);
  });
});

describe("migrationChecksum", () => {
  it("is the SHA-256 hex of the text", () => {
    // sha256("") is a well-known constant.
    expect(migrationChecksum("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(migrationChecksum("SELECT 1;\n")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("ignores CRLF versus LF line endings", () => {
    expect(migrationChecksum("SELECT 1;\r\nSELECT 2;\r\n")).toBe(migrationChecksum("SELECT 1;\nSELECT 2;\n"));
  });

  it("changes with any other edit, even whitespace", () => {
    const base = migrationChecksum("CREATE TABLE t (a int);\n");
    expect(migrationChecksum("CREATE TABLE t (a int); \n")).not.toBe(base);
    expect(migrationChecksum("CREATE TABLE t (a int);\n-- note\n")).not.toBe(base);
  });
});

describe("findTransactionControl", () => {
  it.each([
    ["BEGIN;\nCREATE TABLE t ();\nCOMMIT;\n", 1],
    ["CREATE TABLE t ();\ncommit;\n", 2],
    ["SELECT 1;\n\n  START TRANSACTION ISOLATION LEVEL SERIALIZABLE;\n", 3],
    ["SELECT 1;\nROLLBACK;\n", 2],
    ["SELECT 1;\nBEGIN WORK;\n", 2],
    ["SELECT 1;\nEND TRANSACTION;\n", 2],
  ])("finds the statement in %j at line %i", (sql, line) => {
    expect(findTransactionControl(sql)).toBe(line);
  });

  it("does not mistake PL/pgSQL blocks for transaction control", () => {
    const sql = [
      "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$",
      "BEGIN",
      "  NEW.updated_at := now();",
      "  RETURN NEW;",
      "END",
      "$$;",
      "DO $$ BEGIN PERFORM 1; END $$;",
      "CREATE TABLE begin_log (committed boolean);",
    ].join("\n");
    expect(findTransactionControl(sql)).toBeUndefined();
  });
});

describe("lineOfOffset", () => {
  it("counts newlines before the offset", () => {
    const text = "a\nbc\n\nd";
    expect(lineOfOffset(text, 0)).toBe(1);
    expect(lineOfOffset(text, 2)).toBe(2);
    expect(lineOfOffset(text, 6)).toBe(4);
  });
});

describe("readMigrations", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "migrations-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads migrations ordered by version, with checksums, ignoring hidden entries", async () => {
    await writeFile(path.join(dir, "000010_later.sql"), "SELECT 10;\n");
    await writeFile(path.join(dir, "000002_second.sql"), "SELECT 2;\n");
    await writeFile(path.join(dir, "000001_first.sql"), "SELECT 1;\n");
    await writeFile(path.join(dir, ".gitkeep"), "");
    await mkdir(path.join(dir, "..data"));

    const files = await readMigrations(dir);

    expect(files.map((f) => [f.version, f.name])).toEqual([
      [1, "000001_first.sql"],
      [2, "000002_second.sql"],
      [10, "000010_later.sql"],
    ]);
    expect(files[0]).toMatchObject({ sql: "SELECT 1;\n", checksum: migrationChecksum("SELECT 1;\n") });
  });

  it("follows symbolic links to files, as in a ConfigMap volume", async () => {
    await mkdir(path.join(dir, "..data"));
    await writeFile(path.join(dir, "..data", "000001_first.sql"), "SELECT 1;\n");
    await symlink(path.join("..data", "000001_first.sql"), path.join(dir, "000001_first.sql"));

    expect((await readMigrations(dir)).map((f) => f.name)).toEqual(["000001_first.sql"]);
  });

  it("refuses the whole directory, naming every offending file", async () => {
    await writeFile(path.join(dir, "000001_first.sql"), "SELECT 1;\n");
    await writeFile(path.join(dir, "2_second.sql"), "SELECT 2;\n");
    await writeFile(path.join(dir, "000003_empty.sql"), "  \n");
    await writeFile(path.join(dir, "000004_commits.sql"), "SELECT 4;\nCOMMIT;\n");
    await mkdir(path.join(dir, "000005_folder.sql"));

    const error = await readMigrations(dir).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).files).toEqual([
      "2_second.sql",
      "000003_empty.sql",
      "000004_commits.sql",
      "000005_folder.sql",
    ]);
    expect((error as MigrationError).message).toContain("2_second.sql: not a migration file name");
    expect((error as MigrationError).message).toContain("000004_commits.sql: line 2: transaction control");
  });

  it("refuses a directory that does not exist", async () => {
    await expect(readMigrations(path.join(dir, "nope"))).rejects.toThrow(
      /Cannot read the migrations directory/,
    );
  });
});

describe("defaultMigrationsDir", () => {
  it("finds the repository's migrations folder, whose files all pass validation", async () => {
    const files = await readMigrations(defaultMigrationsDir());
    expect(files.length).toBeGreaterThan(0);
    expect(files.map((f) => f.version)).toEqual(files.map((_, i) => i + 1));
  });
});
