/**
 * What the operator's `/healthz` and `/readyz` answer, as a pure function of what the controller
 * and the leader elector report and of the time: no I/O, no clock, table-tested at fixed times.
 *
 * Healthy (liveness: restarting the process would help):
 * - the reconcile workers run and no reconcile has been running longer than `reconcileStuckAfterMs`
 *   (a request that never returns keeps its key from ever being reconciled again);
 * - with leader election: the election loop still runs (it has not lost leadership while the
 *   process fails to stop); the leader renewed its Lease within the renew deadline (a renewal that
 *   hangs never lets the leader notice it should step down); a standby completed an attempt on the
 *   Lease within one lease duration (a stuck standby could never take over).
 *
 * Ready: healthy, not shutting down, and either the leader (or the only replica, without leader
 * election) whose informer caches have synced, or a standby that has read the Lease within one
 * lease duration. A standby holds no caches (the controller starts on leadership), so a healthy
 * standby is ready and a rollout never stalls on it.
 *
 * An apiserver that refuses connections makes no standby unhealthy (failed attempts still
 * complete; it is only not ready), and the leader then steps down and exits at its renew deadline.
 */

/** What the controller reports; undefined while it has not been started (a standby). */
export interface ControllerFacts {
  /** The informers' initial lists have landed in the caches (and the workers run). */
  readonly synced: boolean;
  /** False once the worker loops ended although nobody stopped them. */
  readonly workersAlive: boolean;
  /** The reconcile running longest, if any: its key and when it started (epoch ms). */
  readonly oldestReconcile: { readonly key: string; readonly since: number } | undefined;
}

/**
 * What the leader elector reports (epoch ms times).
 * - `campaigning`: a standby trying to take the Lease; `leading`: it holds the Lease;
 * - `lost`: it stepped down (renew deadline passed, or another holder took the Lease) and the
 *   process must stop; `released`: stopped at shutdown.
 */
export interface ElectionFacts {
  readonly state: "campaigning" | "leading" | "lost" | "released";
  /** When the loop started. */
  readonly startedAt: number;
  /** When the last attempt on the Lease completed, successful or not. */
  readonly lastAttemptAt: number | undefined;
  /** When the Lease was last read (or created) successfully. */
  readonly lastObservedAt: number | undefined;
  /** When this replica last took or renewed the Lease. */
  readonly lastRenewedAt: number | undefined;
  /** The last attempt's error, if it failed. */
  readonly lastError: string | undefined;
  /** Why leadership was lost (state `lost`). */
  readonly lostReason: string | undefined;
}

/** The bounds the verdict applies. */
export interface ProbeLimits {
  readonly reconcileStuckAfterMs: number;
  /** The leader-election timings; undefined without leader election. */
  readonly leaderElection: { readonly leaseDurationMs: number; readonly renewDeadlineMs: number } | undefined;
}

export interface ProbeFacts {
  readonly limits: ProbeLimits;
  readonly controller: ControllerFacts | undefined;
  /** Undefined without leader election, or before the elector exists. */
  readonly election: ElectionFacts | undefined;
  /** A shutdown has begun (signal or lost leadership). */
  readonly shuttingDown: boolean;
}

export interface ProbeVerdict {
  readonly healthy: boolean;
  readonly ready: boolean;
  /** Why not healthy; empty when healthy. */
  readonly unhealthyReasons: readonly string[];
  /** Why not ready: the health reasons first (an unhealthy replica is not ready), then its own. */
  readonly notReadyReasons: readonly string[];
}

/** How long a reconcile may run before the work loop counts as stuck (liveness fails). */
export const RECONCILE_STUCK_AFTER_MS = 5 * 60_000;

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

function withError(text: string, err: string | undefined): string {
  return err ? `${text} (last error: ${err})` : text;
}

function healthReasons(f: ProbeFacts, now: number): string[] {
  const reasons: string[] = [];
  const c = f.controller;
  if (c && !c.workersAlive && !f.shuttingDown) reasons.push("reconcile workers stopped");
  if (c?.oldestReconcile && now - c.oldestReconcile.since > f.limits.reconcileStuckAfterMs) {
    reasons.push(
      `reconcile of ${c.oldestReconcile.key} running for ${seconds(now - c.oldestReconcile.since)}, ` +
        `longer than ${seconds(f.limits.reconcileStuckAfterMs)}`,
    );
  }
  const e = f.election;
  const le = f.limits.leaderElection;
  if (!e || !le) return reasons;
  switch (e.state) {
    case "lost":
      reasons.push(`leadership lost: ${e.lostReason ?? "unknown"}; the process should have stopped`);
      break;
    case "leading": {
      const since = now - (e.lastRenewedAt ?? e.startedAt);
      if (since > le.renewDeadlineMs) {
        reasons.push(
          withError(
            `Lease last renewed ${seconds(since)} ago, past the renew deadline (${seconds(le.renewDeadlineMs)})`,
            e.lastError,
          ),
        );
      }
      break;
    }
    case "campaigning": {
      const since = now - (e.lastAttemptAt ?? e.startedAt);
      if (since > le.leaseDurationMs) {
        reasons.push(
          `leader election made no attempt on the Lease for ${seconds(since)}, ` +
            `longer than the lease duration (${seconds(le.leaseDurationMs)})`,
        );
      }
      break;
    }
    case "released":
      break;
  }
  return reasons;
}

function readinessReasons(f: ProbeFacts, now: number): string[] {
  if (f.shuttingDown) return ["shutting down"];
  const cachesReady = () => (f.controller?.synced ? [] : ["informer caches not synced"]);
  const le = f.limits.leaderElection;
  if (!le) return cachesReady();
  const e = f.election;
  if (!e) return ["leader election not started"];
  switch (e.state) {
    case "leading":
      return cachesReady();
    case "campaigning": {
      if (e.lastObservedAt === undefined)
        return [withError("standby has not read the Lease yet", e.lastError)];
      const since = now - e.lastObservedAt;
      if (since <= le.leaseDurationMs) return [];
      return [
        withError(
          `standby last read the Lease ${seconds(since)} ago, longer than the lease duration ` +
            `(${seconds(le.leaseDurationMs)})`,
          e.lastError,
        ),
      ];
    }
    case "lost":
    case "released":
      return ["not campaigning for leadership"];
  }
}

/** The verdict of both probes at `now` (epoch ms). */
export function probeVerdict(facts: ProbeFacts, now: number): ProbeVerdict {
  const unhealthyReasons = healthReasons(facts, now);
  const notReadyReasons = [...unhealthyReasons, ...readinessReasons(facts, now)];
  return {
    healthy: unhealthyReasons.length === 0,
    ready: notReadyReasons.length === 0,
    unhealthyReasons,
    notReadyReasons,
  };
}
