import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { collectProcessMetrics } from "../../runtime/defaultMetrics.ts";
import { startHttpServer } from "../../runtime/httpServer.ts";
import { createAssignmentsResolver } from "./assignments/assignmentsResolver.ts";
import { createSignalSource } from "./autoscale/signalSource.ts";
import type { OperatorConfig } from "./config/operatorConfig.ts";
import { LeaderElector } from "./controller/leaderElection.ts";
import { type ProbeLimits, probeVerdict, RECONCILE_STUCK_AFTER_MS } from "./controller/probeVerdict.ts";
import { type RunningController, startShardSetController } from "./controller/shardSetController.ts";
import { DEFAULT_SHARD_DEPLOYMENT_CONFIG } from "./desired/buildShardDeployment.ts";
import { createKubeWriter } from "./kube/kubeWriter.ts";
import { loadKubeConfig } from "./kube/loadKubeConfig.ts";
import { RateLimitedKubeConfig } from "./kube/rateLimitedKubeConfig.ts";
import { createSecretReader } from "./kube/secretReader.ts";
import { TokenBucket } from "./kube/tokenBucket.ts";
import { createLogger } from "./log.ts";
import { createOperatorMetrics } from "./metrics.ts";
import type { FaultPoint } from "./reconcile/reconcileShardSet.ts";

export interface RunDeps {
  readonly shutdownSignal: AbortSignal;
  /** Crash hooks for tests (see FaultPoint); injected by a test entry point, never read from the environment. */
  readonly faults?: (point: FaultPoint) => void;
}

/**
 * The composition root of `evaluator-operator run`: the only place that builds clients. Resolves
 * after a graceful shutdown; rejects when leadership is lost (the process must stop reconciling).
 */
export async function runOperator(config: OperatorConfig, deps: RunDeps): Promise<void> {
  const log = createLogger(config.logLevel);

  const registry = new Registry();
  collectProcessMetrics(registry);
  const metrics = createOperatorMetrics(registry);
  // One bucket for every request to the kube-apiserver: every client below is made from `kc`.
  const limiter = new TokenBucket(config.kubeApi);
  metrics.reportLimiterWaiting(() => limiter.waiting);
  const kc = RateLimitedKubeConfig.wrap(
    loadKubeConfig(config.kubeconfig),
    limiter,
    metrics.kubeRequestAdmitted,
  );
  const releasers: (() => Promise<void>)[] = [];

  let controller: RunningController | undefined;
  // Only the leader runs a controller, so only the leader exports the sets' status gauges.
  metrics.reportShardSets(() => controller?.shardSets() ?? []);
  let elector: LeaderElector | undefined;
  let shuttingDown = false;
  const le = config.leaderElection;
  const probeLimits: ProbeLimits = {
    reconcileStuckAfterMs: RECONCILE_STUCK_AFTER_MS,
    leaderElection: le.enabled
      ? { leaseDurationMs: le.leaseDurationMs, renewDeadlineMs: le.renewDeadlineMs }
      : undefined,
  };
  // Judged afresh on every probe from what the controller and the elector report (probeVerdict.ts).
  const verdict = () =>
    probeVerdict(
      { limits: probeLimits, controller: controller?.health(), election: elector?.snapshot(), shuttingDown },
      Date.now(),
    );
  const metricsServer = await startHttpServer(config.metricsAddress, { registry });
  const healthServer = await startHttpServer(config.healthAddress, {
    healthy: () => ({ reasons: verdict().unhealthyReasons }),
    ready: () => ({ reasons: verdict().notReadyReasons }),
  });
  releasers.push(async () => {
    await Promise.all([metricsServer.close(), healthServer.close()]);
  });
  log.info({ metricsPort: metricsServer.port, healthPort: healthServer.port }, "Serving metrics and probes");
  log.info(config.kubeApi, "Rate-limiting requests to the kube-apiserver");

  const kube = createKubeWriter(kc);
  const secrets = createSecretReader(kc);
  const assignments = config.assignments
    ? createAssignmentsResolver({ kube: secrets, log, caFile: config.tlsCaFile })
    : undefined;
  if (assignments) releasers.push(() => assignments.close());

  const startController = () => {
    controller = startShardSetController({
      kc,
      namespaces: config.namespaces,
      workers: config.workers,
      resyncMs: config.resyncMs,
      log,
      metrics,
      reconcile: {
        kube,
        ...(assignments ? { assignments: assignments.forSet, releaseAssignments: assignments.release } : {}),
        clock: { now: () => Date.now() },
        log,
        config: {
          shardDeployment: {
            ...DEFAULT_SHARD_DEPLOYMENT_CONFIG,
            serviceAccountPassthrough: config.serviceAccountPassthrough,
          },
          scaleUpTimeoutMs: config.scaleUpTimeoutMs,
          drainSlackMs: config.drainSlackMs,
          autoscaleIntervalMs: config.autoscaleIntervalMs,
          resyncMs: config.resyncMs,
          allowedImagePrefixes: config.allowedImagePrefixes,
        },
        applied: new Map(),
        written: new Map(),
        ...(deps.faults ? { faults: deps.faults } : {}),
        signals: createSignalSource({ secrets, clock: { now: () => Date.now() } }),
        onAutoscale: (set, decision, readings) =>
          metrics.autoscaled(set.metadata.namespace, set.metadata.name, decision, readings),
        onTenantsMoved: (set, moved) =>
          metrics.reshardCommitted(set.metadata.namespace, set.metadata.name, moved),
      },
    });
  };

  let lostLeadership: (err: Error) => void = () => {};
  const leadershipLost = new Promise<never>((_, reject) => {
    lostLeadership = reject;
  });
  leadershipLost.catch(() => {});

  if (le.enabled) {
    // A standby exposes 0 from the start, not a metric without a sample.
    metrics.setLeader(le.name, false);
    elector = new LeaderElector({
      coordination: kc.inLane("lease").makeApiClient(k8s.CoordinationV1Api),
      namespace: le.namespace,
      name: le.name,
      identity: le.identity,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      log,
      onStartedLeading: startController,
      onStoppedLeading: () => lostLeadership(new Error("leadership lost")),
      onLeaderChange: (isLeader) => metrics.setLeader(le.name, isLeader),
    });
    log.info({ lease: `${le.namespace}/${le.name}`, identity: le.identity }, "Campaigning for leadership");
    elector.start();
  } else {
    metrics.setLeader("none", true);
    startController();
  }

  const stopped = new Promise<void>((resolve) => {
    if (deps.shutdownSignal.aborted) resolve();
    deps.shutdownSignal.addEventListener("abort", () => resolve(), { once: true });
  });
  let failure: unknown;
  try {
    await Promise.race([stopped, leadershipLost]);
  } catch (err) {
    failure = err;
  }
  shuttingDown = true;
  log.info({ reason: failure ? String(failure) : "signal" }, "Shutting down");
  await controller?.stop();
  await elector?.release();
  for (const release of releasers.reverse()) await release();
  if (failure) throw failure;
}
