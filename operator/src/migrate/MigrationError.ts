/**
 * A migration problem the operator of the database must fix by hand (a bad file name, an edited or
 * missing applied migration, a failing statement). Never retried: running again gives the same result.
 */
export class MigrationError extends Error {
  /** Migration files the error is about, by file name (empty when it concerns the whole directory). */
  readonly files: readonly string[];

  constructor(message: string, files: readonly string[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = "MigrationError";
    this.files = files;
  }
}
