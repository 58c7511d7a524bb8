/**
 * The evaluator's Valkey state against a real server: window buffers that survive a restart, the
 * state's version (the fence seq of the committed evaluation that left it), the kept copy, TTLs,
 * cooldowns, tick leases, the round trips of a tick, and the benchmark baseline's equivalence.
 * Every test works under tenant ids of its own and deletes their keys afterwards.
 *
 * Valkey is a cache of the tenant's evaluation fence in PostgreSQL (`tenant_fences`). This file is
 * about Valkey, so the fence is simulated in memory ({@link fences}); `tick()` follows the order of
 * `runTenantPipeline`: load → advance → evaluate → fence seq + 1 → applyCommit → store.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { baselineWindowStore } from "../../bench/baselineWindowStore.ts";
import { evaluateTenant, type TenantEvaluation } from "../../evaluator/src/rules/evaluateTenant.ts";
import {
  anomalyRule,
  patternRule,
  T0,
  thresholdRule,
  windowRule,
} from "../../evaluator/src/rules/fixtures.ts";
import type { AlertState } from "../../evaluator/src/rules/lifecycle.ts";
import {
  type PairState,
  planTenant,
  type TenantInput,
  type TenantPlan,
  type TenantState,
} from "../../evaluator/src/rules/planTenant.ts";
import { groupReadings } from "../../evaluator/src/rules/readings.ts";
import type { Reading, Rule } from "../../evaluator/src/rules/types.ts";
import {
  cooldownKey,
  tenantStateField,
  tenantStateKey,
  tenantTag,
  tickLeaseKey,
  windowBufferKey,
} from "../../evaluator/src/state/keys.ts";
import { rebuildSnapshot } from "../../evaluator/src/state/rebuild.ts";
import { STATE_RETENTION_MS } from "../../evaluator/src/state/retention.ts";
import type { TickLease } from "../../evaluator/src/state/scriptProtocol.ts";
import {
  advanceTick,
  applyCommit,
  commitOps,
  type TenantSnapshot,
} from "../../evaluator/src/state/tenantSnapshot.ts";
import {
  type FenceVersion,
  type StateDelta,
  type StoreResult,
  type TenantLoad,
  ValkeyState,
} from "../../evaluator/src/state/valkeyState.ts";
import { decodeAnomalyStats } from "../../evaluator/src/state/valueEncoding.ts";
import { type PrivateRedis, startPrivateRedis } from "../support/privateServices.ts";
import { connectValkey, deleteTenantKeys, uniqueTenantId } from "../support/valkey.ts";

const clients: Redis[] = [];
const tenants: string[] = [];

// A server of this file's own: the round-trip tests count commands with MONITOR, which must see
// nothing but this file's traffic (other suites and benchmarks share the machine's server).
let server: PrivateRedis;
beforeAll(async () => {
  server = await startPrivateRedis();
});
afterAll(async () => {
  await server.destroy();
});

function client(): Redis {
  const c = connectValkey(server.url);
  clients.push(c);
  return c;
}

function newTenant(): string {
  const t = uniqueTenantId();
  tenants.push(t);
  return t;
}

afterEach(async () => {
  const cleaner = connectValkey(server.url);
  try {
    for (const t of tenants.splice(0)) {
      fences.delete(t);
      await deleteTenantKeys(cleaner, t);
    }
  } finally {
    cleaner.disconnect();
    for (const c of clients.splice(0)) c.disconnect();
  }
});

function reading(deviceId: string, s: number, value: number, metric = "temp"): Reading {
  return { deviceId, metric, ts: T0 + s * 1000, value };
}

function tenantInput(
  tenantId: string,
  rules: Rule[],
  deviceIds: string[],
  readings: Reading[],
  nowS: number,
) {
  return {
    tenantId,
    rules,
    deviceIds,
    readingsByDeviceMetric: groupReadings(readings),
    now: T0 + nowS * 1000,
  } satisfies TenantInput;
}

/**
 * The tenants' evaluation fences as PostgreSQL holds them (`tenant_fences`: committed evaluations
 * so far and the newest one's tick time), simulated: a tenant without an entry was never evaluated.
 */
const fences = new Map<string, FenceVersion>();

function fenceOf(tenantId: string): FenceVersion {
  return fences.get(tenantId) ?? { seq: 0, evalMs: null };
}

/**
 * `commit_evaluation.sql`'s compare-and-set: moves the fence `seq → seq + 1` when it is still the
 * loaded one and its tick time is not newer; `false` when a newer evaluation committed first.
 */
function commitFence(tenantId: string, loaded: FenceVersion, nowMs: number): boolean {
  const current = fenceOf(tenantId);
  if (current.seq !== loaded.seq || (current.evalMs !== null && current.evalMs > nowMs)) return false;
  fences.set(tenantId, { seq: loaded.seq + 1, evalMs: nowMs });
  return true;
}

/**
 * What PostgreSQL would rebuild for a tenant Valkey holds no state of: here, from no rows (no
 * judged readings, no alerts), through the pipeline's pure rebuild step.
 */
function rebuildFromNothing(plan: TenantPlan, fence: FenceVersion): TenantSnapshot {
  return rebuildSnapshot(plan, [], { seq: fence.seq, judged: null }, plan.now);
}

interface TickOptions {
  /** Take this tick lease (a tenant in a hand-off). */
  readonly lease?: TickLease;
  /** The PostgreSQL rebuild of a `stale` load; without it a stale load fails the test. */
  readonly rebuild?: (plan: TenantPlan, fence: FenceVersion) => TenantSnapshot;
}

/** A committed evaluation whose state is not stored yet. */
interface Committed {
  readonly plan: TenantPlan;
  readonly snapshot: TenantSnapshot;
  /** The delta to store (`null` after a rebuild: a full write). */
  readonly delta: StateDelta | null;
  readonly evaluation: TenantEvaluation;
  /** The state the rules were evaluated with. */
  readonly state: TenantState;
  readonly source: "kept" | "valkey" | "rebuilt";
}

