/**
 * The Prometheus client and readSignals against a real, private Prometheus (hack/prometheus.ts,
 * scrape interval 1 s) scraping per-shard gauges and histograms this file serves for shards 0..2,
 * plus local servers for what a real Prometheus does not do on demand: never answering, sitting
 * behind an auth-checking proxy, and serving https with a private CA.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningPrometheus, startPrometheus } from "../../hack/prometheus.ts";
import {
  createPrometheusClient,
  type InstantQueryResult,
  type PrometheusClient,
  PrometheusQueryError,
} from "../../operator/src/autoscale/prometheusClient.ts";
import {
  DEFAULT_SIGNAL_QUERIES,
  readSignals,
  renderQuery,
} from "../../operator/src/autoscale/readSignals.ts";
import { freePort } from "../support/ports.ts";

const NAMESPACE = "prom-client-it";
const SET = "rules";
/** Held queue depth of shards 0, 1, 2 (sum 23). */
const QUEUE_DEPTH = [5, 7, 11];
const BUCKETS = ["0.1", "0.5", "1", "+Inf"];
/**
 * Shard s ticks land in bucket s only, so its p95 interpolates inside that bucket:
 * 0.95 × 0.1 = 0.095, 0.1 + 0.95 × 0.4 = 0.48, 0.5 + 0.95 × 0.5 = 0.975.
 */
const P95 = [0.095, 0.48, 0.975];
const BEARER = "s3cret-bearer-token";
const USER = "autoscaler";
const PASSWORD = "pa55-w0rd-secret";

/** The default queue-depth query for this set. */
const QUEUE_QUERY = renderQuery(DEFAULT_SIGNAL_QUERIES.queueDepth, { namespace: NAMESPACE, name: SET });

let tmp: string;
let prom: RunningPrometheus;
let client: PrometheusClient;
const servers: Server[] = [];

/** The evaluator's exposition for shards 0..2; tick counters grow by 10 per scrape so `rate` is non-zero. */
let scrapes = 0;
function exposition(): string {
  scrapes++;
  const labels = (shard: number) => `namespace="${NAMESPACE}",shardset="${SET}",shard="${shard}"`;
  const lines = ["# TYPE evaluator_queue_depth_held gauge"];
  for (const [shard, depth] of QUEUE_DEPTH.entries()) {
    lines.push(`evaluator_queue_depth_held{${labels(shard)}} ${depth}`);
  }
  lines.push("# TYPE evaluator_tick_duration_seconds histogram");
  const ticks = scrapes * 10;
  for (const shard of [0, 1, 2]) {
    BUCKETS.forEach((le, bucket) => {
      const cumulative = bucket >= shard ? ticks : 0;
      lines.push(`evaluator_tick_duration_seconds_bucket{${labels(shard)},le="${le}"} ${cumulative}`);
    });
    lines.push(`evaluator_tick_duration_seconds_sum{${labels(shard)}} ${ticks * P95[shard]!}`);
    lines.push(`evaluator_tick_duration_seconds_count{${labels(shard)}} ${ticks}`);
  }
  return `${lines.join("\n")}\n`;
}

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const addr = server.address();
  if (typeof addr !== "object" || !addr) throw new Error("no address");
  return `127.0.0.1:${addr.port}`;
}

/**
 * A proxy to Prometheus that first checks `Authorization` (recording each one it got); a refusal
 * echoes the header back, as a careless proxy might, to prove the client blanks it out.
 */
function authProxy(accepted: string, seen: string[]): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const auth = req.headers.authorization ?? "";
    seen.push(auth);
    if (auth !== accepted) {
      res.writeHead(401, { "content-type": "text/plain" });
      res.end(`unauthorized: ${auth}`);
      return;
    }
    forward(req, res);
  };
}

