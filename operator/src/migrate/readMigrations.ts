import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MigrationError } from "./MigrationError.ts";

/** The only accepted migration file name: six-digit version, underscore, lower-case snake_case name. */
export const MIGRATION_FILE_PATTERN = /^(\d{6})_[a-z0-9_]+\.sql$/;

/** One migration file, read and validated. */
export interface MigrationFile {
  /** The six-digit prefix as a number (1 for `000001_…`). */
  readonly version: number;
  /** The file name, e.g. `000001_shard_sets_and_tenants.sql`; recorded in `schema_migrations.name`. */
  readonly name: string;
  readonly sql: string;
  /** See {@link migrationChecksum}. */
  readonly checksum: string;
}

/**
 * The version of a migration file name, or a reason why the name is refused.
 * Pure; the single place that decides what a migration file is called.
 */
export function parseMigrationFileName(fileName: string): { version: number } | { problem: string } {
  const match = MIGRATION_FILE_PATTERN.exec(fileName);
  if (match === null) {
    return {
      problem:
        "not a migration file name (expected NNNNNN_lower_snake_case.sql, e.g. 000007_add_alert_labels.sql)",
    };
  }
  const version = Number(match[1]);
  if (version === 0) return { problem: "versions start at 000001" };
  return { version };
}

/**
 * SHA-256 (hex) of a migration's text. Line endings are normalized first so that a checkout with
 * CRLF line endings does not look like an edited migration; any other byte counts.
 */
export function migrationChecksum(sql: string): string {
  return createHash("sha256").update(sql.replace(/\r\n?/g, "\n"), "utf8").digest("hex");
}

// Statement-level transaction control, at the start of a line. PL/pgSQL block keywords (`BEGIN`
// without a semicolon, `END;`) are not matched.
// `END;` alone is both PL/pgSQL and a COMMIT alias, so it is left to the runner's run-time check.
const TRANSACTION_CONTROL =
  /^[ \t]*(BEGIN|COMMIT|ROLLBACK|ABORT|END\s+TRANSACTION|START\s+TRANSACTION)\b[^;\n-]*;/im;

/**
 * The 1-based line of the first transaction-control statement (`BEGIN;`, `COMMIT;`, …) in a
 * migration, or undefined. The runner wraps each file in its own transaction together with its
 * `schema_migrations` row; a file that commits by itself would break that atomicity.
 */
export function findTransactionControl(sql: string): number | undefined {
  const match = TRANSACTION_CONTROL.exec(sql);
  if (match === null) return undefined;
  return lineOfOffset(sql, match.index);
}

/** The 1-based line number of a 0-based character offset in a text. */
export function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) line++;
  }
  return line;
}

/** Something wrong with one file of a migrations directory. */
export interface MigrationFileProblem {
  readonly file: string;
  readonly message: string;
}

/**
 * Checks a directory listing as a whole: every name is a migration file name and no version is used
 * twice. Returns the problems (empty when the listing is fine).
 */
export function checkMigrationNames(fileNames: readonly string[]): MigrationFileProblem[] {
  const problems: MigrationFileProblem[] = [];
  const byVersion = new Map<number, string>();
  for (const fileName of [...fileNames].sort()) {
    const parsed = parseMigrationFileName(fileName);
    if ("problem" in parsed) {
      problems.push({ file: fileName, message: parsed.problem });
      continue;
    }
    const other = byVersion.get(parsed.version);
    if (other !== undefined) {
      problems.push({ file: fileName, message: `version ${fileName.slice(0, 6)} is also used by ${other}` });
    } else {
      byVersion.set(parsed.version, fileName);
    }
  }
  return problems;
}

/**
 * The `migrations/` folder of the repository, found next to this module: three levels up when run
 * from source (`operator/src/migrate/`), four when compiled (`dist/operator/src/migrate/`).
 * Read at call time, never at import.
 */
export function defaultMigrationsDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    path.resolve(here, "../../../migrations"),
    path.resolve(here, "../../../../migrations"),
  ];
  return candidates.find((dir) => existsSync(dir)) ?? (candidates[0] as string);
}

/**
 * Reads and validates every migration in `dir`, ordered by version. Throws a {@link MigrationError}
 * listing every problem at once (bad names, duplicate versions, empty files, transaction control),
 * before anything touches a database.
 *
 * Hidden entries (`.gitkeep`, and the `..data` links of a Kubernetes ConfigMap volume) are ignored;
 * symbolic links to files are followed, since ConfigMap volumes are made of them.
 */
export async function readMigrations(dir: string): Promise<MigrationFile[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((name) => !name.startsWith("."));
  } catch (error) {
    throw new MigrationError(`Cannot read the migrations directory ${dir}`, [], { cause: error });
  }

  const problems = checkMigrationNames(entries);
  const files: MigrationFile[] = [];
  for (const name of entries.sort()) {
    const parsed = parseMigrationFileName(name);
    // Bad names are already in problems; the rest are still read so every problem shows at once.
    if ("problem" in parsed) continue;
    const file = path.join(dir, name);
    if (!(await stat(file)).isFile()) {
      problems.push({ file: name, message: "not a regular file" });
      continue;
    }
    const sql = await readFile(file, "utf8");
    if (sql.trim() === "") {
      problems.push({ file: name, message: "empty migration" });
      continue;
    }
    const line = findTransactionControl(sql);
    if (line !== undefined) {
      problems.push({
        file: name,
        message: `line ${line}: transaction control statement; each migration already runs in one transaction`,
      });
      continue;
    }
    files.push({ version: parsed.version, name, sql, checksum: migrationChecksum(sql) });
  }

  if (problems.length > 0) {
    const lines = problems.map((p) => `${p.file}: ${p.message}`);
    throw new MigrationError(`Invalid migrations in ${dir}:\n  ${lines.join("\n  ")}`, [
      ...new Set(problems.map((p) => p.file)),
    ]);
  }
  return files.sort((a, b) => a.version - b.version);
}
