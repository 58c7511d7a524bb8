/**
 * Which errors mean "the dependency is unavailable" (they feed the circuit breakers and the
 * fail-open paths) rather than "this request was bad".
 */

function isProgrammingError(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError;
}

/**
 * PostgreSQL outage: no server answer at all (connection refused/reset, timeouts — errors without a
 * SQLSTATE), or a SQLSTATE of class 08 (connection exception), 53 (insufficient resources) or 57P
 * (server shutting down / starting up). A constraint violation or a syntax error is not an outage.
 */
export function isPostgresOutage(err: unknown): boolean {
  if (isProgrammingError(err)) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) {
    return code.startsWith("08") || code.startsWith("53") || code.startsWith("57P");
  }
  return true;
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