/** The state to evaluate with; `held` and (unless a rebuild is given) `stale` fail the test. */
function mustState(load: TenantLoad, tenantId: string, fence: FenceVersion): TenantSnapshot {
  if (load.kind === "held") throw new Error(`tenant ${tenantId}: lease held by ${load.holder}`);
  if (load.kind === "stale")
    throw new Error(
      `tenant ${tenantId}: unexpected stale load (Valkey at seq ${load.stored}, fence at ${fence.seq})`,
    );
  return load.snapshot;
}

/** Load → advance → evaluate → fence seq + 1 → applyCommit: an evaluation committed, not stored. */
async function evaluate(
  store: ValkeyState,
  input: TenantInput,
  options: TickOptions = {},
): Promise<Committed> {
  const tenantId = input.tenantId;
  const plan = planTenant(input);
  const fence = fenceOf(tenantId);
  const load = await store.loadTenantState(plan, fence, options.lease ? { lease: options.lease } : {});
  let snapshot: TenantSnapshot;
  let source: Committed["source"];
  if (load.kind === "stale" && options.rebuild) {
    snapshot = options.rebuild(plan, fence);
    snapshot.seq = fence.seq;
    snapshot.at = fence.evalMs;
    source = "rebuilt";
  } else {
    snapshot = mustState(load, tenantId, fence);
    source = load.kind === "state" ? load.source : "valkey";
  }
  // Cooldowns run on the tick clock, as in runTenantPipeline.
  const now = input.now;
  const step = advanceTick(snapshot, plan, now);
  const evaluation = evaluateTenant({ ...input, state: step.state, plan });
  if (!commitFence(tenantId, fence, input.now))
    throw new Error(`tenant ${tenantId}: the fence refused the commit`);
  applyCommit(snapshot, evaluation.stateUpdates, now);
  snapshot.seq = fence.seq + 1;
  snapshot.at = input.now;
  const delta: StateDelta | null =
    source === "rebuilt"
      ? null
      : { from: { seq: fence.seq, at: fence.evalMs }, writes: commitOps(evaluation.stateUpdates, now, step) };
  return { plan, snapshot, delta, evaluation, state: step.state, source };
}

interface TickResult extends Committed {
  readonly stored: StoreResult;
}

/** A whole tick of one tenant, as `runTenantPipeline` does it; the store must be applied. */
async function tick(store: ValkeyState, input: TenantInput, options: TickOptions = {}): Promise<TickResult> {
  const committed = await evaluate(store, input, options);
  const stored = await store.storeTenantState(committed.plan, committed.snapshot, committed.delta);
  expect(stored).toMatchObject({ stored: true });
  return { ...committed, stored };
}

/** The stored version of a tenant's state (`"<seq>:<tick ms>"`), or null. */
function storedVersion(c: Redis, tenantId: string): Promise<string | null> {
  return c.hget(tenantStateKey(tenantId), "seq");
}

/**
 * Commands the server received from clients (not from inside scripts) that mention `tenantId`,
 * while `fn` ran on `actor`. MONITOR shows commands in execution order, so once a marker sent by
 * `actor` after `fn` shows up, every command of `fn` has been seen.
 */
async function commandsDuring(actor: Redis, tenantId: string, fn: () => Promise<unknown>): Promise<string[]> {
  const monitor = await client().monitor();
  clients.push(monitor);
  const tag = tenantTag(tenantId);
  const marker = `marker-${randomUUID()}`;
  const seen: string[] = [];
  const markerSeen = new Promise<void>((resolve) => {
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (args.includes(marker)) resolve();
      else if (source !== "lua" && args.some((a) => a.includes(tag)))
        seen.push(String(args[0]).toLowerCase());
    });
  });
  await fn();
  await actor.echo(marker);
  await markerSeen;
  return seen;
}

