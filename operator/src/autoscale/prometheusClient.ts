/**
 * A Prometheus HTTP API client for instant queries (`/api/v1/query`), the only call the autoscaler
 * makes. It returns a vector or a scalar, or throws a {@link PrometheusQueryError} whose `kind` says
 * whether Prometheus was not reached, too slow, or answered something unusable.
 *
 * Transport is `node:http`/`node:https`, not the global `fetch`: Node's fetch cannot take a CA per
 * request (that needs undici's `Agent`, which is not a dependency here, and
 * `tls.setDefaultCACertificates` would change the trust of the whole process, Kubernetes client
 * included). One transport keeps one error mapping for http and https alike.
 *
 * Credentials are never logged and never part of an error: messages name the endpoint without its
 * query string, and the body excerpts of error answers have every credential blanked out.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { redactUrl } from "../../../runtime/redactUrl.ts";

/** How a query failed; readSignals maps `unreachable`/`timeout` to Unreachable, the rest to QueryError. */
export type PrometheusErrorKind =
  | "unreachable" // no connection, reset, TLS failure
  | "timeout" // no complete answer within the timeout
  | "http" // a non-2xx answer without Prometheus's JSON envelope (a proxy, a wrong path)
  | "api" // Prometheus's envelope with status "error" (bad_data, execution, timeout…)
  | "bad-response"; // a 2xx answer that is not a usable instant-query result

/** A failed query. The message names the endpoint and the cause, never a credential. */
export class PrometheusQueryError extends Error {
  override readonly name = "PrometheusQueryError";
  readonly kind: PrometheusErrorKind;
  /** HTTP status of the answer, when there was one. */
  readonly status: number | undefined;
  /** Prometheus's `errorType` (`bad_data`, `execution`, `timeout`…), for kind `api`. */
  readonly errorType: string | undefined;

  constructor(
    kind: PrometheusErrorKind,
    message: string,
    details: { status?: number; errorType?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.kind = kind;
    this.status = details.status;
    this.errorType = details.errorType;
  }
}

/** Credentials for Prometheus (or the proxy in front of it): a bearer token or basic auth. */
export type PrometheusAuth =
  | { readonly bearerToken: string }
  | { readonly username: string; readonly password: string };

export interface PrometheusClientOptions {
  /** Base URL, e.g. `http://prometheus.monitoring:9090` or `https://host/prometheus` (a path prefix is kept). */
  readonly url: string;
  readonly auth?: PrometheusAuth | undefined;
  /** PEM CA bundle trusted for an https URL, instead of Node's bundled roots. */
  readonly caPem?: string | undefined;
  /** Timeout of a query without its own `timeoutMs` (default 10 s). */
  readonly defaultTimeoutMs?: number | undefined;
  /** `GET` (default) puts the query in the URL; `POST` sends it as a form, for queries too long for a URL. */
  readonly method?: "GET" | "POST" | undefined;
  /** Largest answer body accepted, bytes (default 8 MiB): a query matching every series must not exhaust memory. */
  readonly maxResponseBytes?: number | undefined;
}

export interface InstantQueryOptions {
  /** Evaluation time, ms since the epoch (default: Prometheus's now). */
  readonly time?: number | undefined;
  /** Whole-request timeout, ms; also sent as Prometheus's `timeout` so it stops evaluating too. */
  readonly timeoutMs?: number | undefined;
}

/** One series of an instant vector. `value` may be NaN or ±Infinity. */
export interface PrometheusSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Sample timestamp, ms since the epoch. */
  readonly timestampMs: number;
}

/** An instant query's answer: a vector or a scalar, with Prometheus's warnings. */
export type InstantQueryResult =
  | {
      readonly resultType: "vector";
      readonly series: readonly PrometheusSeries[];
      readonly warnings: readonly string[];
    }
  | {
      readonly resultType: "scalar";
      readonly value: number;
      readonly timestampMs: number;
      readonly warnings: readonly string[];
    };

