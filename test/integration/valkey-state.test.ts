/**
 * The evaluator's Valkey state against a real server: window buffers that survive a restart, TTLs,
 * cooldowns, tick leases, the one-round-trip-per-tenant contract, and the benchmark baseline's
 * equivalence. Every test works under tenant ids of its own and deletes their keys afterwards.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { evaluateTenant, type TenantEvaluation } from "../../evaluator/src/rules/evaluateTenant.ts";
import {
  anomalyRule,
  patternRule,
  T0,
  thresholdRule,
  windowRule,
} from "../../evaluator/src/rules/fixtures.ts";
import type { AlertState } from "../../evaluator/src/rules/lifecycle.ts";
import { type PairState, planTenant, type TenantInput } from "../../evaluator/src/rules/planTenant.ts";
import { groupReadings } from "../../evaluator/src/rules/readings.ts";
import type { Reading, Rule } from "../../evaluator/src/rules/types.ts";
import { baselineWindowStore } from "../../evaluator/src/state/baselineWindowStore.ts";
import { decodeAnomalyStats, type TickLease } from "../../evaluator/src/state/codec.ts";
import {
  cooldownKey,
  tenantKeysPattern,
  tenantStateField,
  tenantStateKey,
  tenantTag,
  tickLeaseKey,
  windowBufferKey,
} from "../../evaluator/src/state/keys.ts";
import { STATE_RETENTION_MS } from "../../evaluator/src/state/retention.ts";
import { type TenantLoad, ValkeyState } from "../../evaluator/src/state/scripts.ts";
import { type PrivateRedis, startPrivateRedis } from "../support/privateServices.ts";
import { connectValkey, uniqueTenantId } from "../support/valkey.ts";

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
      let cursor = "0";
      do {
        const [next, keys] = await cleaner.scan(cursor, "MATCH", tenantKeysPattern(t), "COUNT", 1000);
        if (keys.length > 0) await cleaner.del(...keys);
        cursor = next;
      } while (cursor !== "0");
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

function mustAcquire(load: TenantLoad) {
  if (!load.acquired) throw new Error(`lease held by ${load.holder}`);
  return load.state;
}

/** A whole tick of one tenant through the Lua path: load → evaluate → commit. */
async function tick(store: ValkeyState, input: TenantInput, lease?: TickLease): Promise<TenantEvaluation> {
  const state = mustAcquire(await store.loadTenantState(planTenant(input), lease ? { lease } : {}));
  const result = evaluateTenant({ ...input, state });
  const commit = await store.commitTenantState(input.tenantId, result.stateUpdates, lease ? { lease } : {});
  expect(commit.applied).toBe(true);
  return result;
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
    expect(before.conditions).toMatchObject([{ status: false, value: 2 }]);
    expect(before.evaluations).toEqual([]);
    await first.quit();

    // "Restart": a brand-new client and wrapper; the state lives in Valkey only.
    const second = client();
    expect(await second.get(windowBufferKey(t, "r1", "d1"))).toBe(`${T0 - 20_000}:60,+10000:70`);
    const after = await tick(
      new ValkeyState(second),
      tenantInput(t, rules, ["d1"], [reading("d1", 50, 80)], 60),
    );
    expect(after.conditions).toMatchObject([{ status: true, value: 3 }]);
    expect(after.evaluations).toMatchObject([
      { action: "fire", ruleId: "r1", deviceId: "d1", since: T0 + 60_000 },
    ]);
    expect(
      JSON.parse((await second.hget(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))) ?? "null"),
    ).toEqual({
      since: T0 + 60_000,
      severity: "warning",
    });
  });

  it("trim to the window and to maxLen, and store a re-delivered reading once", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [windowRule({ tenant_id: t, window_seconds: 60, min_count: 2, params: { lastN: 3 } })];
    const readings = [10, 20, 30, 40].map((s) => reading("d1", s, s));
    await tick(store, tenantInput(t, rules, ["d1"], readings, 40));
    // Retried tick with the same readings, plus one that is already outside the window at now = 100 s.
    const state = mustAcquire(
      await store.loadTenantState(
        planTenant(tenantInput(t, rules, ["d1"], [...readings, reading("d1", 45, 45)], 100)),
      ),
    );
    expect(await c.get(windowBufferKey(t, "r1", "d1"))).toBe(`${T0 + 45_000}:45`);
    expect([...state.pairs.values()][0]?.buffer).toEqual([{ ts: T0 + 45_000, value: 45 }]);

    // Without a count cap in play: the same readings loaded twice are stored once.
    const fresh = newTenant();
    const freshRules = [windowRule({ tenant_id: fresh, window_seconds: 600, min_count: 1 })];
    await store.loadTenantState(planTenant(tenantInput(fresh, freshRules, ["d1"], readings, 40)));
    await store.loadTenantState(planTenant(tenantInput(fresh, freshRules, ["d1"], readings, 40)));
    expect(await c.get(windowBufferKey(fresh, "r1", "d1"))).toBe(
      `${T0 + 10_000}:10,+10000:20,+10000:30,+10000:40`,
    );
    // The same by another process, which reads the buffer from Valkey instead of its own copy.
    await new ValkeyState(client()).loadTenantState(
      planTenant(tenantInput(fresh, freshRules, ["d1"], readings, 40)),
    );
    expect(await c.get(windowBufferKey(fresh, "r1", "d1"))).toBe(
      `${T0 + 10_000}:10,+10000:20,+10000:30,+10000:40`,
    );
  });

  it("a buffer an older release stored as a sorted set is read, and rewritten in the current form", async () => {
    const t = newTenant();
    const c = client();
    const rules = [windowRule({ tenant_id: t, window_seconds: 600, min_count: 3, threshold: 50 })];
    const key = windowBufferKey(t, "r1", "d1");
    await c.zadd(key, T0 - 20_000, `${T0 - 20_000}:60`, T0 - 10_000, `${T0 - 10_000}:70`);
    const result = await tick(new ValkeyState(c), tenantInput(t, rules, ["d1"], [reading("d1", 0, 80)], 0));
    expect(result.conditions).toMatchObject([{ status: true, value: 3 }]);
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
    for (let k = 0; k < 12; k++) {
      // Turns of 1 to 3 ticks, so each evaluator sometimes has a current copy and sometimes not.
      const store = [0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0][k] === 0 ? a : b;
      const input = tenantInput(t, rules(t), ["d1", "d2"], readingsAt(k), 30 * k);
      const soloInput = tenantInput(solo, rules(solo), ["d1", "d2"], readingsAt(k), 30 * k);
      const shared = await tick(store, input);
      const single = await tick(alone, soloInput);
      expect(shared.conditions).toEqual(single.conditions);
      expect(shared.evaluations.map((e) => [e.ruleId, e.deviceId, e.action])).toEqual(
        single.evaluations.map((e) => [e.ruleId, e.deviceId, e.action]),
      );
    }
    const c = client();
    for (const d of ["d1", "d2"]) {
      expect(await c.get(windowBufferKey(t, "w", d))).toBe(await c.get(windowBufferKey(solo, "w", d)));
    }
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
    await tick(b, input(60, [reading("d1", 55, 10)])); // another writer: a's copy is stale
    await tick(a, input(120, [])); // a reads afresh, for a plan without "x"
    const back = await tick(a, input(180, [reading("x", 175, 42)]));
    expect(back.conditions.find((x) => x.deviceId === "x")).toMatchObject({ status: true, value: 3 });
    expect(await c.get(windowBufferKey(t, "w", "x"))).toBe(`${T0 - 10_000}:40,+5000:41,+180000:42`);
  });

  it("a late commit of an overrun tick is dropped once a newer evaluation wrote the tenant's state", async () => {
    const t = newTenant();
    const c = client();
    const [a, b] = [new ValkeyState(c), new ValkeyState(client())];
    const rules = [thresholdRule({ tenant_id: t, operator: ">", threshold: 30 })];
    const lease = (slot: number, token: string): TickLease => ({ tenantId: t, slot, token, ttlMs: 120_000 });
    // a evaluates slot 1 and fires, then stalls before its commit (slow PostgreSQL, say) ...
    const late = tenantInput(t, rules, ["d1"], [reading("d1", 55, 40)], 60);
    const state = mustAcquire(await a.loadTenantState(planTenant(late), { lease: lease(1, "shard-a") }));
    const lateResult = evaluateTenant({ ...late, state });
    expect(lateResult.stateUpdates.length).toBeGreaterThan(0);
    // ... while the tenant's new owner evaluates slot 2 and commits.
    await tick(b, tenantInput(t, rules, ["d1"], [reading("d1", 115, 45)], 120), lease(2, "shard-b"));
    const newer = await c.hget(tenantStateKey(t), tenantStateField("r1", "d1", "cond"));
    expect(await a.commitTenantState(t, lateResult.stateUpdates, { lease: lease(1, "shard-a") })).toEqual({
      applied: false,
      reason: "stale",
      holder: null,
    });
    expect(await c.hget(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))).toBe(newer);
  });

  it("a current copy costs one call; another writer or a flush costs a read, and nothing kept is trusted", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const lease = (slot: number): TickLease => ({ tenantId: t, slot, token: "shard-0", ttlMs: 60_000 });
    const input = (k: number) => tenantInput(t, rules(t), ["d1", "d2"], readingsAt(k), 30 * k);
    const load = (k: number) =>
      commandsDuring(c, t, () => store.loadTenantState(planTenant(input(k)), { lease: lease(k) }));

    expect(await load(0)).toHaveLength(2); // nothing kept yet: read, then write
    expect(await load(1)).toHaveLength(1); // current copy: the write alone
    // Another evaluator ticks the tenant: the kept copy is stale, and is not used.
    await tick(new ValkeyState(client()), input(2));
    expect(await load(3)).toHaveLength(3); // refused write, read, write
    expect(await load(4)).toHaveLength(1);
    // A tenant that left this shard is forgotten; if it comes back, it is read afresh.
    store.retainTenants(new Set(["another tenant"]));
    expect(store.keptTenants).toBe(0);
    expect(await load(5)).toHaveLength(2);
    expect(await load(6)).toHaveLength(1);
    // Valkey loses the tenant's keys: the next load starts from what Valkey holds (nothing).
    await c.del(tenantStateKey(t), windowBufferKey(t, "w", "d1"), windowBufferKey(t, "w", "d2"));
    const state = mustAcquire(await store.loadTenantState(planTenant(input(7)), { lease: lease(7) }));
    const buffers = [...state.pairs.values()].filter((p) => p.buffer).map((p) => p.buffer?.length);
    expect(buffers).toEqual([1, 1]);
    expect(await c.get(windowBufferKey(t, "w", "d1"))).toBe(`${T0 + 205_000}:${40 + ((7 * 13) % 30)}`);
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
    expect(fire.evaluations.map((e) => e.action)).toEqual(["fire"]);
    expect(await c.exists(cooldownKey(t, "r1", "d1"))).toBe(1);

    const state = mustAcquire(await store.loadTenantState(planTenant(tenantInput(t, rules, ["d1"], [], 60))));
    const pair = [...state.pairs.values()][0] as PairState;
    expect(pair.cooldownRemainingMs).toBeGreaterThan(590_000);
    expect(pair.cooldownRemainingMs).toBeLessThanOrEqual(600_000);
    expect(pair.alert).toEqual({ active: true, since: T0, severity: "warning" });

    const resolve = await tick(store, tenantInput(t, rules, ["d1"], [reading("d1", 60, 20)], 60));
    expect(resolve.evaluations.map((e) => e.action)).toEqual(["resolve"]);
    expect(await c.hexists(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))).toBe(0);

    const again = await tick(store, tenantInput(t, rules, ["d1"], [reading("d1", 120, 40)], 120));
    expect(again.conditions.map((x) => x.status)).toEqual([true]);
    expect(again.evaluations).toEqual([]);
    expect(await c.hexists(tenantStateKey(t), tenantStateField("r1", "d1", "cond"))).toBe(0);
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
      expect(quiet.evaluations).toEqual([]);
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
    expect(spike.evaluations).toMatchObject([{ action: "fire", value: 40 }]);
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
    expect(first.conditions.map((x) => [x.deviceId, x.status])).toEqual([
      ["quiet", false],
      ["chatty", false],
    ]);
    expect(await c.hget(tenantStateKey(t), tenantStateField("r1", "quiet", "seen"))).toBe(String(T0));
    const later = await tick(
      store,
      tenantInput(t, rules, ["quiet", "chatty"], [reading("chatty", 590, 1)], 600),
    );
    expect(later.evaluations.map((e) => [e.deviceId, e.action, e.value])).toEqual([["quiet", "fire", 600]]);
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

  it("a load under a lease held by another evaluator reads and writes nothing; a fenced commit is refused", async () => {
    const t = newTenant();
    const c = client();
    const store = new ValkeyState(c);
    const rules = [windowRule({ tenant_id: t, window_seconds: 300, min_count: 1, threshold: 0 })];
    const input = tenantInput(t, rules, ["d1"], [reading("d1", 0, 5)], 0);
    const mine: TickLease = { tenantId: t, slot: 7, token: "shard-0", ttlMs: 60_000 };
    const theirs: TickLease = { ...mine, token: "shard-1" };

    expect(await store.acquireTickLease(theirs)).toEqual({ acquired: true });
    expect(await store.loadTenantState(planTenant(input), { lease: mine })).toEqual({
      acquired: false,
      holder: "shard-1",
    });
    expect(await c.exists(windowBufferKey(t, "r1", "d1"))).toBe(0);

    const update = {
      pairKey: "x",
      ruleId: "r1",
      deviceId: "d1",
      kind: "cooldown",
      ttlMs: 60_000,
    } as const;
    expect(await store.commitTenantState(t, [update], { lease: mine })).toEqual({
      applied: false,
      reason: "lease",
      holder: "shard-1",
    });
    expect(await c.exists(cooldownKey(t, "r1", "d1"))).toBe(0);
    expect(await store.commitTenantState(t, [update], { lease: theirs })).toEqual({
      applied: true,
      written: 1,
    });
    expect(await c.exists(cooldownKey(t, "r1", "d1"))).toBe(1);
  });
});

