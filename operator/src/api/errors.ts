/**
 * A database that cannot be reached (or whose Secret cannot be read): the assignments layer throws
 * it, the reconcile reports it as Degraded/DatabaseUnavailable and the key retries with backoff.
 */
export class DatabaseUnavailableError extends Error {
  override readonly name = "DatabaseUnavailableError";
}