/** What readSignals needs: one instant query. */
export interface PrometheusClient {
  /** Runs `promql` as an instant query; throws {@link PrometheusQueryError}. */
  query(promql: string, opts?: InstantQueryOptions): Promise<InstantQueryResult>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** How much of an error answer's body goes into the message. */
const EXCERPT_CHARS = 200;

/**
 * A client for the Prometheus at `opts.url`. Throws a TypeError for a URL that is not http(s) or
 * that carries credentials (they belong in `auth`, where they stay out of messages).
 */
export function createPrometheusClient(opts: PrometheusClientOptions): PrometheusClient {
  let base: URL;
  try {
    base = new URL(opts.url);
  } catch {
    throw new TypeError("Prometheus URL is not a valid URL");
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    // Not echoed: in a pasted "token:rest" the "scheme" is part of a secret.
    throw new TypeError("Prometheus URL must be an http:// or https:// URL");
  }
  if (base.username !== "" || base.password !== "") {
    throw new TypeError("Prometheus URL must not carry credentials: pass them as auth");
  }
  const prefix = base.pathname.endsWith("/") ? base.pathname : `${base.pathname}/`;
  const endpoint = new URL(`${prefix}api/v1/query`, base.origin);
  /** The endpoint as errors name it: no query string (the PromQL), no credentials. */
  const where = redactUrl(endpoint.href);
  const method = opts.method ?? "GET";
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const secrets = secretsOf(opts.auth);
  const redact = (text: string) => secrets.reduce((t, s) => t.replaceAll(s, "[redacted]"), text);

  const headers: Record<string, string> = { accept: "application/json", "user-agent": "evaluator-operator" };
  if (opts.auth) headers["authorization"] = authorizationHeader(opts.auth);

  return {
    async query(promql, queryOpts = {}) {
      const timeoutMs = queryOpts.timeoutMs ?? opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
      const params = new URLSearchParams({ query: promql, timeout: `${timeoutMs / 1000}` });
      if (queryOpts.time !== undefined) params.set("time", (queryOpts.time / 1000).toFixed(3));
      const url = new URL(endpoint);
      let body: string | undefined;
      if (method === "GET") url.search = params.toString();
      else body = params.toString();

      const timeout = AbortSignal.timeout(timeoutMs);
      let answer: RawAnswer;
      try {
        answer = await send(url, {
          where,
          method,
          headers: body === undefined ? headers : { ...headers, "content-type": FORM },
          body,
          signal: timeout,
          ca: opts.caPem,
          maxBytes,
        });
      } catch (err) {
        // The timeout aborts the request with an AbortError; check the signal, not the error's shape.
        if (timeout.aborted) {
          throw new PrometheusQueryError(
            "timeout",
            `Prometheus at ${where} did not answer within ${timeoutMs} ms`,
          );
        }
        if (err instanceof PrometheusQueryError) throw err;
        const message = `Prometheus at ${where} unreachable: ${describeCause(err)}`;
        throw new PrometheusQueryError("unreachable", message, { cause: err });
      }
      return decodeAnswer(answer, where, redact);
    },
  };
}

const FORM = "application/x-www-form-urlencoded";

interface RawAnswer {
  readonly status: number;
  readonly body: string;
}

/** One request on its own connection (`agent: false`): no pooled socket outlives a client the operator drops. */
function send(
  url: URL,
  req: {
    where: string;
    method: string;
    headers: Record<string, string>;
    body: string | undefined;
    signal: AbortSignal;
    ca: string | undefined;
    maxBytes: number;
  },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const options = { method: req.method, headers: req.headers, signal: req.signal, agent: false as const };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > req.maxBytes) {
          const tooLarge = new PrometheusQueryError(
            "bad-response",
            `Prometheus at ${req.where} answered more than ${req.maxBytes} bytes: narrow the query`,
            { status: res.statusCode ?? 0 },
          );
          reject(tooLarge);
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", reject);
    };
    const outgoing =
      url.protocol === "https:"
        ? httpsRequest(url, req.ca === undefined ? options : { ...options, ca: req.ca }, onResponse)
        : httpRequest(url, options, onResponse);
    outgoing.on("error", reject);
    // Settle on the timeout whatever stage the exchange is in (connecting, headers, mid-body).
    req.signal.addEventListener("abort", () => reject(req.signal.reason), { once: true });
    outgoing.end(req.body);
  });
}