describe("round trips", () => {
  it("one tenant's steady load is ONE EVALSHA/EVAL for N device-rule pairs (lease included), its commit one more", async () => {
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
    const readings = devices.flatMap((d) => [reading(d, -30, 40), reading(d, -20, 60), reading(d, -10, 70)]);
    const input = tenantInput(t, rules, devices, readings, 0);
    const plan = planTenant(input);
    expect(plan.pairs).toHaveLength(100);
    const lease: TickLease = { tenantId: t, slot: 3, token: "shard-0", ttlMs: 60_000 };

    // A process that holds no copy of the tenant's state reads it first: two calls.
    let load: TenantLoad | undefined;
    const coldCommands = await commandsDuring(c, t, async () => {
      load = await new ValkeyState(c).loadTenantState(plan, { lease });
    });
    expect(coldCommands).toHaveLength(2);
    await c.del(
      tenantStateKey(t),
      ...devices.flatMap((d) => ["win", "ris"].map((r) => windowBufferKey(t, r, d))),
    );
    // The steady state, with a current copy kept from the previous tick: ONE call.
    mustAcquire(
      await store.loadTenantState(planTenant(tenantInput(t, rules, devices, [], -60)), {
        lease: { ...lease, slot: 2 },
      }),
    );
    const loadCommands = await commandsDuring(c, t, async () => {
      load = await store.loadTenantState(plan, { lease });
    });
    expect(loadCommands).toHaveLength(1);
    expect(["evalsha", "eval"]).toContain(loadCommands[0]);
    const state = mustAcquire(load!);
    expect(state.pairs.size).toBe(100);

    const result = evaluateTenant({ ...input, state });
    // Every device breached the threshold, the window and the rising run: 60 fires to record.
    expect(result.evaluations.filter((e) => e.action === "fire")).toHaveLength(60);
    const commitCommands = await commandsDuring(c, t, () =>
      store.commitTenantState(t, result.stateUpdates, { lease }),
    );
    expect(commitCommands).toHaveLength(1);
    expect(["evalsha", "eval"]).toContain(commitCommands[0]);
    expect(await c.exists(...devices.map((d) => cooldownKey(t, "thr", d)))).toBe(20);
    const stored = await c.hkeys(tenantStateKey(t));
    expect(devices.filter((d) => stored.includes(tenantStateField("win", d, "cond")))).toHaveLength(20);
    expect(devices.filter((d) => stored.includes(tenantStateField("ano", d, "anom")))).toHaveLength(20);
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
      const lua = await tick(store, input);

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
