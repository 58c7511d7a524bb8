/**
 * The Grafana dashboard (monitoring/dashboards/evaluator-operator.json) as the tests read it: every
 * PromQL query it holds (panel targets, annotations, template variables), with Grafana's variables
 * replaced the way Grafana would for one shard set, and a check that runs each one against a real
 * Prometheus and names the panel of every query that errors or returns nothing.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The dashboard's file in the repository (the chart carries a copy of it). */
export const DASHBOARD_FILE = join(repo, "monitoring", "dashboards", "evaluator-operator.json");

export interface DashboardTarget {
  readonly refId?: string;
  readonly expr?: string;
  readonly legendFormat?: string;
  readonly datasource?: { readonly type?: string; readonly uid?: string };
}

export interface DashboardPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly gridPos?: { readonly h: number; readonly w: number; readonly x: number; readonly y: number };
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly targets?: readonly DashboardTarget[];
  /** The panels of a collapsed row. */
  readonly panels?: readonly DashboardPanel[];
}

export interface DashboardVariable {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { readonly query?: string };
  readonly datasource?: { readonly type?: string; readonly uid?: string };
}

export interface Dashboard {
  readonly title: string;
  readonly uid: string;
  readonly schemaVersion: number;
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: readonly DashboardVariable[] };
  readonly annotations: {
    readonly list: readonly {
      readonly name: string;
      readonly expr?: string;
      readonly datasource?: { readonly type?: string; readonly uid?: string };
    }[];
  };
}

export function loadDashboard(file = DASHBOARD_FILE): Dashboard {
  return JSON.parse(readFileSync(file, "utf8")) as Dashboard;
}

/** Every panel, those inside collapsed rows too, in the dashboard's order. */
export function allPanels(d: Dashboard): DashboardPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** One PromQL query of the dashboard and where it sits, for a failure message that names it. */
export interface DashboardQuery {
  /** `panel "<title>" (<refId>)` or `annotation "<name>"`. */
  readonly where: string;
  readonly expr: string;
}

/** The queries of the panels' targets and of the annotations (template variables: `variableQueries`). */
export function dashboardQueries(d: Dashboard): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (t.expr !== undefined) queries.push({ where: `panel "${p.title}" (${t.refId})`, expr: t.expr });
    }
  }
  for (const a of d.annotations.list) {
    if (a.expr !== undefined) queries.push({ where: `annotation "${a.name}"`, expr: a.expr });
  }
  return queries;
}

/** A `label_values(selector, label)` template variable. */
export interface VariableQuery {
  readonly name: string;
  readonly selector: string;
  readonly label: string;
}

/** The dashboard's query variables, each a `label_values(selector, label)`. */
export function variableQueries(d: Dashboard): VariableQuery[] {
  return d.templating.list
    .filter((v) => v.type === "query")
    .map((v) => {
      const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
      const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(q.trim());
      if (!m) throw new Error(`variable ${v.name}: not a label_values(selector, label) query: ${q}`);
      return { name: v.name, selector: m[1]!.trim(), label: m[2]! };
    });
}

/**
 * `expr` with Grafana's variables replaced for one shard set: `$namespace` and `$shardset` (also
 * `${…}`), and the interval variables by a fixed range.
 */
export function substitute(
  expr: string,
  values: { readonly namespace: string; readonly shardset: string; readonly range?: string },
): string {
  const range = values.range ?? "1m";
  return expr
    .replace(/\$\{?__rate_interval\}?/g, range)
    .replace(/\$\{?__interval\}?/g, range)
    .replace(/\$\{?__range\}?/g, range)
    .replace(/\$\{?namespace\}?/g, values.namespace)
    .replace(/\$\{?shardset\}?/g, values.shardset);
}

interface PromResponse {
  status: "success" | "error";
  error?: string;
  data?: { result?: { values?: [number, string][] }[] } | string[];
}

async function prom(url: URL): Promise<PromResponse> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as PromResponse;
}

/**
 * Runs every query of the dashboard against `prometheusUrl` over [fromMs, toMs] for one shard set,
 * as range queries (what a Grafana panel sends), and every template variable as the label-values
 * request Grafana makes. Resolves with one line per query that failed (an error, no series, or no
 * finite sample) or variable that did not offer the set's value; empty when every one has data.
 */
export async function checkDashboardQueries(
  d: Dashboard,
  prometheusUrl: string,
  opts: {
    readonly namespace: string;
    readonly shardset: string;
    readonly fromMs: number;
    readonly toMs: number;
    readonly stepSeconds?: number;
    readonly range?: string;
  },
): Promise<string[]> {
  const failures: string[] = [];
  for (const q of dashboardQueries(d)) {
    const expr = substitute(q.expr, opts);
    const url = new URL("/api/v1/query_range", prometheusUrl);
    url.searchParams.set("query", expr);
    url.searchParams.set("start", String(opts.fromMs / 1000));
    url.searchParams.set("end", String(opts.toMs / 1000));
    url.searchParams.set("step", String(opts.stepSeconds ?? 5));
    try {
      const body = await prom(url);
      if (body.status !== "success") {
        failures.push(`${q.where}: error ${body.error}: ${expr}`);
        continue;
      }
      const series = (body.data as { result?: { values?: [number, string][] }[] }).result ?? [];
      const finite = series.some((s) => (s.values ?? []).some(([, v]) => Number.isFinite(Number(v))));
      if (!finite) failures.push(`${q.where}: no data (${series.length} series): ${expr}`);
    } catch (err) {
      failures.push(`${q.where}: ${String(err)}: ${expr}`);
    }
  }
  const expected: Record<string, string> = { namespace: opts.namespace, shardset: opts.shardset };
  for (const v of variableQueries(d)) {
    const selector = substitute(v.selector, opts);
    const url = new URL(`/api/v1/label/${v.label}/values`, prometheusUrl);
    url.searchParams.set("match[]", selector);
    url.searchParams.set("start", String(opts.fromMs / 1000));
    url.searchParams.set("end", String(opts.toMs / 1000));
    try {
      const body = await prom(url);
      const values = (body.data as string[] | undefined) ?? [];
      const want = expected[v.name];
      if (body.status !== "success") failures.push(`variable ${v.name}: error ${body.error}: ${selector}`);
      else if (want !== undefined && !values.includes(want)) {
        failures.push(`variable ${v.name}: ${want} not among ${JSON.stringify(values)}: ${selector}`);
      }
    } catch (err) {
      failures.push(`variable ${v.name}: ${String(err)}: ${selector}`);
    }
  }
  return failures;
}
