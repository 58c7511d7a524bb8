import { describe, expect, it } from "vitest";
import {
  type ControllerFacts,
  type ElectionFacts,
  type ProbeFacts,
  probeVerdict,
  RECONCILE_STUCK_AFTER_MS,
} from "./probeVerdict.ts";

const T = 1_700_000_000_000;
const LEASE = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000 };

const synced: ControllerFacts = { synced: true, workersAlive: true, oldestReconcile: undefined };
const syncing: ControllerFacts = { synced: false, workersAlive: true, oldestReconcile: undefined };

const leading = (over: Partial<ElectionFacts> = {}): ElectionFacts => ({
  state: "leading",
  startedAt: T - 60_000,
  lastAttemptAt: T - 1_000,
  lastObservedAt: T - 1_000,
  lastRenewedAt: T - 1_000,
  lastError: undefined,
  lostReason: undefined,
  ...over,
});
const standby = (over: Partial<ElectionFacts> = {}): ElectionFacts =>
  leading({ state: "campaigning", lastRenewedAt: undefined, ...over });

const withElection = (
  election: ElectionFacts | undefined,
  controller: ControllerFacts | undefined,
  over: Partial<ProbeFacts> = {},
): ProbeFacts => ({
  limits: { reconcileStuckAfterMs: RECONCILE_STUCK_AFTER_MS, leaderElection: LEASE },
  controller,
  election,
  shuttingDown: false,
  ...over,
});
const single = (controller: ControllerFacts | undefined, over: Partial<ProbeFacts> = {}): ProbeFacts => ({
  limits: { reconcileStuckAfterMs: RECONCILE_STUCK_AFTER_MS, leaderElection: undefined },
  controller,
  election: undefined,
  shuttingDown: false,
  ...over,
});