function forward(req: IncomingMessage, res: ServerResponse): void {
  const headers = { ...req.headers };
  delete headers.authorization;
  delete headers.host;
  const upstream = httpRequest(
    new URL(req.url ?? "/", prom.url),
    { method: req.method, headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
}

/** The error a failed query throws (fails the test when it does not throw one). */
async function queryError(c: PrometheusClient, promql: string): Promise<PrometheusQueryError> {
  const err = await c.query(promql).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PrometheusQueryError);
  return err as PrometheusQueryError;
}

function signals(runningShards: number, overrides: { namespace?: string; name?: string } = {}) {
  return {
    queueDepthQuery: DEFAULT_SIGNAL_QUERIES.queueDepth,
    tickLatencyQuery: DEFAULT_SIGNAL_QUERIES.tickLatency,
    namespace: overrides.namespace ?? NAMESPACE,
    name: overrides.name ?? SET,
    runningShards,
    now: Date.now(),
    timeoutMs: 5000,
  };
}

function seriesValues(result: InstantQueryResult): Record<string, number> {
  if (result.resultType !== "vector") throw new Error(`expected a vector, got ${result.resultType}`);
  return Object.fromEntries(result.series.map((s) => [s.labels["shard"] ?? "", s.value]));
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "eo-prom-client-"));
  const metrics = await listen(
    createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(exposition());
    }),
  );
  const fileSd = join(tmp, "targets.json");
  await writeFile(fileSd, JSON.stringify([{ targets: [metrics] }]));
  prom = await startPrometheus({ fileSdFiles: [fileSd], port: await freePort(), scrapeIntervalSeconds: 1 });
  client = createPrometheusClient({ url: prom.url, defaultTimeoutMs: 5000 });

  // Queryable once both signals have a value for every shard (the rate needs two scrapes).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await readSignals(client, signals(3));
    if ("value" in r.queueDepth && "value" in r.tickLatencyP95Seconds) break;
    if (Date.now() > deadline) throw new Error(`no data from Prometheus: ${JSON.stringify(r)}`);
    await new Promise((ok) => setTimeout(ok, 250));
  }
});

