import {
  ANOMALY_DIRECTIONS,
  type AnomalyDirection,
  type Escalation,
  OPERATORS,
  type Operator,
  PATTERN_KINDS,
  type PatternKind,
  RULE_TYPES,
  type Rule,
  type RuleType,
  SEVERITIES,
  type Severity,
} from "./types.ts";

/** Outcome of `parseRule`: a rule, or why the row is quarantined (with its id when one was readable). */
export type ParseRuleResult =
  | { readonly ok: true; readonly rule: Rule }
  | { readonly ok: false; readonly id: string | null; readonly reason: string };

/** Longest accepted window (31 days): buffers live 2× the window, so this bounds their lifetime. */
const MAX_WINDOW_SECONDS = 31 * 24 * 3600;
/** Largest accepted window buffer (`params.maxReadings`, `params.lastN`, rising `min_count` + 1). */
const MAX_BUFFER_READINGS = 100_000;
/** Default memory bound of a window buffer (`params.maxReadings`). */
export const DEFAULT_MAX_READINGS = 1000;

/** Thrown inside the parser only; turned into `{ ok: false }` at the boundary. */
class RuleRowError extends Error {}

function fail(message: string): never {
  throw new RuleRowError(message);
}

type Row = Readonly<Record<string, unknown>>;

/** A field by its column name, or by its camelCase name when the row was already mapped. */
function field(row: Row, column: string): unknown {
  if (column in row) return row[column];
  const camel = column.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return row[camel];
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "object" && value !== null) return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}

/** pg returns int8/numeric columns as strings; accept those, reject everything else that is not a number. */
function toNumber(name: string, value: unknown): number {
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "bigint") n = Number(value);
  else if (typeof value === "string" && value.trim() !== "") n = Number(value);
  else fail(`${name}: expected a number, got ${describe(value)}`);
  if (!Number.isFinite(n)) fail(`${name}: must be a finite number, got ${describe(value)}`);
  return n;
}

function optionalNumber(name: string, value: unknown): number | null {
  return value === null || value === undefined ? null : toNumber(name, value);
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  const n = toNumber(name, value);
  if (!Number.isInteger(n) || n < min || n > max) {
    fail(`${name}: must be an integer in [${min}, ${max}], got ${describe(value)}`);
  }
  return n;
}

function optionalIntegerIn(name: string, value: unknown, min: number, max: number): number | null {
  return value === null || value === undefined ? null : integerIn(name, value, min, max);
}

function identifier(name: string, value: unknown): string {
  if (typeof value === "string" && value.trim() !== "") return value;
  // Integer ids (serial/bigint columns) are fine; they become strings.
  if ((typeof value === "number" && Number.isSafeInteger(value)) || typeof value === "bigint") {
    return String(value);
  }
  fail(`${name}: expected a non-empty string, got ${describe(value)}`);
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  fail(`${name}: expected one of ${allowed.join(", ")}, got ${describe(value)}`);
}

/** A jsonb column arrives parsed; a json/text column arrives as a string. */
function jsonObject(name: string, value: unknown): Row | null {
  if (value === null || value === undefined) return null;
  let parsed: unknown = value;
  if (typeof value === "string") {
    if (value.trim() === "") return null;
    try {
      parsed = JSON.parse(value);
    } catch {
      fail(`${name}: not valid JSON`);
    }
  }
  if (parsed === null) return null;
  if (typeof parsed !== "object" || Array.isArray(parsed)) fail(`${name}: expected a JSON object`);
  return parsed as Row;
}

function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

function parseEscalation(value: unknown, base: Severity): Escalation | null {
  const obj = jsonObject("escalation", value);
  if (obj === null) return null;
  // The schema allows any positive number of seconds here, not only integers.
  const afterSeconds = toNumber("escalation.after_seconds", field(obj, "after_seconds"));
  if (afterSeconds <= 0) fail("escalation.after_seconds: must be positive");
  const severity = oneOf("escalation.severity", obj["severity"], SEVERITIES);
  // An escalation that does not raise the severity would never be visible: a configuration mistake.
  if (severityRank(severity) <= severityRank(base)) {
    fail(`escalation.severity: must rank above the rule's severity ${JSON.stringify(base)}`);
  }
  return { afterSeconds, severity };
}