describe("window buffers", () => {
  it("accumulate across a restart: a new connection sees the buffer and the next qualifying reading fires", async () => {
    const t = newTenant();
    const rules = [
      windowRule({ tenant_id: t, operator: ">", threshold: 50, window_seconds: 300, min_count: 3 }),
    ];

    const first = client();
    const before = await tick(
      new ValkeyState(first),
      tenantInput(t, rules, ["d1"], [reading("d1", -20, 60), reading("d1", -10, 70)], 0),
    );
    expect(before.evaluation.conditions).toMatchObject([{ status: false, value: 2 }]);
    expect(before.evaluation.evaluations).toEqual([]);
    await first.quit();

    // "Restart": a brand-new client and wrapper; the state lives in Valkey only (and the fence in
    // PostgreSQL, which the restarted process reads again).
    const second = client();
    expect(await second.get(windowBufferKey(t, "r1", "d1"))).toBe(`${T0 - 20_000}:60,+10000:70`);
    expect(await storedVersion(second, t)).toBe(`1:${T0}`);
    const after = await tick(
      new ValkeyState(second),
      tenantInput(t, rules, ["d1"], [reading("d1", 50, 80)], 60),
    );
    expect(after.source).toBe("valkey");
    expect(after.evaluation.conditions).toMatchObject([{ status: true, value: 3 }]);
    expect(after.evaluation.evaluations).toMatchObject([
      { action: "fire", ruleId: "r1", deviceId: "d1", since: T0 + 60_000 },
    ]);
    expect(
      JSON.parse((await second.hget(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))) ?? "null"),
    ).toEqual({
      since: T0 + 60_000,
      severity: "warning",
    });
    expect(await storedVersion(second, t)).toBe(`2:${T0 + 60_000}`);
  });

  it("trim to the window and to maxLen, store a re-delivered reading once, and a load writes nothing", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [windowRule({ tenant_id: t, window_seconds: 60, min_count: 2, params: { lastN: 3 } })];
    const readings = [10, 20, 30, 40].map((s) => reading("d1", s, s));
    await tick(store, tenantInput(t, rules, ["d1"], readings, 40));
    expect(await c.get(windowBufferKey(t, "r1", "d1"))).toBe(`${T0 + 20_000}:20,+10000:30,+10000:40`);
    // The same readings again, plus one that is already outside the window at now = 100 s.
    const trimmed = await tick(
      store,
      tenantInput(t, rules, ["d1"], [...readings, reading("d1", 45, 45)], 100),
    );
    expect(await c.get(windowBufferKey(t, "r1", "d1"))).toBe(`${T0 + 45_000}:45`);
    expect([...trimmed.state.pairs.values()][0]?.buffer).toEqual([{ ts: T0 + 45_000, value: 45 }]);

    // Without a count cap in play: the same readings judged twice are stored once.
    const fresh = newTenant();
    const freshRules = [windowRule({ tenant_id: fresh, window_seconds: 600, min_count: 1 })];
    const freshInput = tenantInput(fresh, freshRules, ["d1"], readings, 40);
    const stored = `${T0 + 10_000}:10,+10000:20,+10000:30,+10000:40`;
    await tick(store, freshInput);
    await tick(store, freshInput);
    expect(await c.get(windowBufferKey(fresh, "r1", "d1"))).toBe(stored);
    // The same by another process, which reads the buffer from Valkey instead of its own copy.
    expect((await tick(new ValkeyState(client()), freshInput)).source).toBe("valkey");
    expect(await c.get(windowBufferKey(fresh, "r1", "d1"))).toBe(stored);

    // A load only reads: the buffer, the hash and their TTLs are as the last store left them.
    const hash = await c.hgetall(tenantStateKey(fresh));
    const load = await new ValkeyState(client()).loadTenantState(
      planTenant(tenantInput(fresh, freshRules, ["d1"], [reading("d1", 50, 50)], 60)),
      fenceOf(fresh),
    );
    expect(load.kind).toBe("state");
    expect(await c.get(windowBufferKey(fresh, "r1", "d1"))).toBe(stored);
    expect(await c.hgetall(tenantStateKey(fresh))).toEqual(hash);
  });

  it("a buffer an older release stored as a sorted set is read, and rewritten in the current form", async () => {
    const t = newTenant();
    const c = client();
    const rules = [windowRule({ tenant_id: t, window_seconds: 600, min_count: 3, threshold: 50 })];
    const key = windowBufferKey(t, "r1", "d1");
    await c.zadd(key, T0 - 20_000, `${T0 - 20_000}:60`, T0 - 10_000, `${T0 - 10_000}:70`);
    const result = await tick(new ValkeyState(c), tenantInput(t, rules, ["d1"], [reading("d1", 0, 80)], 0));
    expect(result.evaluation.conditions).toMatchObject([{ status: true, value: 3 }]);
    expect(await c.type(key)).toBe("string");
    expect(await c.get(key)).toBe(`${T0 - 20_000}:60,+10000:70,+10000:80`);
  });
});

describe("the kept copy of a tenant's state", () => {
  const rules = (t: string) => [
    windowRule({ tenant_id: t, id: "w", device_id: null, threshold: 50, min_count: 2, window_seconds: 300 }),
    anomalyRule({ tenant_id: t, id: "a", device_id: null, params: { minSamples: 2 } }),
    thresholdRule({ tenant_id: t, id: "c", device_id: null, threshold: 60, cooldown_seconds: 90 }),
  ];
  const readingsAt = (k: number) =>
    ["d1", "d2"].map((d, i) => reading(d, 30 * k - 5, 40 + ((k * 13 + i * 7) % 30)));

  it("two evaluators taking turns on a tenant see exactly what one evaluator sees", async () => {
    const t = newTenant();
    const solo = newTenant();
    const [a, b, alone] = [new ValkeyState(client()), new ValkeyState(client()), new ValkeyState(client())];
    // Turns of 1 to 3 ticks, so each evaluator sometimes has a current copy and sometimes not.
    const turns = [0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0];
    for (let k = 0; k < turns.length; k++) {
      const store = turns[k] === 0 ? a : b;
      const input = tenantInput(t, rules(t), ["d1", "d2"], readingsAt(k), 30 * k);
      const soloInput = tenantInput(solo, rules(solo), ["d1", "d2"], readingsAt(k), 30 * k);
      const shared = await tick(store, input);
      const single = await tick(alone, soloInput);
      // The copy is used exactly when the same evaluator committed the previous evaluation.
      expect(shared.source).toBe(k > 0 && turns[k - 1] === turns[k] ? "kept" : "valkey");
      expect(single.source).toBe(k > 0 ? "kept" : "valkey");
      expect(shared.evaluation.conditions).toEqual(single.evaluation.conditions);
      expect(shared.evaluation.evaluations.map((e) => [e.ruleId, e.deviceId, e.action])).toEqual(
        single.evaluation.evaluations.map((e) => [e.ruleId, e.deviceId, e.action]),
      );
    }
    const c = client();
    for (const d of ["d1", "d2"]) {
      expect(await c.get(windowBufferKey(t, "w", d))).toBe(await c.get(windowBufferKey(solo, "w", d)));
    }
    const fields = async (tenantId: string) => {
      const hash = await c.hgetall(tenantStateKey(tenantId));
      delete hash["seq"];
      return hash;
    };
    expect(await fields(t)).toEqual(await fields(solo));
    expect(await storedVersion(c, t)).toBe(`12:${T0 + 330_000}`);
  });

  it("a pair the kept copy was not read for (a device back after a silent tick) is read afresh, not taken as empty", async () => {
    const t = newTenant();
    const c = client();
    const [a, b] = [new ValkeyState(c), new ValkeyState(client())];
    // "x" is not in the tenant's device list: it is only evaluated on ticks where it sends readings.
    const rules = [
      windowRule({
        tenant_id: t,
        id: "w",
        device_id: null,
        threshold: 30,
        min_count: 3,
        window_seconds: 600,
      }),
    ];
    const input = (nowS: number, readings: Reading[]) => tenantInput(t, rules, ["d1"], readings, nowS);
    await tick(a, input(0, [reading("x", -10, 40), reading("x", -5, 41)]));
    await tick(b, input(60, [reading("d1", 55, 10)])); // another evaluator: a's copy is stale
    expect((await tick(a, input(120, []))).source).toBe("valkey"); // read afresh, for a plan without "x"
    const back = await tick(a, input(180, [reading("x", 175, 42)]));
    expect(back.source).toBe("valkey"); // the copy is current, but does not cover "x"
    expect(back.evaluation.conditions.find((x) => x.deviceId === "x")).toMatchObject({
      status: true,
      value: 3,
    });
    expect(await c.get(windowBufferKey(t, "w", "x"))).toBe(`${T0 - 10_000}:40,+5000:41,+180000:42`);
  });

  it("a tenant forgotten (it left the shard) is read afresh when it comes back", async () => {
    const t = newTenant();
    const store = new ValkeyState(client());
    const input = (k: number) => tenantInput(t, rules(t), ["d1", "d2"], readingsAt(k), 30 * k);
    expect((await tick(store, input(0))).source).toBe("valkey");
    expect((await tick(store, input(1))).source).toBe("kept");
    store.retainTenants(new Set(["another tenant"]));
    expect(store.keptTenants).toBe(0);
    expect((await tick(store, input(2))).source).toBe("valkey");
    expect((await tick(store, input(3))).source).toBe("kept");
    store.forget(t);
    expect((await tick(store, input(4))).source).toBe("valkey");
  });
});

