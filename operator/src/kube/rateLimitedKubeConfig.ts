import * as k8s from "@kubernetes/client-node";
import type { Lane, TokenBucket } from "./tokenBucket.ts";

/** What the limiter reports for every request it lets through (a metric). */
export type OnAdmitted = (method: string, lane: Lane, waitedMs: number) => void;

/**
 * A KubeConfig whose every request to the apiserver first takes a token from a shared
 * {@link TokenBucket}: client-go's client-side QPS/burst, in one place.
 *
 * Why here: in @kubernetes/client-node 2.x every HTTP request authenticates through its KubeConfig
 * right before it is sent. The generated APIs of `makeApiClient` (their `Configuration` has the
 * KubeConfig as its `default` auth method, whose `applySecurityAuthentication` the request runs
 * before its middleware and its fetch), `KubernetesObjectApi` (its `requestPromise`, likewise, also
 * for the API discovery a server-side apply does), and `Watch`, `Log`, `Metrics` and `Health` (they
 * call `applySecurityAuthentication` themselves) all pass through
 * {@link RateLimitedKubeConfig.applySecurityAuthentication}; websocket and protobuf clients (exec,
 * attach, port-forward; the operator uses none) through `applyToHTTPSOptions`. A generated
 * `Configuration` middleware would not see `Watch`, which builds its request without one. So any
 * client made from this KubeConfig is limited, and no client can forget to be. A watch takes one token
 * when it is opened, never per event, as in client-go (its stream is one long request).
 */
export class RateLimitedKubeConfig extends k8s.KubeConfig {
  readonly #bucket: TokenBucket;
  readonly #lane: Lane;
  readonly #onAdmitted: OnAdmitted | undefined;

  private constructor(source: k8s.KubeConfig, bucket: TokenBucket, lane: Lane, onAdmitted?: OnAdmitted) {
    super();
    // The same clusters, users and contexts (by reference: credential plugins and token files keep
    // their state), only the requests go through the bucket.
    this.loadFromOptions({
      clusters: source.clusters,
      users: source.users,
      contexts: source.contexts,
      currentContext: source.currentContext,
    });
    this.#bucket = bucket;
    this.#lane = lane;
    this.#onAdmitted = onAdmitted;
  }

  /** `source` with every request through `bucket`, in the `normal` lane. */
  static wrap(source: k8s.KubeConfig, bucket: TokenBucket, onAdmitted?: OnAdmitted): RateLimitedKubeConfig {
    return new RateLimitedKubeConfig(source, bucket, "normal", onAdmitted);
  }

  /** The same KubeConfig and bucket, with requests in `lane` (the leader Lease's: see {@link Lane}). */
  inLane(lane: Lane): RateLimitedKubeConfig {
    return new RateLimitedKubeConfig(this, this.#bucket, lane, this.#onAdmitted);
  }

  override async applySecurityAuthentication(context: k8s.RequestContext): Promise<void> {
    await this.#admit(context.getHttpMethod());
    await super.applySecurityAuthentication(context);
  }

  override async applyToHTTPSOptions(
    opts: Parameters<k8s.KubeConfig["applyToHTTPSOptions"]>[0],
  ): Promise<void> {
    // A websocket upgrade is a GET; https options may name another method.
    await this.#admit((opts as { method?: string }).method ?? "GET");
    await super.applyToHTTPSOptions(opts);
  }

  async #admit(method: string): Promise<void> {
    const waitedMs = await this.#bucket.take(this.#lane);
    this.#onAdmitted?.(method, this.#lane, waitedMs);
  }
}