function parseRow(row: Row): Rule {
  const id = identifier("id", field(row, "id"));
  const tenantId = identifier("tenant_id", field(row, "tenant_id"));
  const rawDevice = field(row, "device_id");
  const deviceId = rawDevice === null || rawDevice === undefined ? null : identifier("device_id", rawDevice);
  const metric = identifier("metric", field(row, "metric"));
  const type: RuleType = oneOf("rule_type", field(row, "rule_type") ?? row["type"], RULE_TYPES);
  const rawOperator = field(row, "operator");
  const operator: Operator | null =
    rawOperator === null || rawOperator === undefined ? null : oneOf("operator", rawOperator, OPERATORS);
  // A non-finite threshold is a data error even on rule types that do not compare against it.
  const threshold = optionalNumber("threshold", field(row, "threshold"));
  const windowSeconds = optionalIntegerIn(
    "window_seconds",
    field(row, "window_seconds"),
    1,
    MAX_WINDOW_SECONDS,
  );
  const minCount = optionalIntegerIn("min_count", field(row, "min_count"), 1, MAX_BUFFER_READINGS) ?? 1;
  const cooldownSeconds =
    optionalIntegerIn("cooldown_seconds", field(row, "cooldown_seconds"), 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const severity = oneOf("severity", field(row, "severity"), SEVERITIES);
  const escalation = parseEscalation(field(row, "escalation"), severity);
  const params = jsonObject("params", field(row, "params")) ?? {};
  const base = { id, tenantId, deviceId, metric, minCount, cooldownSeconds, severity, escalation };

  switch (type) {
    case "threshold": {
      if (operator === null) fail("operator: required for threshold rules");
      if (threshold === null) fail("threshold: required for threshold rules");
      return { ...base, type, operator, threshold, windowSeconds, params: {} };
    }
    case "window": {
      if (operator === null) fail("operator: required for window rules");
      if (threshold === null) fail("threshold: required for window rules");
      if (windowSeconds === null) fail("window_seconds: required for window rules");
      const lastN = optionalIntegerIn("params.lastN", params["lastN"], 1, MAX_BUFFER_READINGS);
      if (lastN !== null && minCount > lastN) {
        fail(`min_count: ${minCount} can never be reached among the last ${lastN} readings`);
      }
      const maxReadings =
        optionalIntegerIn("params.maxReadings", params["maxReadings"], 1, MAX_BUFFER_READINGS) ??
        Math.max(DEFAULT_MAX_READINGS, minCount, lastN ?? 0);
      if (maxReadings < minCount || maxReadings < (lastN ?? 0)) {
        fail("params.maxReadings: must be at least min_count and params.lastN");
      }
      return {
        ...base,
        type,
        operator,
        threshold,
        windowSeconds,
        params: { lastN, maxReadings: lastN ?? maxReadings },
      };
    }
    case "anomaly": {
      const k = optionalNumber("params.k", params["k"]) ?? 3;
      if (k <= 0) fail("params.k: must be positive");
      const minSamples = optionalIntegerIn("params.minSamples", params["minSamples"], 2, 1_000_000) ?? 10;
      const span =
        optionalIntegerIn("params.span", params["span"], 2, 1_000_000) ?? Math.max(100, minSamples);
      const minStddev = optionalNumber("params.minStddev", params["minStddev"]) ?? 0;
      if (minStddev < 0) fail("params.minStddev: must not be negative");
      const direction: AnomalyDirection =
        params["direction"] === undefined
          ? "both"
          : oneOf("params.direction", params["direction"], ANOMALY_DIRECTIONS);
      return {
        ...base,
        type,
        operator,
        threshold,
        windowSeconds,
        params: { k, minSamples, span, minStddev, direction },
      };
    }
    case "pattern": {
      const kind: PatternKind = oneOf("params.kind", params["kind"], PATTERN_KINDS);
      if (windowSeconds === null) fail(`window_seconds: required for ${kind} pattern rules`);
      if (kind === "rising" && minCount + 1 > MAX_BUFFER_READINGS)
        fail("min_count: too many consecutive rises");
      return { ...base, type, operator, threshold, windowSeconds, params: { kind } };
    }
  }
}

/**
 * Validates one raw `alert_rules` row (snake_case columns as pg returns them; camelCase keys are
 * accepted too) into a typed {@link Rule}, applying parameter defaults. Never throws: a malformed
 * row — unparsable `params`/`escalation` JSON, a NaN or infinite threshold, an unknown type,
 * operator or severity, a window rule without `window_seconds`, an unreachable `min_count` — comes
 * back as `{ ok: false, reason }` so the caller quarantines that rule alone and evaluates the rest.
 *
 * Whether the rule is `enabled` is not checked here: the query that loads rules filters on it.
 */
export function parseRule(row: unknown): ParseRuleResult {
  if (typeof row !== "object" || row === null || Array.isArray(row)) {
    return { ok: false, id: null, reason: "row: expected an object" };
  }
  const r = row as Row;
  try {
    return { ok: true, rule: parseRow(r) };
  } catch (err) {
    if (!(err instanceof RuleRowError)) throw err;
    let id: string | null = null;
    const rawId = field(r, "id");
    if (typeof rawId === "string" || typeof rawId === "number" || typeof rawId === "bigint")
      id = String(rawId);
    return { ok: false, id, reason: err.message };
  }
}
