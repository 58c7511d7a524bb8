/**
 * What a reconcile hands back to the controller runtime: nothing (done until the next event or
 * resync), or a delay after which the same key is reconciled again. A thrown error retries the key
 * with per-key backoff instead.
 */
export interface HandlerResult {
  requeueAfterMs?: number;
}

/** Reconciles one key (`namespace/name`); never told what kind of event enqueued it. */
export type KeyHandler = (key: string) => Promise<HandlerResult | undefined>;
