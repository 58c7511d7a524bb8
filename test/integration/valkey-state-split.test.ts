/**
 * The state calls of a tenant larger than one call's bound (`maxPairsPerCall`), against a real
 * server: read in slices of pairs and written in chunks of ops, a tenant's state round-trips as it
 * does in one call; a write landing between two read slices makes the read stale; a write cut short
 * after its first chunk (a crash) leaves a state that no read uses, which the next full write
 * replaces; a newer write landing between two chunks wins. Every check is on the state the rules
 * judge, compared with a reference tenant fed the same input through one call per load and store.
 *
 * The interleavings are real: {@link hookedClient} wraps the script commands `ValkeyState`
 * registers on its ioredis client, so a test runs a competing load or store between two calls of
 * one load or store. As in valkey-state.test.ts, the evaluation fence PostgreSQL holds is simulated
 * in memory, and so is its rebuild: {@link truth} keeps the state each committed evaluation left,
 * which is what the rebuild from PostgreSQL restores (state-rebuild.test.ts proves that part).
 */
import type { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { evaluateTenant, type TenantEvaluation } from "../../evaluator/src/rules/evaluateTenant.ts";
import {
  anomalyRule,
  patternRule,
  T0,
  thresholdRule,
  windowRule,
} from "../../evaluator/src/rules/fixtures.ts";
import {
  pairKey,
  planTenant,
  type TenantInput,
  type TenantPlan,
  type TenantState,
} from "../../evaluator/src/rules/planTenant.ts";
import { groupReadings } from "../../evaluator/src/rules/readings.ts";
import type { Reading, Rule } from "../../evaluator/src/rules/types.ts";
import { tenantStateKey, windowBufferKey } from "../../evaluator/src/state/keys.ts";
import {
  advanceTick,
  applyCommit,
  commitOps,
  type TenantSnapshot,
} from "../../evaluator/src/state/tenantSnapshot.ts";
import {
  type FenceVersion,
  SCRIPT_COMMANDS,
  type StateDelta,
  type StoreResult,
  type TenantLoad,
  ValkeyState,
  type ValkeyStateOptions,
} from "../../evaluator/src/state/valkeyState.ts";
import { partialStateVersion, stateVersion } from "../../evaluator/src/state/valueEncoding.ts";
import { connectValkey, deleteTenantKeys, uniqueTenantId } from "../support/valkey.ts";

const clients: Redis[] = [];
const tenants: string[] = [];

function client(): Redis {
  const c = connectValkey();
  clients.push(c);
  return c;
}

function newTenant(): string {
  const t = uniqueTenantId();
  tenants.push(t);
  return t;
}

afterEach(async () => {
  const cleaner = connectValkey();
  try {
    for (const t of tenants.splice(0)) {
      fences.delete(t);
      truth.delete(t);
      await deleteTenantKeys(cleaner, t);
    }
  } finally {
    cleaner.disconnect();
    for (const c of clients.splice(0)) c.disconnect();
  }
});

type ScriptName = keyof typeof SCRIPT_COMMANDS;

/**
 * Runs every script call a `ValkeyState` built on the returned client makes through `hook`, which
 * sends it (`send`), or not, and may do something else before or after. `ValkeyState` takes its
 * script commands from the client once `defineCommand` has registered them, so the hook wraps them
 * there; the client is otherwise a plain one of the shared server.
 */
function hookedClient(hook: (script: ScriptName, send: () => Promise<unknown>) => Promise<unknown>): Redis {
  const c = client();
  const scriptOf = new Map<string, ScriptName>(
    Object.entries(SCRIPT_COMMANDS).map(([script, command]) => [command, script as ScriptName]),
  );
  const define = c.defineCommand.bind(c);
  const commands = c as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  c.defineCommand = (name, definition) => {
    define(name, definition);
    const script = scriptOf.get(name);
    const send = commands[name];
    if (script === undefined || send === undefined) return;
    commands[name] = (...args: unknown[]) => hook(script, () => send.apply(c, args));
  };
  return c;
}

/** A hook that runs `after` once, right after the first call of `script` that follows arming it. */
function interleaver() {
  let armed: { script: ScriptName; after: () => Promise<void> } | null = null;
  return {
    arm(script: ScriptName, after: () => Promise<void>): void {
      armed = { script, after };
    },
    get pending(): boolean {
      return armed !== null;
    },
    hook: async (script: ScriptName, send: () => Promise<unknown>): Promise<unknown> => {
      const reply = await send();
      if (armed?.script === script) {
        const { after } = armed;
        armed = null;
        await after();
      }
      return reply;
    },
  };
}

// --- The simulated fence, its rebuild, and one tenant's tick (as in valkey-state.test.ts) ---------

/** The tenants' evaluation fences as PostgreSQL holds them; a tenant without one was never evaluated. */
const fences = new Map<string, FenceVersion>();
/** Per tenant, the state its newest committed evaluation left: what a rebuild from PostgreSQL gives. */
const truth = new Map<string, TenantSnapshot>();

function fenceOf(tenantId: string): FenceVersion {
  return fences.get(tenantId) ?? { seq: 0, evalMs: null };
}

/** The rebuild of a `stale` load: the state of the fence's evaluation, as PostgreSQL restores it. */
function rebuildFromTruth(plan: TenantPlan, fence: FenceVersion): TenantSnapshot {
  const snapshot = structuredClone(truth.get(plan.tenantId));
  if (snapshot === undefined || snapshot.seq !== fence.seq)
    throw new Error(`tenant ${plan.tenantId}: no state of fence seq ${fence.seq} to rebuild`);
  return snapshot;
}

/** A committed evaluation whose state is not stored yet. */
interface Committed {
  readonly plan: TenantPlan;
  readonly snapshot: TenantSnapshot;
  readonly delta: StateDelta | null;
  readonly evaluation: TenantEvaluation;
  /** The state the rules judged. */
  readonly state: TenantState;
  readonly source: "kept" | "valkey" | "rebuilt";
}

/**
 * Load → advance → evaluate → fence seq + 1 → applyCommit, as `runTenantPipeline` does it. A `stale`
 * load is rebuilt (from {@link truth}) when `rebuild` is set, else it fails the test.
 */
async function evaluate(store: ValkeyState, input: TenantInput, rebuild = false): Promise<Committed> {
  const tenantId = input.tenantId;
  const plan = planTenant(input);
  const fence = fenceOf(tenantId);
  const load = await store.loadTenantState(plan, fence);
  let snapshot: TenantSnapshot;
  let source: Committed["source"];
  if (load.kind === "stale" && rebuild) {
    snapshot = rebuildFromTruth(plan, fence);
    source = "rebuilt";
  } else if (load.kind === "state") {
    snapshot = load.snapshot;
    source = load.source;
  } else {
    throw new Error(`tenant ${tenantId}: unexpected load ${JSON.stringify(load)}`);
  }
  const now = input.now;
  const step = advanceTick(snapshot, plan, now);
  const evaluation = evaluateTenant({ ...input, state: step.state, plan });
  const current = fenceOf(tenantId);
  if (current.seq !== fence.seq) throw new Error(`tenant ${tenantId}: the fence refused the commit`);
  fences.set(tenantId, { seq: fence.seq + 1, evalMs: now });
  applyCommit(snapshot, evaluation.stateUpdates, now);
  snapshot.seq = fence.seq + 1;
  snapshot.at = now;
  truth.set(tenantId, structuredClone(snapshot));
  const delta: StateDelta | null =
    source === "rebuilt"
      ? null
      : { from: { seq: fence.seq, at: fence.evalMs }, writes: commitOps(evaluation.stateUpdates, now, step) };
  return { plan, snapshot, delta, evaluation, state: step.state, source };
}

interface TickResult extends Committed {
  readonly stored: StoreResult;
}

/** A whole tick of one tenant; its store must be applied. */
async function tick(store: ValkeyState, input: TenantInput, rebuild = false): Promise<TickResult> {
  const committed = await evaluate(store, input, rebuild);
  const stored = await store.storeTenantState(committed.plan, committed.snapshot, committed.delta);
  expect(stored).toMatchObject({ stored: true });
  return { ...committed, stored };
}

// --- The tenant ---------------------------------------------------------------------------------

const DEVICES = ["d1", "d2", "d3", "d4"];
const I_S = 60;

/** Every kind of state: cooldowns and lifecycles, window buffers, anomaly statistics, last-seen. */
function rules(t: string): Rule[] {
  return [
    thresholdRule({ tenant_id: t, id: "thr", device_id: null, threshold: 60, cooldown_seconds: 90 }),
    windowRule({
      tenant_id: t,
      id: "win",
      device_id: null,
      threshold: 50,
      min_count: 2,
      window_seconds: 300,
    }),
    anomalyRule({ tenant_id: t, id: "ano", device_id: null, params: { minSamples: 2 } }),
    patternRule({
      tenant_id: t,
      id: "abs",
      device_id: null,
      params: { kind: "absent" },
      window_seconds: 150,
    }),
  ];
}

/** Tick k of tenant t: two readings of d1–d3 a tick (d4 is silent until tick 5), bumpy values. */
function input(t: string, k: number): TenantInput {
  const readings: Reading[] = [];
  DEVICES.forEach((deviceId, i) => {
    if (deviceId === "d4" && k < 5) return;
    for (const back of [40, 10]) {
      const value = 40 + ((k * 17 + i * 11 + back) % 41);
      readings.push({ deviceId, metric: "temp", ts: T0 + (k * I_S - back) * 1000, value });
    }
  });
  return {
    tenantId: t,
    rules: rules(t),
    deviceIds: DEVICES,
    readingsByDeviceMetric: groupReadings(readings),
    now: T0 + k * I_S * 1000,
  };
}

const actions = (e: TenantEvaluation) => e.evaluations.map((x) => `${x.ruleId}/${x.deviceId}:${x.action}`);

/** A store that reads and writes at most `maxPairsPerCall` pairs (ops) a call. */
const sliced = (c: Redis = client(), options: ValkeyStateOptions = {}) =>
  new ValkeyState(c, { maxPairsPerCall: 3, ...options });

/** What a fresh evaluator loads for the tenant's fence, in one call (`maxPairsPerCall` default). */
async function loadFresh(t: string, k: number, options: ValkeyStateOptions = {}): Promise<TenantLoad> {
  return new ValkeyState(client(), options).loadTenantState(planTenant(input(t, k)), fenceOf(t));
}

/** The loaded snapshot (a `state` load), with the tenant-free parts compared across tenants. */
function snapshotOf(load: TenantLoad): TenantSnapshot {
  if (load.kind !== "state") throw new Error(`expected a state, got ${JSON.stringify(load)}`);
  return load.snapshot;
}

describe("a tenant's state in several calls (maxPairsPerCall)", () => {
  it("read in slices and written in chunks, it judges, stores and reads back what one call does", async () => {
    const t = newTenant();
    const ref = newTenant();
    expect(planTenant(input(t, 0)).pairs).toHaveLength(16);
    // No kept copy: every load reads, in 6 slices of at most 3 pairs.
    const split = sliced(client(), { keepState: false });
    const whole = new ValkeyState(client(), { keepState: false });
    const c = client();
    const all: string[] = [];
    for (let k = 0; k < 9; k++) {
      const before = split.calls;
      const a = await tick(split, input(t, k));
      const b = await tick(whole, input(ref, k));
      // The rules judged the same state, and decided the same.
      expect(a.state).toEqual(b.state);
      expect(actions(a.evaluation)).toEqual(actions(b.evaluation));
      all.push(...actions(a.evaluation));
      // The split really happened: 6 read slices, and a store of more than 3 ops in chunks.
      const ops = (a.delta?.writes.ops.length ?? 0) / 4;
      expect(split.calls - before).toBe(6 + Math.max(1, Math.ceil(ops / 3)));
      // Stored alike: the hash (its version included) and every window buffer.
      expect(await c.hgetall(tenantStateKey(t))).toEqual(await c.hgetall(tenantStateKey(ref)));
      for (const d of DEVICES) {
        for (const rule of ["win", "abs"]) {
          expect(await c.get(windowBufferKey(t, rule, d))).toBe(await c.get(windowBufferKey(ref, rule, d)));
        }
      }
      // Read back alike: in slices, and in one call, of either tenant.
      const slicedLoad = snapshotOf(await loadFresh(t, k + 1, { maxPairsPerCall: 3 }));
      expect(slicedLoad).toEqual(snapshotOf(await loadFresh(t, k + 1)));
      expect(slicedLoad).toEqual(snapshotOf(await loadFresh(ref, k + 1)));
    }
    // The sequence is only a meaningful comparison if every kind of state came into play.
    for (const kind of ["thr/d1:fire", "win/", ":resolve", "ano/", "abs/d4:fire"]) {
      expect(all.some((a) => a.includes(kind))).toBe(true);
    }
  });

  it("a slice of more than 250 pairs (the script reads hash fields 250 pairs at a time) gives each pair its own state", async () => {
    const t = newTenant();
    const devices = Array.from({ length: 700 }, (_, i) => `dev-${String(i).padStart(3, "0")}`);
    const rule = thresholdRule({
      tenant_id: t,
      id: "thr",
      device_id: null,
      threshold: 50,
      cooldown_seconds: 600,
    });
    const at = (k: number, firing: (i: number) => boolean): TenantInput => ({
      tenantId: t,
      rules: [rule],
      deviceIds: devices,
      readingsByDeviceMetric: groupReadings(
        devices.map((deviceId, i) => ({
          deviceId,
          metric: "temp",
          ts: T0 + (k * I_S - 5) * 1000,
          value: firing(i) ? 60 : 40,
        })),
      ),
      now: T0 + k * I_S * 1000,
    });
    // Every third device fires at tick 0, every seventh (of the others) at tick 1: two cooldown
    // ends, on a pattern a shifted index would break.
    const writer = new ValkeyState(client());
    await tick(
      writer,
      at(0, (i) => i % 3 === 0),
    );
    await tick(
      writer,
      at(1, (i) => i % 7 === 0),
    );
    const plan = planTenant(at(2, () => false));
    const expected = new Map<string, number>();
    devices.forEach((d, i) => {
      if (i % 3 === 0) expected.set(pairKey("thr", d), T0 + 600_000);
      else if (i % 7 === 0) expected.set(pairKey("thr", d), T0 + 660_000);
    });
    // Slices of 400 and 300 pairs: each read by the script in HMGETs of 250, 150 and 250, 50.
    for (const maxPairsPerCall of [400, 10_000]) {
      const load = await new ValkeyState(client(), { maxPairsPerCall }).loadTenantState(plan, fenceOf(t));
      const snapshot = snapshotOf(load);
      expect(snapshot.cooldownUntil).toEqual(expected);
      // Firing: the devices over the threshold at tick 1 (those of tick 0 alone resolved).
      expect([...snapshot.alerts.keys()].sort()).toEqual(
        devices.filter((_, i) => i % 7 === 0).map((d) => pairKey("thr", d)),
      );
      expect(snapshot.covered.size).toBe(700);
    }
  });

  it("a write landing between two read slices makes the read stale: no state mixes two evaluations", async () => {
    const t = newTenant();
    const between = interleaver();
    const reader = sliced(hookedClient(between.hook), { keepState: false });
    const writer = new ValkeyState(client());
    await tick(writer, input(t, 0));
    await tick(writer, input(t, 1));
    const plan = planTenant(input(t, 2));
    const fence = fenceOf(t);
    // Undisturbed, the slices make the state of the fence's evaluation.
    expect(snapshotOf(await reader.loadTenantState(plan, fence))).toEqual(snapshotOf(await loadFresh(t, 2)));

    // After the reader's first slice, another evaluator commits evaluation 3 and stores it: the
    // reader's later slices see its state, the first one the state of evaluation 2.
    between.arm("tenant_read", async () => {
      await tick(writer, input(t, 2));
    });
    const load = await reader.loadTenantState(plan, fence);
    expect(between.pending).toBe(false);
    expect(load).toEqual({ kind: "stale", stored: 2 });
    // Had the slices been merged as they came, pairs of evaluation 3 would be judged as evaluation 2's.
    expect(fenceOf(t).seq).toBe(3);
    expect(snapshotOf(await reader.loadTenantState(planTenant(input(t, 3)), fenceOf(t)))).toEqual(
      snapshotOf(await loadFresh(t, 3)),
    );
  });

  it("a read landing between two chunks of a write is stale, in slices or in one call", async () => {
    const t = newTenant();
    const between = interleaver();
    const writer = sliced(hookedClient(between.hook));
    await tick(writer, input(t, 0));
    const seen: TenantLoad[] = [];
    between.arm("tenant_write", async () => {
      // Evaluation 2 is committed, its state half written: neither it nor evaluation 1's is read.
      expect(await client().hget(tenantStateKey(t), "seq")).toBe(
        partialStateVersion(stateVersion(2, T0 + I_S * 1000)),
      );
      const plan = planTenant(input(t, 2));
      for (const options of [{ maxPairsPerCall: 3 }, {}]) {
        seen.push(await new ValkeyState(client(), options).loadTenantState(plan, fenceOf(t)));
        seen.push(await new ValkeyState(client(), options).loadTenantState(plan, { seq: 1, evalMs: T0 }));
      }
    });
    await tick(writer, input(t, 1));
    expect(seen).toEqual([
      { kind: "stale", stored: 2 },
      { kind: "stale", stored: 2 },
      { kind: "stale", stored: 2 },
      { kind: "stale", stored: 2 },
    ]);
    // Once its last chunk is in, the state is evaluation 2's.
    expect(snapshotOf(await loadFresh(t, 2, { maxPairsPerCall: 3 }))).toEqual(
      snapshotOf(await loadFresh(t, 2)),
    );
  });

  it("a write cut short after its first chunk (a crash) leaves a state no read uses, and the next full write replaces it", async () => {
    const t = newTenant();
    const ref = newTenant();
    let writesLeft = Number.POSITIVE_INFINITY;
    const crashing = hookedClient(async (script, send) => {
      if (script === "tenant_write" && writesLeft-- <= 0) throw new Error("evaluator killed (test)");
      return send();
    });
    const writer = sliced(crashing);
    const reference = new ValkeyState(client());
    for (let k = 0; k < 3; k++) {
      await tick(writer, input(t, k));
      await tick(reference, input(ref, k));
    }

    // Evaluation 4 is committed; its store runs its first chunk only.
    const cut = await evaluate(writer, input(t, 3));
    expect((cut.delta?.writes.ops.length ?? 0) / 4).toBeGreaterThan(3);
    writesLeft = 1;
    await expect(writer.storeTenantState(cut.plan, cut.snapshot, cut.delta)).rejects.toThrow("killed");
    const c = client();
    expect(await c.hget(tenantStateKey(t), "seq")).toBe(
      partialStateVersion(stateVersion(4, T0 + 3 * I_S * 1000)),
    );
    const judged = await tick(reference, input(ref, 3));
    expect(cut.state).toEqual(judged.state);

    // No read takes it: not as evaluation 4's (the fence's), nor as evaluation 3's.
    for (const options of [{ maxPairsPerCall: 3 }, {}]) {
      expect(await loadFresh(t, 4, options)).toEqual({ kind: "stale", stored: 4 });
      const plan = planTenant(input(t, 4));
      expect(
        await new ValkeyState(client(), options).loadTenantState(plan, {
          seq: 3,
          evalMs: T0 + 2 * I_S * 1000,
        }),
      ).toEqual({ kind: "stale", stored: 4 });
    }

    // The next evaluator (the writer is gone) rebuilds from PostgreSQL, and its full write, in
    // chunks, replaces the half-written state: every later tick judges what the reference judges.
    const next = sliced();
    const rebuilt = await tick(next, input(t, 4), true);
    expect(rebuilt).toMatchObject({ source: "rebuilt", stored: { stored: true, full: true } });
    const expected = await tick(reference, input(ref, 4));
    expect(rebuilt.state).toEqual(expected.state);
    expect(actions(rebuilt.evaluation)).toEqual(actions(expected.evaluation));
    expect(await c.hget(tenantStateKey(t), "seq")).toBe(stateVersion(5, T0 + 4 * I_S * 1000));
    expect(snapshotOf(await loadFresh(t, 5, { maxPairsPerCall: 3 }))).toEqual(
      snapshotOf(await loadFresh(ref, 5)),
    );
    for (let k = 5; k < 8; k++) {
      // A reader without a copy each time: what it reads is what Valkey holds.
      const a = await tick(sliced(client(), { keepState: false }), input(t, k));
      const b = await tick(reference, input(ref, k));
      expect(a.source).toBe("valkey");
      expect(a.state).toEqual(b.state);
      expect(actions(a.evaluation)).toEqual(actions(b.evaluation));
    }
  });

  it("a newer write landing between two chunks of a write wins: the later chunks are refused", async () => {
    const t = newTenant();
    const ref = newTenant();
    const between = interleaver();
    const late = sliced(hookedClient(between.hook));
    const reference = new ValkeyState(client());
    for (let k = 0; k < 2; k++) {
      await tick(late, input(t, k));
      await tick(reference, input(ref, k));
    }

    // Evaluation 3 is committed; after the first chunk of its store, the tenant's new evaluator
    // finds a half-written state, rebuilds from PostgreSQL, commits evaluation 4 and stores it whole.
    const committed = await evaluate(late, input(t, 2));
    expect((committed.delta?.writes.ops.length ?? 0) / 4).toBeGreaterThan(3);
    const other = sliced();
    between.arm("tenant_write", async () => {
      const newer = await tick(other, input(t, 3), true);
      expect(newer).toMatchObject({ source: "rebuilt", stored: { stored: true, full: true } });
    });
    expect(await late.storeTenantState(committed.plan, committed.snapshot, committed.delta)).toEqual({
      stored: false,
      newer: 4,
    });
    expect(between.pending).toBe(false);
    expect(await client().hget(tenantStateKey(t), "seq")).toBe(stateVersion(4, T0 + 3 * I_S * 1000));

    await tick(reference, input(ref, 2));
    await tick(reference, input(ref, 3));
    // Valkey holds evaluation 4's state, nothing of the late store's refused chunks.
    expect(snapshotOf(await loadFresh(t, 4))).toEqual(snapshotOf(await loadFresh(ref, 4)));
    // The late evaluator kept nothing: its next tick reads evaluation 4's state from Valkey.
    const a = await tick(late, input(t, 4));
    const b = await tick(reference, input(ref, 4));
    expect(a.source).toBe("valkey");
    expect(a.state).toEqual(b.state);
    expect(actions(a.evaluation)).toEqual(actions(b.evaluation));
  });
});
