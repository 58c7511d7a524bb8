/** What {@link redactUrl} prints instead of a string it cannot take apart safely. */
export const UNPARSABLE_URL = "<unparsable URL>";

/** Schemes whose URLs are shown; anything else may be a pasted secret that merely contains a colon. */
const SCHEMES = new Set(["postgres:", "postgresql:", "redis:", "rediss:", "http:", "https:"]);
/** Schemes of connection strings whose driver (pg, ioredis) reads a `host` query parameter. */
const HOST_PARAM_SCHEMES = new Set(["postgres:", "postgresql:", "redis:", "rediss:"]);

/**
 * After a host part without `@`: an `@` in the path, in a query parameter's name or in the fragment
 * means the host part ended inside a password (`postgres://app:pa/ss@db/app`). An `@` in a
 * parameter's value (`?password=p@ss`) does not.
 */
const MISPLACED_AT = /^[^?#]*@|[?&][^=&#]*@|#.*@/;

/**
 * A connection string (`DATABASE_URL`, `VALKEY_URL`) or a Prometheus URL as logs, errors and status
 * may show it: scheme, host, port and database (the path) only. The user name, the password, the
 * query string (pg and ioredis read `?password=`, `?sslpassword=` … from it) and the fragment are
 * never part of the result. A host given as a `host` query parameter (a Unix socket directory:
 * `postgres:///app?host=/run/postgresql`) is shown percent-encoded in the host's place, the way
 * libpq writes a socket host (`postgres://%2Frun%2Fpostgresql/app`).
 *
 * Anything else yields the fixed {@link UNPARSABLE_URL}, never a part of the input: a string that
 * does not parse, a scheme other than postgres(ql), redis(s) and http(s), no `//` after the
 * scheme, and a URL
 * with a misplaced `@` (a password with an unencoded `/`, `?` or `#` ends the host part early, and
 * what looks like the host is then the user name).
 */
export function redactUrl(raw: string): string {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*:)\/\//.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined || !SCHEMES.has(scheme)) return UNPARSABLE_URL;
  const rest = raw.slice(scheme.length + 2);
  // A backslash ends the host part of an http(s) URL as "/" does.
  const authorityEnd = rest.search(/[/?#\\]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const tail = rest.slice(authority.length);
  const at = authority.lastIndexOf("@");
  if (at < 0 && MISPLACED_AT.test(tail)) return UNPARSABLE_URL;
  // Credentials are cut off before parsing: pg also takes `postgres://user:pass@/db?host=…`, which
  // URL refuses (credentials without a host).
  let url: URL;
  try {
    url = new URL(`${scheme}//${authority.slice(at + 1)}${tail}`);
  } catch {
    return UNPARSABLE_URL;
  }

  let host = url.hostname;
  if (host === "" && HOST_PARAM_SCHEMES.has(scheme)) {
    const param = url.searchParams.get("host");
    if (param) host = encodeURIComponent(param);
  }
  const port = url.port === "" ? "" : `:${url.port}`;
  return `${scheme}//${host}${port}${url.pathname}`;
}
