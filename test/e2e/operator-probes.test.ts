/**
 * The operator's `/healthz` and `/readyz` (operator/src/controller/probeVerdict.ts) on real
 * operator processes against real kube-apiservers:
 * - without leader election, `/readyz` answers 503 "informer caches not synced" while the apiserver
 *   is down (`/healthz` stays 200: an outage is no reason to restart), and 200 once the caches have
 *   synced after it comes back;
 * - with leader election, the leader and a standby are both ready and healthy;
 * - a leader whose apiserver hangs (renewals never answer, so it cannot even notice that it should
 *   step down) answers 503 on both probes past the renew deadline, saying why, while the standby
 *   takes over; once the apiserver answers again, the old leader sees the new holder and exits;
 * - when the apiserver is down (connections refused), the leader steps down at its renew deadline
 *   and exits, while a standby stays healthy, turns not ready once it has not read the Lease for a
 *   lease duration, and takes over once the apiserver is back.
 *
 * The apiserver stopped or frozen here is a private one (test/support/privateApiserver.ts) in front
 * of the plane's etcd, so the Lease is shared with the plane's apiserver, where the standby runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestNamespace, eventually, installCrd, loadKubeConfig } from "../support/cluster.ts";
import { msg, type OperatorProcess, startOperator } from "../support/operator.ts";
import { type PrivateApiserver, startPrivateApiserver } from "../support/privateApiserver.ts";

const kc = loadKubeConfig();
let api: PrivateApiserver;
let ns: { name: string; remove(): Promise<void> };
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [api, ns] = await Promise.all([startPrivateApiserver(), createTestNamespace(kc, "probes"), installCrd()]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(async () => {
  await Promise.all([api?.destroy(), ns?.remove()]);
});

/** GET one probe of `op` (bounded: a probe must answer fast). */
async function probe(op: OperatorProcess, path: "/healthz" | "/readyz") {
  const ports = await op.waitForLog(msg("Serving metrics and probes"));
  const res = await fetch(`http://127.0.0.1:${ports["healthPort"]}${path}`, {
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: await res.text() };
}

/** Polls until `path` answers `status`; returns that answer. */
function probeUntil(op: OperatorProcess, path: "/healthz" | "/readyz", status: number, timeoutMs = 60_000) {
  return eventually(
    async () => {
      const answer = await probe(op, path);
      return answer.status === status ? answer : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `${path} to answer ${status}` },
  );
}

/** Leader election on the Lease `id` in the test's namespace: lease 6 s, renew deadline 4 s. */
const election = (id: string) => [
  "--leader-election-namespace",
  ns.name,
  "--leader-election-id",
  id,
  "--leader-election-lease-duration",
  "6s",
  "--leader-election-renew-deadline",
  "4s",
  "--leader-election-retry-period",
  "500ms",
];

function operator(args: string[]): OperatorProcess {
  const op = startOperator(["--namespaces", ns.name, "--no-assignments", ...args]);
  cleanups.push(() => op.kill("SIGKILL"));
  return op;
}

describe("operator probes", () => {
  it("is not ready before its informer caches have synced, and stays healthy through the apiserver outage", async () => {
    await api.stop();
    const op = operator(["--kubeconfig", api.kubeconfigPath, "--no-leader-elect"]);
    // The first list has been tried and failed: the caches cannot have synced.
    await op.waitForLog(msg("Informer failed; restarting"));
    expect(await probe(op, "/readyz")).toEqual({
      status: 503,
      body: "not ready\ninformer caches not synced\n",
    });
    expect(await probe(op, "/healthz")).toEqual({ status: 200, body: "ok\n" });

    await api.start();
    await op.waitForLog(msg("Caches synced; reconciling"), 90_000);
    expect(await probe(op, "/readyz")).toEqual({ status: 200, body: "ok\n" });
    expect(await probe(op, "/healthz")).toEqual({ status: 200, body: "ok\n" });
  });

  it("keeps a leader and a standby ready; a leader whose renewals hang steps down at the renew deadline, before the standby takes over", async () => {
    await api.start();
    // The leader talks to the private apiserver, the standby to the plane's (one etcd, one Lease).
    const leader = operator(["--kubeconfig", api.kubeconfigPath, ...election("hang")]);
    await leader.waitForLog(msg("Became leader"));
    await leader.waitForLog(msg("Caches synced; reconciling"));
    expect(await probeUntil(leader, "/readyz", 200)).toEqual({ status: 200, body: "ok\n" });
    expect(await probe(leader, "/healthz")).toEqual({ status: 200, body: "ok\n" });

    const standby = operator(election("hang"));
    await standby.waitForLog(msg("Campaigning for leadership"));
    // A healthy standby is ready (a rollout never waits on it) and reconciles nothing.
    expect(await probeUntil(standby, "/readyz", 200)).toEqual({ status: 200, body: "ok\n" });
    expect(await probe(standby, "/healthz")).toEqual({ status: 200, body: "ok\n" });
    expect(standby.logs.some((l) => l["msg"] === "Became leader")).toBe(false);

    // The leader's apiserver hangs: its renewal waits for an answer that never comes. It steps
    // down by its own deadline timer, without that answer.
    api.freeze();
    cleanups.push(async () => api.thaw()); // never leave it frozen for the next test
    const frozenAt = Date.now();
    const lost = await leader.waitForLog(msg("Lost leadership"), 30_000);
    const detectedMs = Date.now() - frozenAt;
    console.info(`leader stepped down ${detectedMs} ms after its apiserver froze (renew deadline 4 s)`);
    expect(lost["reason"]).toBe("could not renew the Lease within the renew deadline");
    // Not before the renew deadline: the last renewal was one retry period (plus a request) or less
    // before the freeze.
    expect(detectedMs).toBeGreaterThanOrEqual(3_000);
    // It no longer claims readiness (503, or the server is already closed by the shutdown).
    const afterLoss = await probe(leader, "/readyz").catch(() => ({ status: 0, body: "" }));
    expect(afterLoss.status).not.toBe(200);

    // The standby sees the Lease unchanged for its duration and takes it — after the old leader
    // stepped down (lease duration 6 s > renew deadline 4 s): never two leaders at once.
    const became = await standby.waitForLog(msg("Became leader"), 30_000);
    expect(Number(became["time"])).toBeGreaterThan(Number(lost["time"]));
    await standby.waitForLog(msg("Caches synced; reconciling"));
    expect(await probeUntil(standby, "/readyz", 200)).toEqual({ status: 200, body: "ok\n" });
    expect(await probe(standby, "/healthz")).toEqual({ status: 200, body: "ok\n" });

    // The apiserver answers again: the old leader finishes its shutdown and exits 1.
    api.thaw();
    const code = await eventually(async () => leader.child.exitCode ?? undefined, {
      timeoutMs: 30_000,
      what: "the old leader to exit",
    });
    expect(code).toBe(1);
  });

  it("when the apiserver is down, the leader steps down and exits; a standby stays healthy, not ready until it is back", async () => {
    await api.start();
    // A Lease of its own, so nothing left by the test above is in the way.
    const leader = operator(["--kubeconfig", api.kubeconfigPath, ...election("outage")]);
    await leader.waitForLog(msg("Became leader"));
    const standby = operator(["--kubeconfig", api.kubeconfigPath, ...election("outage")]);
    await standby.waitForLog(msg("Campaigning for leadership"));
    expect(await probeUntil(standby, "/readyz", 200)).toEqual({ status: 200, body: "ok\n" });

    const downAt = Date.now();
    await api.stop();
    const lost = await leader.waitForLog(msg("Lost leadership"), 30_000);
    expect(lost["reason"]).toBe("could not renew the Lease within the renew deadline");
    const code = await eventually(async () => leader.child.exitCode ?? undefined, {
      timeoutMs: 30_000,
      what: "the leader to exit",
    });
    expect(code).toBe(1);
    console.info(
      `leader stepped down ${Date.now() - downAt} ms after its apiserver began to shut down (renew deadline 4 s)`,
    );

    // The standby's attempts fail fast and its loop keeps turning: not ready, but healthy.
    const notReady = await probeUntil(standby, "/readyz", 503, 30_000);
    expect(notReady.body).toMatch(
      /^not ready\nstandby last read the Lease \d+(\.\d)?s ago, longer than the lease duration \(6s\) \(last error: .+\)\n$/,
    );
    expect(await probe(standby, "/healthz")).toEqual({ status: 200, body: "ok\n" });
    expect(standby.logs.some((l) => l["msg"] === "Lost leadership")).toBe(false);

    // Back: the standby reads the Lease again, finds it expired and takes over.
    await api.start();
    await standby.waitForLog(msg("Became leader"), 60_000);
    expect(await probeUntil(standby, "/readyz", 200)).toEqual({ status: 200, body: "ok\n" });
    expect(await probe(standby, "/healthz")).toEqual({ status: 200, body: "ok\n" });
  });
});
