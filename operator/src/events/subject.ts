/**
 * NATS subjects of alert events: `<prefix>.<tenant token>`, one subject per tenant, so a consumer
 * can filter on a tenant (`alerts.events.acme`) or take all of them (`alerts.events.>`).
 *
 * Tenant ids may hold characters a subject token cannot (`.`, `*`, `>`, and no whitespace is ever
 * allowed) and others that tools handle badly, so a tenant id is escaped into a token: ASCII
 * letters, digits, `-` and `_` stay as they are; every other character becomes `~` followed by
 * the upper-case hex of each of its UTF-8 bytes (`acme.eu` → `acme~2Eeu`, `~` → `~7E`,
 * `é` → `~C3~A9`). The mapping is injective (`~` is always escaped), so two tenants never share
 * a subject, and {@link tenantOfToken} reverses it.
 */

const SAFE = /^[A-Za-z0-9_-]$/;

/** A subject prefix: dot-separated tokens of ASCII letters, digits, `-` and `_` (no wildcards). */
export const SUBJECT_PREFIX_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** The subject token of a tenant id (see the module comment). */
export function tenantToken(tenantId: string): string {
  let out = "";
  for (const ch of tenantId) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, "utf8")) out += `~${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The tenant id of a token made by {@link tenantToken}. */
export function tenantOfToken(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; ) {
    if (token[i] === "~") {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** The subject of an event of `tenantId` under `prefix`. */
export function eventSubject(prefix: string, tenantId: string): string {
  return `${prefix}.${tenantToken(tenantId)}`;
}