afterAll(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  await prom?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("Prometheus client against a real Prometheus", () => {
  it("answers a vector with labels and values, by GET and by POST, at the requested time", async () => {
    const raw = await client.query(`evaluator_queue_depth_held{namespace="${NAMESPACE}",shardset="${SET}"}`);
    expect(raw.resultType).toBe("vector");
    if (raw.resultType !== "vector") return;
    expect(raw.series).toHaveLength(3);
    expect(raw.series[0]!.labels).toMatchObject({
      __name__: "evaluator_queue_depth_held",
      namespace: NAMESPACE,
      shardset: SET,
      job: "evaluator",
    });
    expect(Math.abs(raw.series[0]!.timestampMs - Date.now())).toBeLessThan(10_000);

    const byPost = createPrometheusClient({ url: prom.url, method: "POST" });
    for (const c of [client, byPost]) {
      expect(seriesValues(await c.query(QUEUE_QUERY))).toEqual({ 0: 5, 1: 7, 2: 11 });
    }

    // `time` is sent: an hour ago there was nothing.
    expect(await client.query(QUEUE_QUERY, { time: Date.now() - 3_600_000 })).toMatchObject({ series: [] });
  });

  it("answers a scalar", async () => {
    expect(await client.query("42")).toMatchObject({ resultType: "scalar", value: 42 });
    const sum = await client.query(`scalar(sum(evaluator_queue_depth_held{shardset="${SET}"}))`);
    expect(sum).toMatchObject({ resultType: "scalar", value: 23 });
  });

  it("reads NaN, +Inf and -Inf", async () => {
    expect(await client.query("0/0")).toMatchObject({ resultType: "scalar", value: Number.NaN });
    expect(await client.query("1/0")).toMatchObject({ value: Number.POSITIVE_INFINITY });
    expect(await client.query("-1/0")).toMatchObject({ value: Number.NEGATIVE_INFINITY });
    const nanVector = await client.query("vector(0/0)");
    expect(nanVector.resultType === "vector" && nanVector.series[0]!.value).toBeNaN();
  });

  it("answers an empty vector", async () => {
    expect(await client.query('evaluator_queue_depth_held{shardset="absent"}')).toEqual({
      resultType: "vector",
      series: [],
      warnings: [],
    });
  });

  it("reports Prometheus's error envelope as kind api with its errorType", async () => {
    const err = await queryError(client, "sum(");
    expect(err).toMatchObject({ kind: "api", status: 400, errorType: "bad_data" });
    expect(err.message).toMatch(/answered 400 bad_data: .*parse error/);
    expect(err.message).not.toContain("query=");
  });

  it("reports a non-2xx answer without the envelope as kind http", async () => {
    const wrongPrefix = createPrometheusClient({ url: `${prom.url}/no-such-prefix` });
    const err = await queryError(wrongPrefix, "42");
    expect(err).toMatchObject({ kind: "http", status: 404 });
    expect(err.message).toContain("/no-such-prefix/api/v1/query answered HTTP 404: 404 page not found");
  });

  it("rejects range-vector and string results, and oversized answers, as kind bad-response", async () => {
    const matrix = await queryError(client, `evaluator_queue_depth_held{shardset="${SET}"}[1m]`);
    expect(matrix).toMatchObject({ kind: "bad-response", status: 200 });
    expect(matrix.message).toContain("a matrix result");
    expect(await queryError(client, '"text"')).toMatchObject({ kind: "bad-response" });

    // An answer too large for the limit is refused before it is parsed.
    const small = createPrometheusClient({ url: prom.url, maxResponseBytes: 100 });
    const tooLarge = await queryError(small, `evaluator_queue_depth_held{shardset="${SET}"}`);
    expect(tooLarge).toMatchObject({ kind: "bad-response" });
    expect(tooLarge.message).toContain("answered more than 100 bytes");
  });
});

describe("readSignals against a real Prometheus", () => {
  it("sums the queue depth and takes the slowest shard's p95 with every shard reporting", async () => {
    const r = await readSignals(client, signals(3));
    expect(r.queueDepth).toEqual({ value: 23 });
    expect("value" in r.tickLatencyP95Seconds && r.tickLatencyP95Seconds.value).toBeCloseTo(P95[2]!, 6);
  });

  it("is Stale when a running shard does not report, and ignores the series of gone shards", async () => {
    const four = await readSignals(client, signals(4));
    expect(four.queueDepth).toEqual({ missing: "Stale", detail: "no series for shard 3 (4 running)" });
    expect(four.tickLatencyP95Seconds).toEqual({
      missing: "Stale",
      detail: "no series for shard 3 (4 running)",
    });

    const two = await readSignals(client, signals(2));
    expect(two.queueDepth).toEqual({ value: 12 });
    expect("value" in two.tickLatencyP95Seconds && two.tickLatencyP95Seconds.value).toBeCloseTo(P95[1]!, 6);
  });

  it("is Empty for a set nothing reports, NotANumber for NaN and +Inf, QueryError for a bad query", async () => {
    const absent = await readSignals(client, signals(3, { name: "absent" }));
    expect(absent.queueDepth).toEqual({ missing: "Empty", detail: "the query returned no series" });
    expect(absent.tickLatencyP95Seconds).toEqual({
      missing: "Empty",
      detail: "the query returned no series",
    });

    const odd = await readSignals(client, {
      ...signals(3),
      queueDepthQuery: "vector(0/0)",
      tickLatencyQuery: "1/0",
    });
    expect(odd.queueDepth).toEqual({ missing: "NotANumber", detail: "the series is NaN" });
    expect(odd.tickLatencyP95Seconds).toEqual({ missing: "NotANumber", detail: "the scalar is +Inf" });

    const bad = await readSignals(client, {
      ...signals(3),
      queueDepthQuery: "sum(",
      tickLatencyQuery: "x[1m]",
    });
    expect(bad.queueDepth).toMatchObject({
      missing: "QueryError",
      detail: expect.stringContaining("bad_data"),
    });
    expect(bad.tickLatencyP95Seconds).toMatchObject({ missing: "QueryError" });
  });
});

describe("Prometheus client failures", () => {
  it("times out against a server that never answers, before or after the headers", async () => {
    const silent = await listen(
      createServer((req, res) => {
        // Never answers "/" at all; answers "/slow-body/…" with headers and half a body.
        if (req.url?.startsWith("/slow-body")) {
          res.writeHead(200, { "content-type": "application/json" });
          res.write('{"status":"success",');
        }
      }),
    );
    for (const url of [`http://${silent}`, `http://${silent}/slow-body`]) {
      const started = Date.now();
      const err = await queryError(createPrometheusClient({ url, defaultTimeoutMs: 300 }), "42");
      expect(err.kind).toBe("timeout");
      expect(err.message).toContain("did not answer within 300 ms");
      expect(Date.now() - started).toBeLessThan(2000);
    }

    // Both signals at once: the read takes one timeout, not two.
    const started = Date.now();
    const r = await readSignals(createPrometheusClient({ url: `http://${silent}` }), {
      ...signals(3),
      timeoutMs: 300,
    });
    expect(r.queueDepth).toMatchObject({ missing: "Unreachable" });
    expect(r.tickLatencyP95Seconds).toMatchObject({ missing: "Unreachable" });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("is unreachable on a closed port", async () => {
    const closed = createPrometheusClient({ url: `http://127.0.0.1:${await freePort()}` });
    const err = await queryError(closed, "42");
    expect(err.kind).toBe("unreachable");
    expect(err.message).toContain("ECONNREFUSED");
    const r = await readSignals(closed, signals(3));
    expect(r.queueDepth).toMatchObject({
      missing: "Unreachable",
      detail: expect.stringContaining("ECONNREFUSED"),
    });
  });
});

describe("Prometheus client credentials", () => {
  it("sends a bearer token, and keeps a refused one out of the error", async () => {
    const seen: string[] = [];
    const proxy = await listen(createServer(authProxy(`Bearer ${BEARER}`, seen)));

    const good = createPrometheusClient({ url: `http://${proxy}`, auth: { bearerToken: BEARER } });
    expect(await good.query("42")).toMatchObject({ value: 42 });
    expect(seen).toEqual([`Bearer ${BEARER}`]);

    const wrong = "wrong-bearer-token";
    const err = await queryError(
      createPrometheusClient({ url: `http://${proxy}`, auth: { bearerToken: wrong } }),
      "42",
    );
    expect(err).toMatchObject({ kind: "http", status: 401 });
    expect(seen[1]).toBe(`Bearer ${wrong}`);
    expect(err.message).toContain("unauthorized: Bearer [redacted]");
    expect(`${err.message}${err.stack}`).not.toContain(wrong);
  });

  it("sends basic auth, and keeps a refused password out of the error", async () => {
    const seen: string[] = [];
    const basic = (password: string) => `Basic ${Buffer.from(`${USER}:${password}`).toString("base64")}`;
    const proxy = await listen(createServer(authProxy(basic(PASSWORD), seen)));

    const good = createPrometheusClient({
      url: `http://${proxy}`,
      auth: { username: USER, password: PASSWORD },
    });
    const r = await readSignals(good, signals(3));
    expect(r.queueDepth).toEqual({ value: 23 });
    expect(seen).toEqual([basic(PASSWORD), basic(PASSWORD)]);

    const wrong = "wrong-password";
    const err = await queryError(
      createPrometheusClient({ url: `http://${proxy}`, auth: { username: USER, password: wrong } }),
      "42",
    );
    expect(err).toMatchObject({ kind: "http", status: 401 });
    expect(err.message).not.toContain(basic(wrong).slice("Basic ".length));
    expect(err.message).not.toContain(wrong);
  });

  it("refuses a URL that carries credentials, without echoing them", () => {
    expect(() => createPrometheusClient({ url: `http://${USER}:${PASSWORD}@127.0.0.1:9090` })).toThrow(
      /must not carry credentials/,
    );
    try {
      createPrometheusClient({ url: `http://${USER}:${PASSWORD}@127.0.0.1:9090` });
    } catch (err) {
      expect(String(err)).not.toContain(PASSWORD);
    }
  });

  it("trusts a private CA given as PEM for https, and only with it", async () => {
    const openssl = promisify(execFile);
    const key = (name: string) => join(tmp, `${name}.key`);
    const pem = (name: string) => join(tmp, `${name}.pem`);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"];
    await openssl("openssl", [
      ...["req", "-x509", ...ec, "-keyout", key("ca"), "-out", pem("ca"), "-subj", "/CN=prom-client-it CA"],
      ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
    ]);
    await openssl("openssl", [
      ...["req", "-x509", ...ec, "-keyout", key("server"), "-out", pem("server"), "-subj", "/CN=127.0.0.1"],
      ...["-CA", pem("ca"), "-CAkey", key("ca"), "-addext", "subjectAltName=IP:127.0.0.1"],
      ...["-addext", "basicConstraints=CA:FALSE"],
    ]);
    const tls = createHttpsServer(
      { key: await readFile(key("server")), cert: await readFile(pem("server")) },
      forward,
    );
    const https = `https://${await listen(tls)}`;

    const trusted = createPrometheusClient({ url: https, caPem: await readFile(pem("ca"), "utf8") });
    expect(await trusted.query("42")).toMatchObject({ value: 42 });
    expect(seriesValues(await trusted.query(QUEUE_QUERY))).toEqual({ 0: 5, 1: 7, 2: 11 });

    const untrusted = await queryError(createPrometheusClient({ url: https }), "42");
    expect(untrusted.kind).toBe("unreachable");
    expect(untrusted.message).toMatch(/certificate/);
  });
});