describe("state versions (the fence seq of the committed evaluation that left the state)", () => {
  const rules = (t: string) => [
    windowRule({
      tenant_id: t,
      id: "w",
      threshold: 0,
      min_count: 1,
      window_seconds: 600,
      cooldown_seconds: 300,
    }),
  ];

  it("a load for a fence version Valkey does not hold answers stale from a read, and uses nothing kept", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const input = (s: number) => tenantInput(t, rules(t), ["d1"], [reading("d1", s - 5, s)], s);
    await tick(store, input(0));
    await tick(store, input(60));
    const stored = await storedVersion(c, t);
    expect(stored).toBe(`2:${T0 + 60_000}`);
    const plan = planTenant(input(120));
    const loadOnce = async (s: ValkeyState, fence: FenceVersion) => {
      let load: TenantLoad | undefined;
      const commands = await commandsDuring(c, t, async () => {
        load = await s.loadTenantState(plan, fence);
      });
      return { load, commands };
    };

    // Valkey at an older seq than the fence (the store after a commit failed): the kept copy, of
    // that older seq as well, is not used; Valkey's state is read, and is not the fence's.
    const ahead = await loadOnce(store, { seq: 3, evalMs: T0 + 90_000 });
    expect(ahead.load).toEqual({ kind: "stale", stored: 2 });
    expect(ahead.commands).toHaveLength(1);
    expect(store.keptTenants).toBe(0);

    // The same seq, another evaluation (PostgreSQL lost an asynchronous commit and gave its seq
    // again): the tick time tells them apart.
    expect((await loadOnce(new ValkeyState(c), { seq: 2, evalMs: T0 + 90_000 })).load).toEqual({
      kind: "stale",
      stored: 2,
    });
    // A fence that lost its row (a tenant deleted and created again): seq 0 is not seq 2 either.
    expect((await loadOnce(new ValkeyState(c), { seq: 0, evalMs: null })).load).toEqual({
      kind: "stale",
      stored: 2,
    });

    // A flushed tenant: what Valkey holds (nothing) is the state of seq 0, not of the fence's.
    await c.del(tenantStateKey(t), windowBufferKey(t, "w", "d1"), cooldownKey(t, "w", "d1"));
    expect((await loadOnce(new ValkeyState(c), fenceOf(t))).load).toEqual({ kind: "stale", stored: 0 });
    // Nothing was written by any of these loads.
    expect(await c.exists(tenantStateKey(t))).toBe(0);

    // The evaluation rebuilds from PostgreSQL and writes the whole state, labelled with its seq.
    const rebuilt = await tick(store, input(120), { rebuild: rebuildFromNothing });
    expect(rebuilt.source).toBe("rebuilt");
    expect(rebuilt.stored).toEqual({ stored: true, full: true });
    expect(await storedVersion(c, t)).toBe(`3:${T0 + 120_000}`);
    expect(await c.get(windowBufferKey(t, "w", "d1"))).toBe(`${T0 + 115_000}:120`);
    expect((await tick(store, input(180))).source).toBe("kept");
  });

  it("state of an earlier release, without a seq, is the state of a tenant never evaluated (fence seq 0)", async () => {
    const t = newTenant();
    const c = client();
    // As an earlier release left it: a generation stamp instead of a seq, a firing lifecycle state,
    // a window buffer, a cooldown whose index field says only "1" (its key's TTL is its time left).
    await c.hset(tenantStateKey(t), {
      gen: "abc.1",
      [tenantStateField("w", "d1", "cond")]: JSON.stringify({ since: T0 - 60_000, severity: "warning" }),
      [tenantStateField("w", "d1", "cd")]: "1",
    });
    await c.set(windowBufferKey(t, "w", "d1"), `${T0 - 30_000}:7`);
    await c.set(cooldownKey(t, "w", "d1"), "1", "PX", 120_000);
    const input = tenantInput(t, rules(t), ["d1"], [], 0);
    // A wall clock at the tick time: the earlier release's cooldown ends its time left after it.
    const wallClock = () => T0;

    const load = await new ValkeyState(c, { wallClock }).loadTenantState(planTenant(input), {
      seq: 0,
      evalMs: null,
    });
    expect(load).toMatchObject({ kind: "state", source: "valkey", snapshot: { seq: 0, at: null } });
    const until = load.kind === "state" ? [...load.snapshot.cooldownUntil.values()] : [];
    expect(until).toHaveLength(1);
    expect(until[0]).toBeGreaterThan(T0 + 110_000);
    expect(until[0]).toBeLessThanOrEqual(T0 + 120_000);
    // A fence past seq 0 is not the state of that release.
    expect(await new ValkeyState(c).loadTenantState(planTenant(input), { seq: 1, evalMs: T0 })).toEqual({
      kind: "stale",
      stored: 0,
    });

    const first = await tick(new ValkeyState(c, { wallClock }), input);
    expect(first.source).toBe("valkey");
    expect(first.state.pairs.get(first.plan.pairs[0]!.key)?.cooldownRemainingMs).toBeGreaterThan(110_000);
    // The alert fired by that release goes on firing; its window is still there.
    expect(first.evaluation.evaluations).toMatchObject([{ action: "still-firing", since: T0 - 60_000 }]);
    expect(first.state.pairs.get(first.plan.pairs[0]!.key)?.buffer).toEqual([{ ts: T0 - 30_000, value: 7 }]);
    // Stored as a delta on that state (version "0"), now labelled with the first seq.
    expect(first.stored).toEqual({ stored: true, full: false });
    expect(await storedVersion(c, t)).toBe(`1:${T0}`);
  });

  it("a store of an evaluation whose version Valkey no longer holds is refused, and a full store never overwrites a newer seq", async () => {
    const t = newTenant();
    const c = client();
    const [a, b] = [new ValkeyState(c), new ValkeyState(client())];
    const input = (s: number, value: number) =>
      tenantInput(t, rules(t), ["d1"], [reading("d1", s - 5, value)], s);
    await tick(a, input(0, 1));
    // a commits its evaluation of 60 s in PostgreSQL, then stalls before storing the state
    // (a slow or cut Valkey connection) ...
    const late = await evaluate(a, input(60, 2));
    expect(late.snapshot.seq).toBe(2);
    // ... while the tenant's new owner evaluates 120 s: Valkey still holds seq 1, so it rebuilds
    // from PostgreSQL, commits seq 3 and stores it whole.
    const newer = await tick(b, input(120, 3), { rebuild: rebuildFromNothing });
    expect(newer.source).toBe("rebuilt");
    // The hash (with the cooldown's end in its cd field) and the buffer.
    const dump = async () =>
      Promise.all([c.hgetall(tenantStateKey(t)), c.get(windowBufferKey(t, "w", "d1"))]);
    const before = await dump();
    expect(before[0]["seq"]).toBe(`3:${T0 + 120_000}`);

    // The late delta was computed from seq 1: refused, and Valkey holds a newer seq than its own 2,
    // so no full write follows either.
    let result: StoreResult | undefined;
    const commands = await commandsDuring(c, t, async () => {
      result = await a.storeTenantState(late.plan, late.snapshot, late.delta);
    });
    expect(result).toEqual({ stored: false, newer: 3 });
    expect(commands).toHaveLength(1);
    // A full store of seq 2 is refused by seq 3, and so is one of seq 3 itself.
    expect(await a.storeTenantState(late.plan, late.snapshot, null)).toEqual({ stored: false, newer: 3 });
    expect(await b.storeTenantState(newer.plan, newer.snapshot, null)).toEqual({ stored: false, newer: 3 });
    expect(await dump()).toEqual(before);
    // Nothing of a refused store is kept: a's next load reads.
    expect(a.keptTenants).toBe(0);
    expect((await tick(a, input(180, 4))).source).toBe("valkey");
  });

  it("a current copy over a flushed or lagging Valkey is used, and its store writes the whole state", async () => {
    const t = newTenant();
    const c = client();
    // A wall clock half a second behind each tick, as in production (cooldown keys' TTLs are
    // measured on it).
    let wall = T0;
    const store = new ValkeyState(c, { wallClock: () => wall });
    const input = (s: number) => {
      wall = T0 + s * 1000 + 500;
      return tenantInput(t, rules(t), ["d1"], [reading("d1", s - 5, s + 1)], s);
    };
    expect((await tick(store, input(0))).evaluation.evaluations).toMatchObject([{ action: "fire" }]);
    await tick(store, input(60));

    // Flushed: the copy is the state of the fence's seq, so it is used; the delta is refused (Valkey
    // holds no seq) and the whole state is written instead: two calls.
    await c.del(tenantStateKey(t), windowBufferKey(t, "w", "d1"), cooldownKey(t, "w", "d1"));
    let flushed: TickResult | undefined;
    const commands = await commandsDuring(c, t, async () => {
      flushed = await tick(store, input(120));
    });
    expect(commands).toHaveLength(2);
    expect(flushed).toMatchObject({ source: "kept", stored: { stored: true, full: true } });
    expect(await storedVersion(c, t)).toBe(`3:${T0 + 120_000}`);
    expect(await c.get(windowBufferKey(t, "w", "d1"))).toBe(`${T0 - 5000}:1,+60000:61,+60000:121`);
    expect(
      JSON.parse((await c.hget(tenantStateKey(t), tenantStateField("w", "d1", "cond"))) ?? "null"),
    ).toEqual({
      since: T0,
      severity: "warning",
    });
    // The cooldown of the first fire is written back: its end on the tick clock, its key with the
    // time left at this tick (300 s from the fire's tick, 120 s of them gone).
    expect(await c.hget(tenantStateKey(t), tenantStateField("w", "d1", "cd"))).toBe(String(T0 + 300_000));
    const cooldown = await c.pttl(cooldownKey(t, "w", "d1"));
    expect(cooldown).toBeGreaterThan(170_000);
    expect(cooldown).toBeLessThanOrEqual(180_000);

    // Lagging: Valkey lost the last store (a failover), it holds the seq before the copy's.
    await c.hset(tenantStateKey(t), "seq", `2:${T0 + 60_000}`);
    const lagging = await tick(store, input(180));
    expect(lagging).toMatchObject({ source: "kept", stored: { stored: true, full: true } });
    expect(await storedVersion(c, t)).toBe(`4:${T0 + 180_000}`);
    expect((await tick(store, input(240))).stored).toEqual({ stored: true, full: false });
  });
});

