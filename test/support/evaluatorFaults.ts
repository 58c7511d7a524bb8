/**
 * The evaluator's test faults, read from the environment of a test entry point
 * (test/support/evaluatorWithFaults.ts) and turned into {@link EvaluatorFaults} hooks. The
 * product's entry point reads none of these variables:
 * - `EVALUATOR_TEST_DELAY_TENANT=<tenant id>:<ms>[,<tenant id>:<ms>…]`: a matching tenant's
 *   evaluation waits `ms` first (a slow tenant, to exceed the per-tenant budget). A tenant id
 *   ending in `*` matches by prefix (`slow-*:60000`); the first matching entry wins;
 * - `EVALUATOR_TEST_POISON_RULE=<rule id>`: evaluating a tenant that has this rule throws (a rule
 *   whose evaluation crashes).
 * Both strike where the pipeline calls `beforeEvaluate`: after the state load and the tick lease,
 * before the budget check, like a real slow or crashing evaluation.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../evaluator/src/config/evaluatorConfig.ts";
import { sleep } from "../../evaluator/src/tick/clock.ts";
import type { EvaluatorFaults } from "../../evaluator/src/tick/evaluatorFaults.ts";
import type { Clock } from "../../runtime/clock.ts";

export const DELAY_TENANT_ENV = "EVALUATOR_TEST_DELAY_TENANT";
export const POISON_RULE_ENV = "EVALUATOR_TEST_POISON_RULE";
export const CLOCK_SKEW_DIR_ENV = "EVALUATOR_TEST_CLOCK_SKEW_DIR";

/**
 * `EVALUATOR_TEST_CLOCK_SKEW_DIR=<dir>`: when `<dir>/shard-<SHARD_INDEX>` exists at start, it holds
 * a number of milliseconds this process's clock runs ahead (negative: behind). The chaos run writes
 * it, then restarts the shard's process, to skew one process's clock. 0 when unset or absent.
 */
export function clockSkewMs(env: Readonly<Record<string, string | undefined>>): number {
  const dir = env[CLOCK_SKEW_DIR_ENV]?.trim();
  const shard = env["SHARD_INDEX"]?.trim();
  if (!dir || !shard) return 0;
  let raw: string;
  try {
    raw = readFileSync(join(dir, `shard-${shard}`), "utf8").trim();
  } catch {
    return 0;
  }
  const ms = Number(raw);
  if (!Number.isFinite(ms))
    throw new ConfigError(`${CLOCK_SKEW_DIR_ENV}: shard-${shard} holds "${raw}", not a number of ms`);
  return ms;
}

/** `clock` running `skewMs` ahead (its timers are unchanged: only the time it reads is off). */
export function skewedClock(clock: Clock, skewMs: number): Clock {
  return { ...clock, now: () => clock.now() + skewMs };
}

/** One entry of {@link DELAY_TENANT_ENV}. */
export interface TenantDelay {
  /** The tenant id, or its prefix when `prefix`. */
  readonly tenant: string;
  readonly prefix: boolean;
  readonly ms: number;
}

/** The faults the environment asks for. */
export interface EvaluatorFaultSpec {
  readonly delays: readonly TenantDelay[];
  readonly poisonRuleId: string | null;
}

function parseDelay(entry: string, raw: string): TenantDelay {
  const bad = (problem: string): never => {
    throw new ConfigError(
      `${DELAY_TENANT_ENV}: ${problem} in entry "${entry}" of "${raw}" ` +
        "(expected a comma-separated list of <tenant id>:<ms>; a tenant id ending in * matches by prefix)",
    );
  };
  // The last colon: a tenant id may itself contain colons.
  const i = entry.lastIndexOf(":");
  if (i < 0) bad("no :<ms>");
  const id = entry.slice(0, i);
  const msText = entry.slice(i + 1);
  if (!/^\d+$/.test(msText) || !Number.isSafeInteger(Number(msText)))
    bad(`"${msText}" is not a number of ms`);
  if (id === "") bad("no tenant id");
  const prefix = id.endsWith("*");
  const tenant = prefix ? id.slice(0, -1) : id;
  // Only a trailing * is a wildcard; one elsewhere is more likely a mistake than a tenant id.
  if (tenant.includes("*")) bad("a * is only allowed at the end of the tenant id");
  return { tenant, prefix, ms: Number(msText) };
}

/**
 * Reads the test faults from `env`; `null` when no fault variable is set (then the evaluator gets
 * no hooks at all). Blank variables count as unset.
 *
 * @throws ConfigError naming the variable, for a malformed value
 */
export function parseEvaluatorFaults(
  env: Readonly<Record<string, string | undefined>>,
): EvaluatorFaultSpec | null {
  const delayRaw = env[DELAY_TENANT_ENV]?.trim() ?? "";
  const poisonRuleId = env[POISON_RULE_ENV]?.trim() || null;
  if (delayRaw === "" && poisonRuleId === null) return null;
  const delays = delayRaw === "" ? [] : delayRaw.split(",").map((e) => parseDelay(e.trim(), delayRaw));
  return { delays, poisonRuleId };
}

/** The delay of `tenantId`: the first entry that matches it, or `null`. */
export function delayOf(spec: EvaluatorFaultSpec, tenantId: string): number | null {
  const match = spec.delays.find((d) => (d.prefix ? tenantId.startsWith(d.tenant) : tenantId === d.tenant));
  return match?.ms ?? null;
}

/** The hooks of `spec`; delays wait on `clock` and end early (rejecting) when the budget aborts. */
export function createEvaluatorFaults(spec: EvaluatorFaultSpec, clock: Clock): EvaluatorFaults {
  return {
    async beforeEvaluate({ tenantId, rules }, signal) {
      const ms = delayOf(spec, tenantId);
      if (ms !== null) await sleep(clock, ms, signal);
      if (spec.poisonRuleId !== null && rules.some((r) => r.id === spec.poisonRuleId)) {
        throw new Error(`test fault: rule ${spec.poisonRuleId} is poisoned`);
      }
    },
  };
}
