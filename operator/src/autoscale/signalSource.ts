/**
 * Reads a set's autoscaling signals with the Prometheus settings of its spec (URL, timeout, and
 * credentials from the Secret it names). The composition root hands this to the reconcile.
 * Never throws: a Secret that cannot be read makes both signals missing, like an outage.
 */
import type { EvaluatorShardSet } from "../api/types.ts";
import type { SecretReader } from "../kube/secretReader.ts";
import { createPrometheusClient, type PrometheusAuth } from "./prometheusClient.ts";
import { DEFAULT_SIGNAL_QUERIES, readSignals, warmingFrom } from "./readSignals.ts";
import type { SignalReadings } from "./types.ts";

/** Per-query timeout when the spec does not give one (the CRD's default). */
export const DEFAULT_QUERY_TIMEOUT_MS = 5_000;

export interface SignalSourceDeps {
  readonly secrets: SecretReader;
  readonly clock: { now(): number };
}

/** `(set, runningShards) → readings` for the reconcile (ReconcileDeps.signals). */
export function createSignalSource(
  deps: SignalSourceDeps,
): (set: EvaluatorShardSet, runningShards: number) => Promise<SignalReadings> {
  return async (set, runningShards) => {
    const now = deps.clock.now();
    const prom = set.spec.autoscaling?.prometheus;
    if (!prom?.url) {
      const missing = {
        missing: "QueryError" as const,
        detail: "spec.autoscaling.prometheus.url is not set",
      };
      return { queueDepth: missing, tickLatencyP95Seconds: missing, readAt: now };
    }
    let credentials: { auth?: PrometheusAuth; caPem?: string };
    try {
      credentials = await readCredentials(deps.secrets, set);
    } catch (err) {
      const missing = {
        missing: "QueryError" as const,
        detail: `cannot read spec.autoscaling.prometheus.authSecretRef: ${(err as Error).message}`,
      };
      return { queueDepth: missing, tickLatencyP95Seconds: missing, readAt: now };
    }
    const timeoutMs = prom.timeoutSeconds ? prom.timeoutSeconds * 1000 : DEFAULT_QUERY_TIMEOUT_MS;
    const client = createPrometheusClient({ url: prom.url, ...credentials, defaultTimeoutMs: timeoutMs });
    return readSignals(client, {
      queueDepthQuery: prom.queueDepthQuery ?? DEFAULT_SIGNAL_QUERIES.queueDepth,
      tickLatencyQuery: prom.tickLatencyQuery ?? DEFAULT_SIGNAL_QUERIES.tickLatency,
      namespace: set.metadata.namespace,
      name: set.metadata.name,
      runningShards,
      warmingFrom: warmingFrom(set, now),
      now,
      timeoutMs,
    });
  };
}

async function readCredentials(
  secrets: SecretReader,
  set: EvaluatorShardSet,
): Promise<{ auth?: PrometheusAuth; caPem?: string }> {
  const ref = set.spec.autoscaling?.prometheus?.authSecretRef;
  if (!ref) return {};
  const read = (key: string) => secrets.readSecretKey(set.metadata.namespace, ref.name, key);
  const out: { auth?: PrometheusAuth; caPem?: string } = {};
  if (ref.bearerTokenKey) out.auth = { bearerToken: (await read(ref.bearerTokenKey)).trim() };
  else if (ref.usernameKey && ref.passwordKey) {
    out.auth = { username: await read(ref.usernameKey), password: await read(ref.passwordKey) };
  }
  if (ref.caKey) out.caPem = await read(ref.caKey);
  return out;
}
