import type { Redis } from "ioredis";
import { INACTIVE } from "../evaluator/src/rules/lifecycle.ts";
import type { PairState, TenantPlan, TenantState } from "../evaluator/src/rules/planTenant.ts";
import type { WindowEntry } from "../evaluator/src/rules/types.ts";
import { appendToWindow } from "../evaluator/src/rules/window.ts";
import { baselineWindowKey } from "../evaluator/src/state/keys.ts";
import { windowBufferTtlMs } from "../evaluator/src/state/retention.ts";

/** The window-buffer half of a tenant load, done the original way. */
export interface BaselineWindowStore {
  /**
   * For every windowed pair of the plan, one after the other: GET the JSON buffer, parse it, push
   * this tick's readings, trim to the window, stringify, SET it back with PX — two round trips per
   * (rule, device). Returns a state holding only the buffers (no cooldown, anomaly, lifecycle),
   * comparable with `ValkeyState.loadTenantState` for window and rising rules.
   */
  loadTenantState(plan: TenantPlan): Promise<TenantState>;
}

function parseBuffer(raw: string | null): WindowEntry[] {
  if (raw === null) return [];
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((e: unknown) =>
      Array.isArray(e) && typeof e[0] === "number" && typeof e[1] === "number"
        ? [{ ts: e[0], value: e[1] }]
        : [],
    );
  } catch {
    return [];
  }
}

/**
 * BENCHMARK BASELINE ONLY — never used by the evaluator. It stores window buffers the way the
 * original design did: a JSON string per (rule, device) under `wbufjson:{tenant}:rule:device`,
 * read-modify-written with GET → JSON.parse → push → JSON.stringify → SET, i.e. two round trips per
 * (rule, device) pair per tick instead of one per tenant, and not atomic (two writers lose updates;
 * a retried tick appends the same reading twice). It exists so the benchmark can measure the Lua
 * path (`ValkeyState.loadTenantState`) against it with identical window semantics (same trim and
 * TTL), which the integration tests check by comparing fire decisions.
 */
export function baselineWindowStore(client: Redis): BaselineWindowStore {
  return {
    async loadTenantState(plan) {
      const pairs = new Map<string, PairState>();
      for (const pair of plan.pairs) {
        if (!pair.window) continue;
        const key = baselineWindowKey(plan.tenantId, pair.rule.id, pair.deviceId);
        const stored = parseBuffer(await client.get(key));
        const buffer = appendToWindow(stored, pair.readings, plan.now, pair.window);
        await client.set(
          key,
          JSON.stringify(buffer.map((e) => [e.ts, e.value])),
          "PX",
          windowBufferTtlMs(pair.window.windowMs),
        );
        pairs.set(pair.key, {
          buffer,
          cooldownRemainingMs: 0,
          anomaly: null,
          lastSeen: null,
          alert: INACTIVE,
        });
      }
      return { pairs };
    },
  };
}
