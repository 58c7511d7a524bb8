/**
 * A resilient informer over client-node 2.x's `ListWatch`. What `ListWatch` does, read from
 * `@kubernetes/client-node/dist/cache.js` (2.0.1, `doneHandler`) and `watch.js`:
 *
 * - it emits `'connect'` *before* it lists (`callbackCache[CONNECT]` runs, then `listFn()`), so a
 *   `'connect'` proves nothing: not that the list worked, not that the watch is open;
 * - a failed list is emitted as `'error'` and `start()` still *resolves* (`catch (err) { …ERROR…;
 *   return; }`), with nothing in the cache;
 * - `Watch.watch()` does not reject when the request fails: it calls `done(err)` before it returns,
 *   and `doneHandler(err)` emits `'error'`;
 * - after any `'error'` (anything but 410 Gone, which relists, and a client-side `TimeoutError`,
 *   which re-watches) it does not restart: the informer is dead until someone calls `start()`;
 * - `start()` keeps the last resourceVersion, so a restart resumes the watch where it stopped (the
 *   events missed meanwhile arrive as watch events), and relists when the apiserver answers 410.
 *
 * Hence this wrapper: every `'error'` schedules a `start()` after a capped exponential backoff; the
 * backoff resets only after a `start()` during which no `'error'` came — its list (when one was due)
 * and its watch request both succeeded; `synced` resolves only once a list has succeeded.
 */
import * as k8s from "@kubernetes/client-node";
import type { Logger } from "pino";
import { type Clock, systemClock } from "./clock.ts";

/** An informer that restarts itself: read its cache, wait for `synced`, `stop()` it at shutdown. */
export interface ResilientInformer<T extends k8s.KubernetesObject> {
  readonly cache: k8s.ObjectCache<T>;
  /** Resolves once the first list has succeeded and landed in the cache (never before). */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

export interface InformerOptions<T extends k8s.KubernetesObject> {
  kc: k8s.KubeConfig;
  /** Watch path, e.g. `/apis/apps/v1/deployments` or `/apis/apps/v1/namespaces/x/deployments`. */
  path: string;
  list: () => Promise<k8s.KubernetesListObject<T>>;
  labelSelector?: string;
  /** Called for every add, update and delete (the caller maps it to a key). */
  onChange(obj: T, verb: "add" | "update" | "delete"): void;
  /** Called once the informer is connected again after a failure (the caller may want to resync everything). */
  onRestart?(): void;
  log: Pick<Logger, "info" | "warn">;
  /** Names the informer in logs, e.g. `deployments`. */
  resource: string;
  /** Backoff between restarts: base × 2^failures, at most max (default 500 ms … 30 s). */
  restartDelayMs?: { base: number; max: number };
  /** Called whenever a restart is scheduled (a metric). */
  onRestartMetric?(): void;
  /** Timers of the restart backoff and of ListWatch's own reconnect delay (default: the system clock). */
  clock?: Clock;
  /** Stands in for client-node's `Watch` (tests); by default one is made from `kc`. */
  watch?: k8s.Watch;
}

/**
 * Starts a ListWatch on `path` and keeps it alive: restarted on every `'error'` with capped
 * exponential backoff, so an apiserver restart or a dropped connection never leaves the caller blind.
 */
export function startInformer<T extends k8s.KubernetesObject>(
  opts: InformerOptions<T>,
): ResilientInformer<T> {
  const clock = opts.clock ?? systemClock;
  const base = opts.restartDelayMs?.base ?? 500;
  const max = opts.restartDelayMs?.max ?? 30_000;
  let listed = false;
  let errors = 0;
  let failures = 0;
  let stopped = false;
  let timer: unknown;

  // The list is wrapped only to learn that one succeeded; ListWatch fills its cache right after.
  const list = async (): Promise<k8s.KubernetesListObject<T>> => {
    const result = await opts.list();
    listed = true;
    return result;
  };
  const informer = new k8s.ListWatch<T>(
    opts.path,
    opts.watch ?? new k8s.Watch(opts.kc),
    list,
    false,
    opts.labelSelector,
    undefined,
    {
      delayFn: async (ms) => {
        await new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
        // ListWatch does not look at its stopped flag after this delay: never watch again after stop().
        if (stopped) await new Promise<never>(() => {});
      },
    },
  );

  let resolveSynced!: () => void;
  const synced = new Promise<void>((resolve) => {
    resolveSynced = resolve;
  });

  const scheduleRestart = (err: unknown): void => {
    // ListWatch also emits the abort of its own request after stop().
    if (stopped || timer !== undefined) return;
    const delayMs = Math.min(max, base * 2 ** failures);
    failures++;
    opts.log.warn(
      { resource: opts.resource, err: String(err), delayMs, failures },
      "Informer failed; restarting",
    );
    opts.onRestartMetric?.();
    timer = clock.setTimeout(() => {
      timer = undefined;
      void start(true);
    }, delayMs);
  };

  const start = async (restart: boolean): Promise<void> => {
    if (stopped) return;
    const errorsBefore = errors;
    try {
      await informer.start();
    } catch (err) {
      // Only when the watch request cannot even be built (no current cluster, a failing credential plugin).
      errors++;
      scheduleRestart(err);
      return;
    }
    // An 'error' during start() (failed list, refused watch) has already scheduled the next try.
    if (stopped || errors !== errorsBefore) return;
    failures = 0;
    if (listed) resolveSynced();
    if (restart) {
      opts.log.info({ resource: opts.resource }, "Informer reconnected");
      opts.onRestart?.();
    }
  };

  informer.on("add", (o) => opts.onChange(o, "add"));
  informer.on("update", (o) => opts.onChange(o, "update"));
  informer.on("delete", (o) => opts.onChange(o, "delete"));
  informer.on("error", (err) => {
    errors++;
    scheduleRestart(err);
  });
  void start(false);

  return {
    cache: informer,
    synced,
    async stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await informer.stop();
    },
  };
}