describe("TTLs", () => {
  it("window buffers live 2× the window (at least 120 s); lifecycle, statistics and last-seen are retained", async () => {
    const t = newTenant();
    const c = client();
    const rules = [
      windowRule({
        tenant_id: t,
        id: "long",
        window_seconds: 900,
        min_count: 1,
        threshold: 0,
        cooldown_seconds: 300,
      }),
      windowRule({ tenant_id: t, id: "short", window_seconds: 30, min_count: 5 }),
      anomalyRule({ tenant_id: t, id: "anom" }),
      patternRule({ tenant_id: t, id: "silent", params: { kind: "absent" }, window_seconds: 600 }),
    ];
    await tick(new ValkeyState(c), tenantInput(t, rules, ["d1"], [reading("d1", -1, 5)], 0));

    const pttl = (key: string) => c.pttl(key);
    const long = await pttl(windowBufferKey(t, "long", "d1"));
    expect(long).toBeGreaterThan(1_800_000 - 10_000);
    expect(long).toBeLessThanOrEqual(1_800_000);
    const short = await pttl(windowBufferKey(t, "short", "d1"));
    expect(short).toBeGreaterThan(120_000 - 10_000);
    expect(short).toBeLessThanOrEqual(120_000);
    const cooldown = await pttl(cooldownKey(t, "long", "d1"));
    expect(cooldown).toBeGreaterThan(290_000);
    expect(cooldown).toBeLessThanOrEqual(300_000);
    // Its end is stored on the tick clock, in the index field.
    expect(await c.hget(tenantStateKey(t), tenantStateField("long", "d1", "cd"))).toBe(String(T0 + 300_000));
    // Lifecycle, statistics and last-seen share the tenant's hash, and its retention.
    for (const field of [
      tenantStateField("long", "d1", "cond"),
      tenantStateField("anom", "d1", "anom"),
      tenantStateField("silent", "d1", "seen"),
    ]) {
      expect(await c.hexists(tenantStateKey(t), field)).toBe(1);
    }
    expect(await pttl(tenantStateKey(t))).toBeGreaterThan(STATE_RETENTION_MS - 10_000);
    expect(await c.hget(tenantStateKey(t), tenantStateField("silent", "d1", "seen"))).toBe(String(T0 - 1000));
  });
});

