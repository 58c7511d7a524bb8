import * as k8s from "@kubernetes/client-node";
import type { Logger } from "../log.ts";

export interface ResilientInformer<T extends k8s.KubernetesObject> {
  readonly cache: k8s.ObjectCache<T>;
  /** Resolves once the initial list has landed in the cache. */
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
  /** Called after an error restart (the caller may want to resync everything). */
  onRestart?(): void;
  log: Logger;
  resource: string;
  restartDelayMs?: { base: number; max: number };
  onRestartMetric?(): void;
}

/**
 * client-node's ListWatch stops for good on any error other than 410 Gone. This wrapper restarts it
 * with exponential backoff, so an apiserver restart or a dropped connection never leaves the
 * operator blind.
 */
export function startInformer<T extends k8s.KubernetesObject>(
  opts: InformerOptions<T>,
): ResilientInformer<T> {
  const informer = k8s.makeInformer<T>(opts.kc, opts.path, opts.list, opts.labelSelector);
  const base = opts.restartDelayMs?.base ?? 500;
  const max = opts.restartDelayMs?.max ?? 30_000;
  let failures = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  informer.on("add", (o) => opts.onChange(o, "add"));
  informer.on("update", (o) => opts.onChange(o, "update"));
  informer.on("delete", (o) => opts.onChange(o, "delete"));
  informer.on("connect", () => {
    failures = 0;
  });

  let resolveSynced!: () => void;
  const synced = new Promise<void>((r) => {
    resolveSynced = r;
  });

  const start = async (): Promise<void> => {
    if (stopped) return;
    try {
      await informer.start();
      resolveSynced();
    } catch (err) {
      scheduleRestart(err);
    }
  };

  const scheduleRestart = (err: unknown): void => {
    if (stopped || timer) return;
    const delay = Math.min(max, base * 2 ** failures);
    failures++;
    opts.log.warn(
      { resource: opts.resource, err: String(err), delayMs: delay },
      "Informer stopped; restarting",
    );
    opts.onRestartMetric?.();
    timer = setTimeout(() => {
      timer = undefined;
      void start().then(() => opts.onRestart?.());
    }, delay);
  };

  informer.on("error", (err) => scheduleRestart(err));
  void start();

  return {
    cache: informer,
    synced,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await informer.stop();
    },
  };
}
