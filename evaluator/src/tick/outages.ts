/**
 * Which errors mean "the dependency is unavailable" (they feed the circuit breakers and the
 * fail-open paths) rather than "this request was bad". PostgreSQL's classifier is shared with the
 * operator: `isPostgresOutage` in runtime/postgresOutage.ts.
 */

function isProgrammingError(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError;
}

/**
 * Valkey outage: anything but a server reply error (`ReplyError`, e.g. a script error), a reply of
 * the wrong shape (`ValkeyStateProtocolError`) or a programming error — i.e. connection closed,
 * offline queue disabled while reconnecting, command timeout, retries exhausted.
 */
export function isValkeyOutage(err: unknown): boolean {
  if (isProgrammingError(err)) return false;
  const name = (err as { name?: unknown } | null)?.name;
  return name !== "ReplyError" && name !== "ValkeyStateProtocolError";
}

/** A dependency was unavailable for a step that cannot fail open (the alert write). */
export class DependencyUnavailableError extends Error {
  override readonly name = "DependencyUnavailableError";
  readonly dependency: "postgres" | "valkey";

  constructor(dependency: "postgres" | "valkey", cause: unknown) {
    super(`${dependency} unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.dependency = dependency;
  }
}