describe("cooldowns", () => {
  it("are set on fire, read back by the next load, and hold back a re-fire after a resolve", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [thresholdRule({ tenant_id: t, operator: ">", threshold: 30, cooldown_seconds: 600 })];
    const fire = await tick(store, tenantInput(t, rules, ["d1"], [reading("d1", 0, 35)], 0));
    expect(fire.evaluation.evaluations.map((e) => e.action)).toEqual(["fire"]);
    expect(await c.exists(cooldownKey(t, "r1", "d1"))).toBe(1);

    // Another process (no copy) reads the cooldown and the firing state back from Valkey.
    const other = new ValkeyState(client());
    const plan = planTenant(tenantInput(t, rules, ["d1"], [], 60));
    const load = await other.loadTenantState(plan, fenceOf(t));
    const snapshot = mustState(load, t, fenceOf(t));
    const pair = [...advanceTick(snapshot, plan, plan.now).state.pairs.values()][0] as PairState;
    // Cooldowns run on the tick clock: 600 s from the fire's tick, 60 s of them gone.
    expect(pair.cooldownRemainingMs).toBe(540_000);
    expect(pair.alert).toEqual({ active: true, since: T0, severity: "warning" });

    const resolve = await tick(store, tenantInput(t, rules, ["d1"], [reading("d1", 60, 20)], 60));
    expect(resolve.evaluation.evaluations.map((e) => e.action)).toEqual(["resolve"]);
    expect(await c.hexists(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))).toBe(0);

    const again = await tick(store, tenantInput(t, rules, ["d1"], [reading("d1", 120, 40)], 120));
    expect(again.evaluation.conditions.map((x) => x.status)).toEqual([true]);
    expect(again.evaluation.evaluations).toEqual([]);
    expect(await c.hexists(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))).toBe(0);
    // The same held back by a process that reads the cooldown from Valkey.
    const fresh = await tick(
      new ValkeyState(client()),
      tenantInput(t, rules, ["d1"], [reading("d1", 180, 41)], 180),
    );
    expect(fresh.source).toBe("valkey");
    expect(fresh.evaluation.evaluations).toEqual([]);
    // At the fire's tick + 600 s the cooldown has ended (whatever the wall clock says): it fires.
    const ended = await tick(
      new ValkeyState(client()),
      tenantInput(t, rules, ["d1"], [reading("d1", 595, 42)], 600),
    );
    expect(ended.evaluation.evaluations.map((e) => [e.action, e.since])).toEqual([["fire", T0 + 600_000]]);
    expect(await c.hget(tenantStateKey(t), tenantStateField("r1", "d1", "cd"))).toBe(String(T0 + 1_200_000));
  });
});

