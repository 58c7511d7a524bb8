/** Longest message {@link errorMessage} returns (status conditions, Events and log fields stay readable). */
const MAX_MESSAGE = 512;

/**
 * A short, single-line message for status, Events and logs — never a whole error object (which may
 * carry a connection string). A Kubernetes API error (client-node's `ApiException`, whose message
 * spans several lines of code, body and headers) carries the apiserver's Status as its JSON `body`:
 * that Status's `message` wins. At most 512 characters.
 */
export function errorMessage(err: unknown): string {
  const e = err as { body?: unknown; message?: unknown } | null | undefined;
  const status = statusMessage(e?.body);
  if (status) return firstLine(status);
  return firstLine(String(e?.message ?? err));
}

/** The `message` of a Kubernetes Status body (JSON text, or already parsed), if there is one. */
function statusMessage(body: unknown): string | undefined {
  let parsed: unknown = body;
  if (typeof body === "string") {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined; // not JSON: the error's own message is used
    }
  }
  const message = (parsed as { message?: unknown } | null | undefined)?.message;
  return typeof message === "string" && message !== "" ? message : undefined;
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.slice(0, MAX_MESSAGE);
}

/**
 * The HTTP status of a failed Kubernetes API call: client-node's `ApiException` carries it as
 * `code`, a raw HTTP error as `statusCode`. Undefined for anything else — a socket error's string
 * `code` (`ECONNREFUSED`) is not a status.
 */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null | undefined;
  if (typeof e?.code === "number") return e.code;
  if (typeof e?.statusCode === "number") return e.statusCode;
  return undefined;
}
