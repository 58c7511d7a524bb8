import * as k8s from "@kubernetes/client-node";
import { type ResilientInformer, startInformer } from "../../../runtime/informer.ts";
import { type EvaluatorShardSet, GROUP, LABELS, MANAGED_BY, PLURAL, VERSION } from "../api/types.ts";
import type { Logger } from "../log.ts";
import type { OperatorMetrics } from "../metrics.ts";
import { type ReconcileDeps, reconcileShardSet } from "../reconcile/reconcileShardSet.ts";
import type { ControllerFacts } from "./probeVerdict.ts";
import { WorkQueue } from "./workQueue.ts";

export interface ShardSetControllerOptions {
  kc: k8s.KubeConfig;
  /** Namespaces to watch; empty means all. */
  namespaces: readonly string[];
  workers: number;
  resyncMs: number;
  log: Logger;
  metrics: OperatorMetrics;
  /** Everything reconcile needs except the caches, which this controller owns. */
  reconcile: Omit<ReconcileDeps, "sets" | "deployments">;
}

export interface RunningController {
  /** Resolves once both caches hold their initial lists and the workers run. */
  readonly started: Promise<void>;
  /** What the probes judge: caches synced, workers alive, the reconcile running longest. */
  health(): ControllerFacts;
  /** The sets in the cache once it has synced (none before): what the status gauges report. */
  shardSets(): readonly EvaluatorShardSet[];
  /** Stops taking work, lets running reconciles finish, stops the informers. */
  stop(): Promise<void>;
}

/** One ObjectCache over several per-namespace informers (or one cluster-wide informer). */
function unionCache<T extends k8s.KubernetesObject>(
  byNamespace: Map<string, ResilientInformer<T>>,
  all: ResilientInformer<T> | undefined,
): k8s.ObjectCache<T> {
  return {
    get(name, namespace) {
      if (all) return all.cache.get(name, namespace);
      return namespace ? byNamespace.get(namespace)?.cache.get(name, namespace) : undefined;
    },
    list(namespace) {
      if (all) return all.cache.list(namespace);
      if (namespace) return byNamespace.get(namespace)?.cache.list(namespace) ?? [];
      return [...byNamespace.values()].flatMap((i) => [...i.cache.list()]);
    },
  };
}

/**
 * The generic runtime around the one reconcile: informers enqueue `namespace/name` keys (never
 * branching on the kind of event), a keyed queue runs one reconcile per key at a time with per-key
 * backoff, and a periodic resync re-enqueues every set. Reconciles start only after the initial lists.
 */