describe("anomaly statistics and last-seen", () => {
  it("statistics learned over ticks persist in Valkey, and a spike then fires", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [anomalyRule({ tenant_id: t, params: { k: 3, minSamples: 10 } })];
    for (let k = 0; k < 4; k++) {
      const readings = [0, 1, 2].map((j) => reading("d1", 60 * k + 10 * j, (k + j) % 2 === 0 ? 10 : 12));
      const quiet = await tick(store, tenantInput(t, rules, ["d1"], readings, 60 * k + 30));
      expect(quiet.evaluation.evaluations).toEqual([]);
    }
    expect(
      decodeAnomalyStats(await c.hget(tenantStateKey(t), tenantStateField("r1", "d1", "anom"))),
    ).toMatchObject({
      n: 12,
      lastTs: T0 + 200_000,
    });
    const spike = await tick(
      new ValkeyState(client()),
      tenantInput(t, rules, ["d1"], [reading("d1", 250, 40)], 270),
    );
    expect(spike.source).toBe("valkey");
    expect(spike.evaluation.evaluations).toMatchObject([{ action: "fire", value: 40 }]);
  });

  it("an absent rule seeds last-seen for a device that never reported, and fires after the window", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [
      patternRule({ tenant_id: t, device_id: null, params: { kind: "absent" }, window_seconds: 600 }),
    ];
    const first = await tick(
      store,
      tenantInput(t, rules, ["quiet", "chatty"], [reading("chatty", -5, 1)], 0),
    );
    expect(first.evaluation.conditions.map((x) => [x.deviceId, x.status])).toEqual([
      ["quiet", false],
      ["chatty", false],
    ]);
    expect(await c.hget(tenantStateKey(t), tenantStateField("r1", "quiet", "seen"))).toBe(String(T0));
    const later = await tick(
      new ValkeyState(client()),
      tenantInput(t, rules, ["quiet", "chatty"], [reading("chatty", 590, 1)], 600),
    );
    expect(later.evaluation.evaluations.map((e) => [e.deviceId, e.action, e.value])).toEqual([
      ["quiet", "fire", 600],
    ]);
    expect(await c.hget(tenantStateKey(t), tenantStateField("r1", "chatty", "seen"))).toBe(
      String(T0 + 590_000),
    );
  });
});

describe("tick leases", () => {
  it("two tokens race: exactly one wins; release by the loser is refused; the holder releases", async () => {
    const t = newTenant();
    const [a, b] = [new ValkeyState(client()), new ValkeyState(client())];
    const lease = (token: string): TickLease => ({ tenantId: t, slot: 42, token, ttlMs: 120_000 });
    const results = await Promise.all([
      a.acquireTickLease(lease("shard-a")),
      b.acquireTickLease(lease("shard-b")),
    ]);
    const winners = results.filter((r) => r.acquired);
    expect(winners).toHaveLength(1);
    const winner = results[0]?.acquired ? "shard-a" : "shard-b";
    const loser = winner === "shard-a" ? "shard-b" : "shard-a";
    expect(results.find((r) => !r.acquired)).toEqual({ acquired: false, holder: winner });

    const c = client();
    const key = tickLeaseKey(t, 42);
    expect(await c.get(key)).toBe(winner);
    const ttl = await c.pttl(key);
    expect(ttl).toBeGreaterThan(110_000);
    expect(ttl).toBeLessThanOrEqual(120_000);

    // The holder may retry its acquire; nobody else may take or drop the lease.
    expect(await a.acquireTickLease(lease(winner))).toEqual({ acquired: true });
    expect(await a.releaseTickLease(lease(loser))).toBe("not-holder");
    expect(await c.get(key)).toBe(winner);
    expect(await b.releaseTickLease(lease(winner))).toBe("released");
    expect(await c.exists(key)).toBe(0);
    expect(await b.releaseTickLease(lease(winner))).toBe("absent");
  });

  it("many contenders on separate connections: exactly one wins", async () => {
    const t = newTenant();
    const stores = Array.from({ length: 8 }, () => new ValkeyState(client()));
    const results = await Promise.all(
      stores.map((s, i) => s.acquireTickLease({ tenantId: t, slot: 1, token: `shard-${i}`, ttlMs: 60_000 })),
    );
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
  });

  it("a load under a lease held by another evaluator answers held and reads nothing; a kept copy stays kept", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [windowRule({ tenant_id: t, window_seconds: 300, min_count: 1, threshold: 0 })];
    const input = (s: number) => tenantInput(t, rules, ["d1"], [reading("d1", s - 5, 5)], s);
    const mine = (slot: number): TickLease => ({ tenantId: t, slot, token: "shard-0", ttlMs: 60_000 });
    const theirs = (slot: number): TickLease => ({ ...mine(slot), token: "shard-1" });

    // Without a copy: the read takes the lease first, and stops there.
    expect(await store.acquireTickLease(theirs(7))).toEqual({ acquired: true });
    let load: TenantLoad | undefined;
    const commands = await commandsDuring(c, t, async () => {
      load = await store.loadTenantState(planTenant(input(0)), fenceOf(t), { lease: mine(7) });
    });
    expect(load).toEqual({ kind: "held", holder: "shard-1" });
    expect(commands).toHaveLength(1);
    expect(await c.exists(tenantStateKey(t), windowBufferKey(t, "r1", "d1"))).toBe(0);
    expect(store.keptTenants).toBe(0);

    // With a current copy: the lease is asked for alone; refused, the copy is kept for a later tick.
    await tick(store, input(0), { lease: mine(8) });
    expect(await store.acquireTickLease(theirs(9))).toEqual({ acquired: true });
    expect(await store.loadTenantState(planTenant(input(60)), fenceOf(t), { lease: mine(9) })).toEqual({
      kind: "held",
      holder: "shard-1",
    });
    expect(store.keptTenants).toBe(1);
    expect(await storedVersion(c, t)).toBe(`1:${T0}`);
    expect((await tick(store, input(120), { lease: mine(10) })).source).toBe("kept");
  });
});