/** The envelope `{status, data, errorType, error, warnings}` → a result, or the matching error. */
function decodeAnswer(
  answer: RawAnswer,
  where: string,
  redact: (text: string) => string,
): InstantQueryResult {
  const envelope = parseJson(answer.body);
  const ok = answer.status >= 200 && answer.status < 300;
  // Prometheus answers API errors (400 bad_data, 422 execution, 503 timeout…) with the envelope: use it.
  if (isRecord(envelope) && envelope["status"] === "error") {
    const errorType = typeof envelope["errorType"] === "string" ? envelope["errorType"] : "unknown";
    const error = typeof envelope["error"] === "string" ? redact(envelope["error"]) : "(no message)";
    throw new PrometheusQueryError(
      "api",
      `Prometheus at ${where} answered ${answer.status} ${errorType}: ${error}`,
      { status: answer.status, errorType },
    );
  }
  if (!ok) {
    // A proxy, a load balancer or a wrong path prefix: no envelope, only a status and maybe a page.
    const excerpt = redact(answer.body.replace(/\s+/g, " ").trim().slice(0, EXCERPT_CHARS));
    throw new PrometheusQueryError(
      "http",
      `Prometheus at ${where} answered HTTP ${answer.status}${excerpt ? `: ${excerpt}` : ""}`,
      { status: answer.status },
    );
  }
  const bad = (why: string) =>
    new PrometheusQueryError("bad-response", `Prometheus at ${where} answered ${why}`, {
      status: answer.status,
    });
  if (!isRecord(envelope)) throw bad("a body that is not a JSON object");
  if (envelope["status"] !== "success") throw bad(`status ${JSON.stringify(envelope["status"])}`);
  const data = envelope["data"];
  if (!isRecord(data)) throw bad("no data");
  const warnings = Array.isArray(envelope["warnings"])
    ? envelope["warnings"].filter((w): w is string => typeof w === "string")
    : [];

  switch (data["resultType"]) {
    case "scalar": {
      const sample = parseSample(data["result"]);
      if (!sample) throw bad("a malformed scalar");
      return { resultType: "scalar", ...sample, warnings };
    }
    case "vector": {
      const result = data["result"];
      if (!Array.isArray(result)) throw bad("a malformed vector");
      const series: PrometheusSeries[] = [];
      for (const item of result) {
        const labels = isRecord(item) ? item["metric"] : undefined;
        // A native-histogram sample has `histogram` instead of `value`: not a number the autoscaler can use.
        const sample = isRecord(item) ? parseSample(item["value"]) : undefined;
        if (!isRecord(labels) || !sample) throw bad("a vector sample without labels or a float value");
        series.push({ labels: stringLabels(labels), ...sample });
      }
      return { resultType: "vector", series, warnings };
    }
    case "matrix":
    case "string":
      // An instant query returns these for a range selector or a string literal: the query is wrong.
      throw bad(`a ${data["resultType"]} result: the query must return an instant vector or a scalar`);
    default:
      throw bad(`an unknown resultType ${JSON.stringify(data["resultType"])}`);
  }
}

/** `[<unix seconds>, "<value>"]` → value and ms timestamp. */
function parseSample(raw: unknown): { value: number; timestampMs: number } | undefined {
  if (!Array.isArray(raw) || raw.length !== 2) return undefined;
  const [ts, text] = raw as [unknown, unknown];
  if (typeof ts !== "number" || typeof text !== "string") return undefined;
  const value = parsePrometheusValue(text);
  return value === undefined ? undefined : { value, timestampMs: Math.round(ts * 1000) };
}

/**
 * A sample value as Prometheus writes it (Go's `strconv.FormatFloat`): `"1.5"`, `"1e+06"`, `"NaN"`,
 * `"+Inf"`, `"-Inf"`. `Number("+Inf")` is NaN, hence the explicit cases. Undefined when not a number.
 */
export function parsePrometheusValue(text: string): number | undefined {
  switch (text) {
    case "NaN":
      return Number.NaN;
    case "+Inf":
      return Number.POSITIVE_INFINITY;
    case "-Inf":
      return Number.NEGATIVE_INFINITY;
  }
  const value = Number(text);
  // Number("") is 0 and Number("Infinity") is Infinity: neither is what Prometheus writes for a float.
  return text.trim() === "" || !Number.isFinite(value) ? undefined : value;
}

function stringLabels(raw: Record<string, unknown>): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (typeof v === "string") labels[k] = v;
  return labels;
}

function authorizationHeader(auth: PrometheusAuth): string {
  if ("bearerToken" in auth) return `Bearer ${auth.bearerToken}`;
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")}`;
}

/** Every form in which a credential could come back in an error body. */
function secretsOf(auth: PrometheusAuth | undefined): string[] {
  if (!auth) return [];
  const raw =
    "bearerToken" in auth
      ? [auth.bearerToken]
      : [auth.password, Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")];
  // Longest first, so a secret containing another is blanked whole; empty strings would match everywhere.
  return raw.filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
