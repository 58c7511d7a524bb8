/**
 * The shared resilient informer (runtime/informer.ts) under a real kube-apiserver that is stopped and
 * started again. What it proves, against the real server and client-node 2.x:
 * - while the apiserver is down the informer keeps restarting, and its backoff grows: ListWatch's
 *   'connect' (emitted before every list/watch attempt) does not reset it;
 * - `synced` of an informer started during the outage does not resolve until a list has succeeded;
 * - once the apiserver is back the informer resyncs by itself: objects created, updated and deleted
 *   while it was down are in its cache, and the watch is live again (later writes arrive too).
 *
 * The apiserver stopped here is a private one (test/support/privateApiserver.ts): the plane's own
 * binary and flags on a spare port, in front of the plane's etcd. Stopping the plane's apiserver
 * would break the other e2e files that run in parallel; this way they never notice, and the plane's
 * apiserver is how the test writes while the private one is down.
 */
import { Writable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ResilientInformer, startInformer } from "../../runtime/informer.ts";
import { createTestNamespace, eventually, loadKubeConfig } from "../support/cluster.ts";
import { type PrivateApiserver, startPrivateApiserver } from "../support/privateApiserver.ts";

const LABEL = "eo-test/informer=restart";
const BACKOFF = { base: 200, max: 1600 };

interface LogEntry {
  msg: string;
  delayMs?: number;
  time: number;
}

/** A real pino logger whose lines land in `entries`. */
function capturingLogger(entries: LogEntry[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) entries.push(JSON.parse(line));
      done();
    },
  });
  return pino({ level: "info" }, sink);
}

describe("resilient informer across a kube-apiserver restart", () => {
  const kc = loadKubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let api: PrivateApiserver;
  let ns: { name: string; remove(): Promise<void> };
  const informers: ResilientInformer<k8s.V1ConfigMap>[] = [];

  /** An informer on the test namespace's labelled ConfigMaps, through the private apiserver. */
  function watchConfigMaps(log: pino.Logger, onRestart?: () => void) {
    const privateCore = api.kc.makeApiClient(k8s.CoreV1Api);
    const informer = startInformer<k8s.V1ConfigMap>({
      kc: api.kc,
      path: `/api/v1/namespaces/${ns.name}/configmaps`,
      labelSelector: LABEL,
      list: () => privateCore.listNamespacedConfigMap({ namespace: ns.name, labelSelector: LABEL }),
      onChange: () => {},
      ...(onRestart ? { onRestart } : {}),
      log,
      resource: "configmaps",
      restartDelayMs: BACKOFF,
    });
    informers.push(informer);
    return informer;
  }

  /** Name → `data.v` of what the informer's cache holds. */
  const contents = (informer: ResilientInformer<k8s.V1ConfigMap>) =>
    Object.fromEntries(
      informer.cache
        .list(ns.name)
        .map((c) => [c.metadata?.name, c.data?.["v"]])
        .sort(([a], [b]) => String(a).localeCompare(String(b))),
    );

  // Writes go through the plane's apiserver: they work whether the private one is up or not.
  const put = async (name: string, v: string) => {
    const body = { metadata: { name, labels: { "eo-test/informer": "restart" } }, data: { v } };
    try {
      await core.replaceNamespacedConfigMap({ name, namespace: ns.name, body });
    } catch {
      await core.createNamespacedConfigMap({ namespace: ns.name, body });
    }
  };

  beforeAll(async () => {
    [api, ns] = await Promise.all([startPrivateApiserver(), createTestNamespace(kc, "informer")]);
  });
  afterAll(async () => {
    await Promise.all(informers.map((i) => i.stop()));
    await Promise.all([api?.destroy(), ns?.remove()]);
  });

  it("keeps restarting with growing backoff while it is down, and resyncs when it is back", async () => {
    const log: LogEntry[] = [];
    let restarts = 0;
    await put("kept", "1");
    await put("doomed", "1");
    const informer = watchConfigMaps(capturingLogger(log), () => restarts++);
    await informer.synced;
    await eventually(async () => (Object.keys(contents(informer)).length === 2 ? true : undefined), {
      what: "the initial list in the cache",
    });
    expect(contents(informer)).toEqual({ doomed: "1", kept: "1" });

    await api.stop();
    const downAt = Date.now();
    const failuresWhileDown = () =>
      log.filter((e) => e.msg === "Informer failed; restarting" && e.time >= downAt);
    await eventually(async () => (failuresWhileDown().length >= 4 ? true : undefined), {
      timeoutMs: 30_000,
      what: "4 restarts while the apiserver is down",
    });
    // Every try fails while the server is down: nothing may reset the backoff, it doubles up to its cap.
    const delays = failuresWhileDown().map((e) => e.delayMs!);
    for (let i = 1; i < delays.length; i++) {
      expect(delays[i]).toBe(Math.min(BACKOFF.max, 2 * delays[i - 1]!));
    }

    // A second informer started during the outage: not synced before a list has succeeded.
    const lateLog: LogEntry[] = [];
    const late = watchConfigMaps(capturingLogger(lateLog));
    let lateSynced = false;
    void late.synced.then(() => {
      lateSynced = true;
    });

    // Changes the stopped apiserver never saw.
    await put("created-while-down", "1");
    await put("kept", "2");
    await core.deleteNamespacedConfigMap({ name: "doomed", namespace: ns.name });

    await eventually(async () => (lateLog.length >= 2 ? true : undefined), {
      timeoutMs: 30_000,
      what: "the late informer to fail twice",
    });
    expect(lateSynced).toBe(false);
    expect(contents(late)).toEqual({});

    await api.start();
    const expected = { "created-while-down": "1", kept: "2" };
    await eventually(
      async () => (JSON.stringify(contents(informer)) === JSON.stringify(expected) ? true : undefined),
      { timeoutMs: 60_000, what: "the informer to resync after the apiserver came back" },
    );
    expect(contents(informer)).toEqual(expected);
    expect(restarts).toBeGreaterThanOrEqual(1);
    expect(log.some((e) => e.msg === "Informer reconnected")).toBe(true);

    await late.synced;
    expect(contents(late)).toEqual(expected);

    // The watch is live again, not just relisted once.
    await put("created-after", "1");
    for (const i of [informer, late]) {
      await eventually(async () => (contents(i)["created-after"] === "1" ? true : undefined), {
        what: "a write after the restart to arrive",
      });
    }
  });
});
