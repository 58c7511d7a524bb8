import { ConfigError } from "./configError.ts";

const SCHEMES = ["postgres:", "postgresql:"];

/** Description of `--database-url` in the commands that take it. */
export const DATABASE_URL_FLAG =
  "PostgreSQL connection string (default: $DATABASE_URL; prefer the variable: a flag shows in ps)";

/**
 * Help shown under a command that takes `--database-url`; `more` adds lines about other variables of
 * that command, indented as the DATABASE_URL one.
 */
export function databaseUrlHelp(more = ""): string {
  return `
Environment:
  DATABASE_URL  PostgreSQL connection string (postgres:// or postgresql://), when --database-url is
                not given. Prefer it to the flag: a flag's value, password included, shows in ps.${more}
Exit codes: 0 on success, 2 for bad usage or an invalid setting, 1 for any other failure.`;
}

/** Help shown under each command that takes `--database-url` (and no other connection string). */
export const DATABASE_URL_HELP = databaseUrlHelp();

/**
 * Checks a PostgreSQL connection string given to a command (`--database-url` or `DATABASE_URL`):
 * anything but `postgres://` or `postgresql://` is refused before a connection is tried (pg would
 * otherwise read a `mysql://` URL as host and port and fail with a resolver error). The value is
 * never echoed: it may carry a password.
 *
 * @throws ConfigError naming `setting`
 */
export function requirePostgresUrl(raw: string | undefined, setting: string): string {
  if (raw === undefined || raw.trim() === "") {
    throw new ConfigError(
      `${setting}: no database given; set DATABASE_URL (--database-url works too, but its value shows in ps)`,
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${setting}: not a valid URL (expected postgres://… or postgresql://…)`);
  }
  if (!SCHEMES.includes(url.protocol)) {
    // The scheme is named only in the `scheme://` form: in "hunter2:more" it is part of a secret.
    const named = raw.toLowerCase().startsWith(`${url.protocol}//`) ? ` "${url.protocol}"` : "";
    throw new ConfigError(`${setting}: unsupported scheme${named} (expected postgres: or postgresql:)`);
  }
  return raw;
}
