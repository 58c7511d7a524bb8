import {
  type PgConnectionConfig,
  PgTlsError,
  pgConnectionConfig,
  readCaFile,
} from "../../../runtime/pgTls.ts";
import { ConfigError } from "./configError.ts";

/** Help on `TLS_CA_FILE`, under each command that connects to PostgreSQL (indented as DATABASE_URL's). */
export const TLS_CA_FILE_HELP = `
  TLS_CA_FILE   PEM bundle of the CA certificates to trust for PostgreSQL over TLS, when the database
                URL has sslmode=require (the chain is then checked), verify-ca or verify-full and no
                sslrootcert. No sslmode or sslmode=disable: no TLS. Read at start.`;

/**
 * `TLS_CA_FILE` as given, after checking that it is a readable PEM bundle of certificates (a wrong
 * path fails at start, not at the first connection). Undefined when unset or empty.
 *
 * @throws ConfigError naming TLS_CA_FILE
 */
export function compileTlsCaFile(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const path = env["TLS_CA_FILE"];
  if (path === undefined || path.trim() === "") return undefined;
  try {
    readCaFile(path, "TLS_CA_FILE");
  } catch (err) {
    throw err instanceof PgTlsError ? new ConfigError(err.message) : err;
  }
  return path;
}

/**
 * What to give `new pg.Pool`/`new pg.Client` for a connection string of a command (see
 * runtime/pgTls.ts), its TLS errors as ConfigError (exit code 2) naming `setting`.
 *
 * @throws ConfigError naming `setting` or TLS_CA_FILE
 */
export function compilePgConnection(
  url: string,
  caFile: string | undefined,
  setting: string,
): PgConnectionConfig {
  try {
    return pgConnectionConfig(url, { caFile, setting });
  } catch (err) {
    throw err instanceof PgTlsError ? new ConfigError(err.message) : err;
  }
}