describe("round trips", () => {
  it("a steady tick with a current copy is ONE call for N device-rule pairs (the store), with a hand-off lease two, without a copy two", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const devices = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
    const rules = [
      thresholdRule({ tenant_id: t, id: "thr", device_id: null, threshold: 50, cooldown_seconds: 60 }),
      windowRule({ tenant_id: t, id: "win", device_id: null, threshold: 50, min_count: 2 }),
      anomalyRule({ tenant_id: t, id: "ano", device_id: null }),
      patternRule({ tenant_id: t, id: "ris", device_id: null, params: { kind: "rising" }, min_count: 2 }),
      patternRule({ tenant_id: t, id: "abs", device_id: null, params: { kind: "absent" } }),
    ];
    const input = (nowS: number, readings: Reading[] = []) => tenantInput(t, rules, devices, readings, nowS);
    expect(planTenant(input(0)).pairs).toHaveLength(100);
    const lease = (slot: number): TickLease => ({ tenantId: t, slot, token: "shard-0", ttlMs: 60_000 });
    const calls = async (s: ValkeyState, tickInput: TenantInput, options: TickOptions = {}) => {
      let result: TickResult | undefined;
      const commands = await commandsDuring(c, t, async () => {
        result = await tick(s, tickInput, options);
      });
      for (const command of commands) expect(["evalsha", "eval"]).toContain(command);
      return { commands: commands.length, result: result! };
    };

    // A process that holds no copy of the tenant's state reads it (taking the lease in the same
    // call), then stores it: two calls.
    expect((await calls(store, input(-120), { lease: lease(1) })).commands).toBe(2);
    // The steady state, with a current copy kept from the previous tick: ONE call, the store.
    const steady = await calls(store, input(-60));
    expect(steady).toMatchObject({ commands: 1, result: { source: "kept", stored: { full: false } } });
    // A tenant in a hand-off takes the lease first: one call more.
    const readings = devices.flatMap((d) => [reading(d, -30, 40), reading(d, -20, 60), reading(d, -10, 70)]);
    const leased = await calls(store, input(0, readings), { lease: lease(3) });
    expect(leased).toMatchObject({ commands: 2, result: { source: "kept" } });
    expect(await c.get(tickLeaseKey(t, 3))).toBe("shard-0");
    // Every device breached the threshold, the window and the rising run: 60 fires, stored in the
    // one store call with the tick's buffers.
    const fires = leased.result.evaluation.evaluations.filter((e) => e.action === "fire");
    expect(fires).toHaveLength(60);
    expect(await c.exists(...devices.map((d) => cooldownKey(t, "thr", d)))).toBe(20);
    const stored = await c.hkeys(tenantStateKey(t));
    expect(devices.filter((d) => stored.includes(tenantStateField("win", d, "cond")))).toHaveLength(20);
    expect(devices.filter((d) => stored.includes(tenantStateField("ano", d, "anom")))).toHaveLength(20);

    // Another evaluator ticks the tenant (no copy: read + store); this one's copy is then stale,
    // and it reads again: two calls each.
    expect((await calls(new ValkeyState(client()), input(60))).commands).toBe(2);
    expect((await calls(store, input(120))).commands).toBe(2);
    expect((await calls(store, input(180))).commands).toBe(1);
  });
});

describe("baselineWindowStore", () => {
  it("produces the same fire decisions as the Lua path over a sequence, at two round trips per pair", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const baseline = baselineWindowStore(c);
    const devices = ["d1", "d2"];
    const rules = [
      windowRule({
        tenant_id: t,
        id: "w3of",
        device_id: null,
        operator: ">",
        threshold: 50,
        window_seconds: 120,
        min_count: 3,
      }),
      windowRule({
        tenant_id: t,
        id: "wlast",
        device_id: null,
        operator: ">=",
        threshold: 55,
        window_seconds: 600,
        min_count: 2,
        params: { lastN: 3 },
      }),
      patternRule({
        tenant_id: t,
        id: "rise",
        device_id: null,
        params: { kind: "rising" },
        min_count: 3,
        window_seconds: 300,
      }),
    ];
    // A deterministic, bumpy series per device: two readings per 30 s tick.
    const series = (d: number, i: number) => 50 + 15 * Math.sin(i / 3 + d) + ((i * 7 + d * 3) % 5);
    const baselineAlerts = new Map<string, AlertState>();
    const luaActions: string[] = [];
    const baselineActions: string[] = [];

    for (let k = 0; k < 16; k++) {
      const nowS = 30 * k;
      const readings = devices.flatMap((d, di) => [
        reading(d, nowS - 20, series(di, 2 * k)),
        reading(d, nowS - 5, series(di, 2 * k + 1)),
      ]);
      const input = tenantInput(t, rules, devices, readings, nowS);
      const lua = (await tick(store, input)).evaluation;

      const plan = planTenant(input);
      let baselineState: Awaited<ReturnType<typeof baseline.loadTenantState>> | undefined;
      const baselineCommands = await commandsDuring(c, t, async () => {
        baselineState = await baseline.loadTenantState(plan);
      });
      expect(baselineCommands).toHaveLength(2 * plan.pairs.length);
      const pairs = new Map<string, PairState>();
      for (const [key, pair] of baselineState!.pairs) {
        pairs.set(key, { ...pair, alert: baselineAlerts.get(key) ?? pair.alert });
      }
      const base = evaluateTenant({ ...input, state: { pairs } });
      for (const u of base.stateUpdates) if (u.kind === "alert") baselineAlerts.set(u.pairKey, u.state);

      expect(base.conditions).toEqual(lua.conditions);
      const describeAction = (e: TenantEvaluation["evaluations"][number]) =>
        `${nowS}:${e.ruleId}/${e.deviceId}:${e.action}`;
      luaActions.push(...lua.evaluations.map(describeAction));
      baselineActions.push(...base.evaluations.map(describeAction));
    }
    expect(baselineActions).toEqual(luaActions);
    // The sequence is only a meaningful comparison if it both fires and resolves.
    expect(luaActions.filter((a) => a.endsWith(":fire")).length).toBeGreaterThanOrEqual(3);
    expect(luaActions.filter((a) => a.endsWith(":resolve")).length).toBeGreaterThanOrEqual(2);
  });
});