describe("probeVerdict", () => {
  it.each<[string, ProbeFacts, { healthy: string[]; ready: string[] }]>([
    // Without leader election: ready once the caches synced.
    ["single replica, caches synced", single(synced), { healthy: [], ready: [] }],
    [
      "single replica, caches syncing",
      single(syncing),
      { healthy: [], ready: ["informer caches not synced"] },
    ],
    [
      "single replica, controller not started yet",
      single(undefined),
      { healthy: [], ready: ["informer caches not synced"] },
    ],
    // The leader: ready once its caches synced; healthy while its renewals keep up.
    ["leader, caches synced, renewed 1s ago", withElection(leading(), synced), { healthy: [], ready: [] }],
    [
      "leader whose caches are still syncing",
      withElection(leading(), syncing),
      { healthy: [], ready: ["informer caches not synced"] },
    ],
    [
      "leader renewed exactly at the renew deadline",
      withElection(leading({ lastRenewedAt: T - 10_000 }), synced),
      { healthy: [], ready: [] },
    ],
    [
      "leader not renewed past the renew deadline",
      withElection(
        leading({ lastRenewedAt: T - 12_500, lastAttemptAt: T - 12_000, lastError: "connect ECONNREFUSED" }),
        synced,
      ),
      {
        healthy: [
          "Lease last renewed 12.5s ago, past the renew deadline (10s) (last error: connect ECONNREFUSED)",
        ],
        ready: [
          "Lease last renewed 12.5s ago, past the renew deadline (10s) (last error: connect ECONNREFUSED)",
        ],
      },
    ],
    [
      "leader whose renewal hangs (no attempt completed, no error)",
      withElection(leading({ lastRenewedAt: T - 30_000, lastAttemptAt: T - 30_000 }), synced),
      {
        healthy: ["Lease last renewed 30s ago, past the renew deadline (10s)"],
        ready: ["Lease last renewed 30s ago, past the renew deadline (10s)"],
      },
    ],
    // A standby: no caches (the controller starts on leadership); ready while it sees the Lease.
    ["standby that read the Lease 1s ago", withElection(standby(), undefined), { healthy: [], ready: [] }],
    [
      "standby that has not read the Lease yet",
      withElection(
        standby({
          startedAt: T - 2_000,
          lastAttemptAt: T - 500,
          lastObservedAt: undefined,
          lastError: "503",
        }),
        undefined,
      ),
      { healthy: [], ready: ["standby has not read the Lease yet (last error: 503)"] },
    ],
    [
      "standby before its first attempt",
      withElection(standby({ startedAt: T, lastAttemptAt: undefined, lastObservedAt: undefined }), undefined),
      { healthy: [], ready: ["standby has not read the Lease yet"] },
    ],
    [
      "standby whose reads fail (apiserver down) but whose loop turns: healthy, not ready",
      withElection(
        standby({ lastAttemptAt: T - 1_000, lastObservedAt: T - 20_000, lastError: "connect ECONNREFUSED" }),
        undefined,
      ),
      {
        healthy: [],
        ready: [
          "standby last read the Lease 20s ago, longer than the lease duration (15s) (last error: connect ECONNREFUSED)",
        ],
      },
    ],
    [
      "standby whose election loop is stuck",
      withElection(standby({ lastAttemptAt: T - 16_000, lastObservedAt: T - 16_000 }), undefined),
      {
        healthy: [
          "leader election made no attempt on the Lease for 16s, longer than the lease duration (15s)",
        ],
        ready: [
          "leader election made no attempt on the Lease for 16s, longer than the lease duration (15s)",
          "standby last read the Lease 16s ago, longer than the lease duration (15s)",
        ],
      },
    ],
    [
      "standby whose first attempt never completed",
      withElection(
        standby({ startedAt: T - 20_000, lastAttemptAt: undefined, lastObservedAt: undefined }),
        undefined,
      ),
      {
        healthy: [
          "leader election made no attempt on the Lease for 20s, longer than the lease duration (15s)",
        ],
        ready: [
          "leader election made no attempt on the Lease for 20s, longer than the lease duration (15s)",
          "standby has not read the Lease yet",
        ],
      },
    ],
    [
      "elector created but not started",
      withElection(undefined, undefined),
      { healthy: [], ready: ["leader election not started"] },
    ],
    // Leadership lost: the process must stop; if its shutdown hangs, the kubelet restarts it.
    [
      "leadership lost, shutdown hanging",
      withElection(
        leading({ state: "lost", lostReason: "could not renew the Lease within the renew deadline" }),
        synced,
        { shuttingDown: true },
      ),
      {
        healthy: [
          "leadership lost: could not renew the Lease within the renew deadline; the process should have stopped",
        ],
        ready: [
          "leadership lost: could not renew the Lease within the renew deadline; the process should have stopped",
          "shutting down",
        ],
      },
    ],
    // A graceful shutdown (SIGTERM): the released Lease and the stopped workers are expected.
    [
      "shutting down after a signal",
      withElection(
        leading({ state: "released" }),
        { ...synced, workersAlive: false },
        { shuttingDown: true },
      ),
      { healthy: [], ready: ["shutting down"] },
    ],
    // The work loop.
    [
      "reconcile running for just under the bound",
      single({ ...synced, oldestReconcile: { key: "ns/a", since: T - RECONCILE_STUCK_AFTER_MS } }),
      { healthy: [], ready: [] },
    ],
    [
      "reconcile running past the bound",
      withElection(leading(), {
        ...synced,
        oldestReconcile: { key: "ns/a", since: T - RECONCILE_STUCK_AFTER_MS - 1_000 },
      }),
      {
        healthy: ["reconcile of ns/a running for 301s, longer than 300s"],
        ready: ["reconcile of ns/a running for 301s, longer than 300s"],
      },
    ],
    [
      "workers ended while nobody stopped them",
      single({ ...synced, workersAlive: false }),
      { healthy: ["reconcile workers stopped"], ready: ["reconcile workers stopped"] },
    ],
  ])("%s", (_name, facts, expected) => {
    const v = probeVerdict(facts, T);
    expect({ healthy: v.unhealthyReasons, ready: v.notReadyReasons }).toEqual(expected);
    expect(v.healthy).toBe(expected.healthy.length === 0);
    expect(v.ready).toBe(expected.ready.length === 0);
  });

  it("turns unhealthy the moment a leader's last renewal passes the renew deadline", () => {
    const facts = withElection(leading({ lastRenewedAt: T }), synced);
    expect(probeVerdict(facts, T + LEASE.renewDeadlineMs).healthy).toBe(true);
    expect(probeVerdict(facts, T + LEASE.renewDeadlineMs + 1).healthy).toBe(false);
  });
});