export function startShardSetController(opts: ShardSetControllerOptions): RunningController {
  const { kc, log, metrics } = opts;
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const queue = new WorkQueue({ metrics: metrics.queue });
  const seenGeneration = new Map<string, number>();
  const managedSelector = `${LABELS.managedBy}=${MANAGED_BY}`;

  const keyOf = (o: k8s.KubernetesObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;

  const onSet = (o: EvaluatorShardSet, verb: "add" | "update" | "delete") => {
    const key = keyOf(o);
    if (verb === "delete") {
      seenGeneration.delete(key);
      return queue.add(key);
    }
    // Our own status writes arrive as updates with an unchanged generation: ignore them, or every
    // status write would trigger another reconcile.
    const gen = o.metadata.generation ?? 0;
    if (verb === "update" && seenGeneration.get(key) === gen && !o.metadata.deletionTimestamp) return;
    seenGeneration.set(key, gen);
    queue.add(key);
  };
  const onDeployment = (d: k8s.V1Deployment) => {
    const set = d.metadata?.labels?.[LABELS.shardSet];
    if (set && d.metadata?.namespace) queue.add(`${d.metadata.namespace}/${set}`);
  };

  const setInformers = new Map<string, ResilientInformer<EvaluatorShardSet>>();
  const deployInformers = new Map<string, ResilientInformer<k8s.V1Deployment>>();
  let allSets: ResilientInformer<EvaluatorShardSet> | undefined;
  let allDeployments: ResilientInformer<k8s.V1Deployment> | undefined;
  const resyncAll = () => {
    for (const s of sets.list()) queue.add(keyOf(s));
  };
  const common = { kc, log, onRestart: resyncAll };

  if (opts.namespaces.length === 0) {
    allSets = startInformer<EvaluatorShardSet>({
      ...common,
      resource: PLURAL,
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as never,
      onChange: onSet,
      onRestartMetric: () => metrics.informerRestarted(PLURAL),
    });
    allDeployments = startInformer<k8s.V1Deployment>({
      ...common,
      resource: "deployments",
      path: "/apis/apps/v1/deployments",
      labelSelector: managedSelector,
      list: () => apps.listDeploymentForAllNamespaces({ labelSelector: managedSelector }),
      onChange: onDeployment,
      onRestartMetric: () => metrics.informerRestarted("deployments"),
    });
  } else {
    for (const ns of opts.namespaces) {
      setInformers.set(
        ns,
        startInformer<EvaluatorShardSet>({
          ...common,
          resource: PLURAL,
          path: `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`,
          list: () =>
            custom.listNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: PLURAL,
              namespace: ns,
            }) as never,
          onChange: onSet,
          onRestartMetric: () => metrics.informerRestarted(PLURAL),
        }),
      );
      deployInformers.set(
        ns,
        startInformer<k8s.V1Deployment>({
          ...common,
          resource: "deployments",
          path: `/apis/apps/v1/namespaces/${ns}/deployments`,
          labelSelector: managedSelector,
          list: () => apps.listNamespacedDeployment({ namespace: ns, labelSelector: managedSelector }),
          onChange: onDeployment,
          onRestartMetric: () => metrics.informerRestarted("deployments"),
        }),
      );
    }
  }
  const sets = unionCache(setInformers, allSets);
  const deployments = unionCache(deployInformers, allDeployments);
  const all = [
    ...setInformers.values(),
    ...deployInformers.values(),
    ...(allSets ? [allSets] : []),
    ...(allDeployments ? [allDeployments] : []),
  ];

  const deps: ReconcileDeps = { ...opts.reconcile, sets, deployments };
  let resyncTimer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let synced = false;
  let stopping = false;
  let workersEnded = false;

  const started = (async () => {
    await Promise.all(all.map((i) => i.synced));
    synced = true;
    log.info({ namespaces: opts.namespaces.length ? opts.namespaces : "all" }, "Caches synced; reconciling");
    resyncAll();
    resyncTimer = setInterval(resyncAll, opts.resyncMs);
    running = queue.run(
      opts.workers,
      async (key) => {
        const start = performance.now();
        try {
          const result = await reconcileShardSet(key, deps);
          metrics.observeReconcile(
            result?.requeueAfterMs !== undefined ? "requeue_after" : "success",
            (performance.now() - start) / 1000,
          );
          return result;
        } catch (err) {
          metrics.observeReconcile("error", (performance.now() - start) / 1000);
          throw err;
        }
      },
      (key, err) =>
        log.warn(
          { shardset: key, err: String(err), failures: queue.failures(key) + 1 },
          "Reconcile failed; retrying with backoff",
        ),
    );
    // The worker loops end only at stop(); ending otherwise, nothing would reconcile again.
    const ended = (err?: unknown) => {
      workersEnded = true;
      if (stopping) return;
      log.error({ err: err === undefined ? undefined : String(err) }, "Reconcile workers ended");
    };
    running.then(() => ended(), ended);
  })();

  return {
    started,
    health: () => ({
      synced,
      workersAlive: !workersEnded,
      oldestReconcile: queue.oldestInFlight(),
    }),
    shardSets: () => (synced ? sets.list() : []),
    async stop() {
      stopping = true;
      if (resyncTimer) clearInterval(resyncTimer);
      queue.shutDown();
      await running;
      await Promise.all(all.map((i) => i.stop()));
    },
  };
}
