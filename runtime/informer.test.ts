import * as k8s from "@kubernetes/client-node";
import { describe, expect, it, vi } from "vitest";
import { startInformer } from "./informer.ts";

type Obj = k8s.V1ConfigMap;
type WatchCallback = (phase: string, obj: unknown) => void;
type DoneCallback = (err: unknown) => void;

/**
 * An in-memory apiserver for one resource, behind the two calls ListWatch makes: `list()` and a
 * stand-in for client-node's `Watch` that behaves as `watch.js` does — a request that fails calls
 * `done(err)` before `watch()` returns (it never rejects), an open watch streams events from the
 * requested resourceVersion, and a resourceVersion older than the kept history gets an ERROR 410
 * event and the end of the stream.
 */
class FakeApiServer {
  up = true;
  lists = 0;
  #rv = 0;
  #oldestRv = 0;
  readonly #objects = new Map<string, Obj>();
  readonly #history: { rv: number; type: string; obj: Obj }[] = [];
  readonly #watchers = new Set<{ cb: WatchCallback; done: DoneCallback }>();

  readonly watch = {
    watch: async (_path: string, query: Record<string, string>, cb: WatchCallback, done: DoneCallback) => {
      const controller = new AbortController();
      if (!this.up) {
        done(refused());
        return controller;
      }
      const from = Number(query["resourceVersion"] ?? 0);
      if (from < this.#oldestRv) {
        cb("ERROR", { kind: "Status", code: 410, message: "too old resource version" });
        done(null);
        return controller;
      }
      const w = { cb, done };
      this.#watchers.add(w);
      controller.signal.addEventListener("abort", () => {
        if (this.#watchers.delete(w)) done(Object.assign(new Error("aborted"), { name: "AbortError" }));
      });
      for (const e of this.#history) if (e.rv > from) cb(e.type, e.obj);
      return controller;
    },
  } as unknown as k8s.Watch;

  list = async (): Promise<k8s.KubernetesListObject<Obj>> => {
    this.lists++;
    if (!this.up) throw refused();
    return { items: [...this.#objects.values()], metadata: { resourceVersion: String(this.#rv) } };
  };

  /** Writes through another apiserver: works whether or not this one is up. */
  put(name: string): void {
    const type = this.#objects.has(name) ? "MODIFIED" : "ADDED";
    const obj: Obj = { metadata: { name, namespace: "ns", resourceVersion: String(++this.#rv) } };
    this.#objects.set(name, obj);
    this.#emit(type, obj);
  }

  remove(name: string): void {
    const old = this.#objects.get(name);
    if (!old) return;
    this.#objects.delete(name);
    this.#emit("DELETED", { metadata: { ...old.metadata, resourceVersion: String(++this.#rv) } });
  }

  /** The apiserver dies: open watches break with ECONNRESET, new requests are refused. */
  crash(): void {
    this.up = false;
    for (const w of [...this.#watchers]) {
      this.#watchers.delete(w);
      w.done(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    }
  }

  /** Forgets the event history, as a restarted apiserver's empty watch cache does. */
  compact(): void {
    this.#history.length = 0;
    this.#oldestRv = this.#rv;
  }

  #emit(type: string, obj: Obj): void {
    this.#history.push({ rv: this.#rv, type, obj });
    for (const w of this.#watchers) w.cb(type, obj);
  }
}

function refused(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6443"), { code: "ECONNREFUSED" });
}

function recordingLog() {
  const warned: { delayMs: number; failures: number }[] = [];
  const info: string[] = [];
  return {
    warned,
    info,
    log: {
      warn: (fields: { delayMs: number; failures: number }) => warned.push(fields),
      info: (_fields: unknown, msg: string) => info.push(msg),
    } as never,
  };
}

function informerOn(server: FakeApiServer, extra: { onRestart?: () => void } = {}) {
  const rec = recordingLog();
  const events: string[] = [];
  const informer = startInformer<Obj>({
    kc: new k8s.KubeConfig(),
    watch: server.watch,
    path: "/api/v1/namespaces/ns/configmaps",
    list: server.list,
    onChange: (o, verb) => events.push(`${verb} ${o.metadata?.name}`),
    log: rec.log,
    resource: "configmaps",
    restartDelayMs: { base: 1, max: 8 },
    ...extra,
  });
  let synced = false;
  void informer.synced.then(() => {
    synced = true;
  });
  const names = () =>
    informer.cache
      .list("ns")
      .map((o) => o.metadata?.name)
      .sort();
  return { informer, events, ...rec, names, isSynced: () => synced };
}

describe("client-node 2.x ListWatch (the behaviour the wrapper is built on)", () => {
  it("emits 'connect' before it lists, and a failed list resolves start() with an 'error'", async () => {
    const server = new FakeApiServer();
    server.up = false;
    const seen: string[] = [];
    const lw = new k8s.ListWatch<Obj>(
      "/p",
      server.watch,
      async () => {
        seen.push("list");
        return server.list();
      },
      false,
    );
    lw.on("connect", () => seen.push("connect"));
    lw.on("error", () => seen.push("error"));
    await expect(lw.start()).resolves.toBeUndefined();
    expect(seen).toEqual(["connect", "list", "error"]);
    // And it stays down: nothing lists again by itself.
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(["connect", "list", "error"]);
    await lw.stop();
  });

  it("a refused watch is an 'error' too, and start() still resolves", async () => {
    const server = new FakeApiServer();
    let errors = 0;
    const lw = new k8s.ListWatch<Obj>(
      "/p",
      server.watch,
      async () => {
        const list = await server.list();
        server.up = false; // the apiserver goes away between the list and the watch
        return list;
      },
      false,
    );
    lw.on("error", () => errors++);
    await expect(lw.start()).resolves.toBeUndefined();
    expect(errors).toBe(1);
    await lw.stop();
  });
});

describe("startInformer", () => {
  it("resolves synced only after a list succeeded, retrying with capped exponential backoff", async () => {
    const server = new FakeApiServer();
    server.put("a");
    server.up = false;
    const t = informerOn(server);
    await vi.waitFor(() => expect(t.warned.length).toBeGreaterThanOrEqual(6));
    // 'connect' came before every one of these lists: resetting the backoff on it would pin it at the base.
    expect(t.warned.slice(0, 6).map((w) => w.delayMs)).toEqual([1, 2, 4, 8, 8, 8]);
    expect(t.isSynced()).toBe(false);
    expect(t.names()).toEqual([]);

    server.up = true;
    await t.informer.synced;
    expect(t.names()).toEqual(["a"]);
    expect(t.events).toContain("add a");
    expect(t.info).toContain("Informer reconnected");

    // Connected: the next failure starts the backoff over.
    const before = t.warned.length;
    server.crash();
    await vi.waitFor(() => expect(t.warned.length).toBeGreaterThan(before));
    expect(t.warned[before]).toMatchObject({ delayMs: 1, failures: 1 });
    await t.informer.stop();
  });

  it("after an apiserver outage, resumes and sees what changed meanwhile", async () => {
    const server = new FakeApiServer();
    server.put("a");
    server.put("b");
    let restarts = 0;
    const t = informerOn(server, { onRestart: () => restarts++ });
    await t.informer.synced;
    expect(t.names()).toEqual(["a", "b"]);

    server.crash();
    await vi.waitFor(() => expect(t.warned.length).toBeGreaterThanOrEqual(3));
    // Written through another apiserver while this one is down.
    server.put("c");
    server.put("a");
    server.remove("b");
    server.up = true;
    await vi.waitFor(() => expect(t.names()).toEqual(["a", "c"]));
    expect(t.events.slice(2)).toEqual(["add c", "update a", "delete b"]);
    expect(restarts).toBe(1);
    await t.informer.stop();
  });

  it("relists when the restarted apiserver no longer has the old resourceVersion", async () => {
    const server = new FakeApiServer();
    server.put("a");
    const t = informerOn(server);
    await t.informer.synced;
    server.crash();
    await vi.waitFor(() => expect(t.warned.length).toBeGreaterThanOrEqual(1));
    server.remove("a");
    server.put("b");
    server.compact();
    const lists = server.lists;
    server.up = true;
    await vi.waitFor(() => expect(t.names()).toEqual(["b"]));
    expect(server.lists).toBeGreaterThan(lists);
    expect(t.events).toContain("delete a");
    await t.informer.stop();
  });

  it("stop() ends the retries", async () => {
    const server = new FakeApiServer();
    server.up = false;
    const t = informerOn(server);
    await vi.waitFor(() => expect(t.warned.length).toBeGreaterThanOrEqual(2));
    await t.informer.stop();
    const lists = server.lists;
    await new Promise((r) => setTimeout(r, 50));
    expect(server.lists).toBe(lists);
    expect(t.isSynced()).toBe(false);
  });
});
