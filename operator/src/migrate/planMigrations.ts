import type { MigrationFile } from "./readMigrations.ts";

/** A row of `schema_migrations`. */
export interface AppliedMigration {
  readonly version: number;
  readonly name: string;
  readonly checksum: string;
  readonly appliedAt: Date;
}

/**
 * - `applied`: recorded, and the file on disk is the one that was applied;
 * - `pending`: on disk, not yet applied;
 * - `changed`: applied, but the file on disk differs (edited or renamed) — refused;
 * - `missing`: applied, but no file on disk has its version — refused.
 */
export type MigrationState = "applied" | "pending" | "changed" | "missing";

/** One migration as seen from both sides (disk and database). */
export interface MigrationStatusRow {
  readonly version: number;
  /** The file name on disk, or the recorded one when the file is missing. */
  readonly name: string;
  readonly state: MigrationState;
  readonly appliedAt: Date | null;
  /** Why the row is a problem (changed, missing, or pending behind a later applied version). */
  readonly problem?: string;
}

/** What `migrate up` would do, and what stops it. */
export interface MigrationPlan {
  /** Every version known on either side, ascending. */
  readonly rows: readonly MigrationStatusRow[];
  /** Files to apply, in order. */
  readonly pending: readonly MigrationFile[];
  /** Non-empty: refuse to apply anything. */
  readonly problems: readonly MigrationStatusRow[];
}

/**
 * Compares the migration files with the applied ones. Pure.
 *
 * An applied migration is immutable: an edited or renamed file (`changed`) or a deleted one
 * (`missing`) is a problem, never re-applied or skipped. A pending migration numbered below an
 * applied one is a problem too: it was merged out of order and may depend on a schema that moved on.
 */
export function planMigrations(
  files: readonly MigrationFile[],
  applied: readonly AppliedMigration[],
): MigrationPlan {
  const onDisk = new Map(files.map((f) => [f.version, f]));
  const recorded = new Map(applied.map((a) => [a.version, a]));
  const versions = [...new Set([...onDisk.keys(), ...recorded.keys()])].sort((a, b) => a - b);
  const lastApplied = applied.reduce((max, a) => Math.max(max, a.version), 0);

  const rows: MigrationStatusRow[] = [];
  const pending: MigrationFile[] = [];
  for (const version of versions) {
    const file = onDisk.get(version);
    const record = recorded.get(version);
    if (file !== undefined && record === undefined) {
      pending.push(file);
      rows.push(
        version < lastApplied
          ? {
              version,
              name: file.name,
              state: "pending",
              appliedAt: null,
              problem: `${file.name} is pending but a later version is already applied; give it a number after ${String(lastApplied).padStart(6, "0")}`,
            }
          : { version, name: file.name, state: "pending", appliedAt: null },
      );
    } else if (file === undefined && record !== undefined) {
      rows.push({
        version,
        name: record.name,
        state: "missing",
        appliedAt: record.appliedAt,
        problem: `${record.name} was applied but is missing from the migrations directory`,
      });
    } else if (file !== undefined && record !== undefined) {
      if (file.name !== record.name) {
        rows.push({
          version,
          name: file.name,
          state: "changed",
          appliedAt: record.appliedAt,
          problem: `${file.name} was applied as ${record.name}; applied migrations must not be renamed`,
        });
      } else if (file.checksum !== record.checksum) {
        rows.push({
          version,
          name: file.name,
          state: "changed",
          appliedAt: record.appliedAt,
          problem: `${file.name} was edited after it was applied (checksum ${record.checksum.slice(0, 12)}… applied, ${file.checksum.slice(0, 12)}… on disk); revert it and add a new migration instead`,
        });
      } else {
        rows.push({ version, name: file.name, state: "applied", appliedAt: record.appliedAt });
      }
    }
  }
  return { rows, pending, problems: rows.filter((r) => r.problem !== undefined) };
}
