/**
 * Which PostgreSQL errors mean "the database is unavailable" — they open the evaluator's circuit
 * breaker and make the operator report `DatabaseUnavailable` and retry — as opposed to "this request
 * was bad" (a constraint violation, a syntax error, a statement timeout), which a retry would not fix.
 */

/** Node socket and DNS error codes: the server could not be reached, or the connection broke. */
const SOCKET_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EADDRNOTAVAIL",
]);

/** A SQLSTATE: five digits or upper-case letters, the first two naming its class. */
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Class 57 operator intervention that ends or refuses sessions: admin_shutdown, crash_shutdown, cannot_connect_now. */
const SHUTDOWN_STATES: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03"]);

/**
 * Errors node-postgres raises itself, without a code, when the connection is gone or never came up.
 * Anchored, so an unrelated error that merely mentions a connection does not count.
 */
const CLIENT_MESSAGES: readonly RegExp[] = [
  /^Connection terminated/, // the socket closed: "…", "… unexpectedly", "… due to connection timeout" (pg-pool)
  /^timeout expired$/, // connectionTimeoutMillis elapsed while connecting (pg Client)
  /^timeout exceeded when trying to connect$/, // no pooled client within connectionTimeoutMillis (pg-pool)
  /^Query read timeout$/, // query_timeout: the server stopped answering mid-query
  /^Client has encountered a connection error and is not queryable$/,
];

/** Bounds the walk through `cause` and `errors` (a cyclic chain must not hang the classifier). */
const MAX_DEPTH = 5;

/**
 * A PostgreSQL outage:
 * - a node socket/DNS error (`ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, `ENOTFOUND`, `EPIPE`,
 *   `EHOSTUNREACH` …);
 * - a SQLSTATE of class 08 (connection exception), class 53 (insufficient resources, e.g. too many
 *   connections) or 57P01–57P03 (the server shutting down or starting up);
 * - node-postgres's own connection errors ("Connection terminated unexpectedly", connect and read
 *   timeouts), which carry no code;
 * - an `AggregateError` whose every error is one (node tries each address of a host), or an error
 *   whose `cause` is one.
 * Anything else — any other SQLSTATE (23505, 42P01, 57014 statement timeout …), a programming error,
 * an unknown error — is not.
 */
export function isPostgresOutage(err: unknown): boolean {
  return classify(err, 0);
}

function classify(err: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH || err === null || typeof err !== "object") return false;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown; cause?: unknown };
  if (typeof e.code === "string") {
    if (SOCKET_CODES.has(e.code)) return true;
    // A SQLSTATE is the server's verdict: its class decides, whatever the message says.
    if (SQLSTATE.test(e.code)) {
      return e.code.startsWith("08") || e.code.startsWith("53") || SHUTDOWN_STATES.has(e.code);
    }
  }
  if (typeof e.message === "string" && CLIENT_MESSAGES.some((re) => re.test(e.message as string))) {
    return true;
  }
  if (Array.isArray(e.errors) && e.errors.length > 0) {
    return e.errors.every((inner) => classify(inner, depth + 1));
  }
  return e.cause !== undefined && classify(e.cause, depth + 1);
}
