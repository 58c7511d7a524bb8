/**
 * The Grafana dashboard (monitoring/dashboards/evaluator-operator.json), checked statically: the
 * chart ships it byte for byte, it picks its Prometheus in a `datasource` variable and the shard set
 * in `namespace` and `shardset` variables, and every query of a set's panel is scoped to that set.
 * That every query returns data from the real system is checked by test/e2e/autoscale.test.ts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  allPanels,
  DASHBOARD_FILE,
  dashboardQueries,
  loadDashboard,
  substitute,
  variableQueries,
} from "../support/dashboard.ts";

const repo = join(import.meta.dirname, "..", "..");
const dashboard = loadDashboard();
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

describe("the Grafana dashboard", () => {
  it("is shipped by the chart as it is (update the copy with hack/sync-chart.sh)", () => {
    const copy = readFileSync(
      join(repo, "helm", "evaluator-operator", "dashboards", "evaluator-operator.json"),
    );
    expect(
      copy.equals(readFileSync(DASHBOARD_FILE)),
      "helm/evaluator-operator/dashboards/evaluator-operator.json differs from monitoring/dashboards/: run hack/sync-chart.sh",
    ).toBe(true);
  });

  it("has a recent schema, a stable uid, and datasource, namespace and shardset variables", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe("evaluator-operator-shardset");
    const vars = dashboard.templating.list;
    expect(vars.map((v) => v.name)).toEqual(["datasource", "namespace", "shardset"]);
    expect(vars[0]).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const v of vars.slice(1)) expect(v.datasource).toEqual(DATASOURCE);
    expect(variableQueries(dashboard)).toEqual([
      { name: "namespace", selector: "evaluator_shard_set_shards", label: "namespace" },
      { name: "shardset", selector: 'evaluator_shard_set_shards{namespace="$namespace"}', label: "shardset" },
    ]);
  });

  it("queries the chosen Prometheus from every panel and annotation, with unique ids and refIds", () => {
    const panels = allPanels(dashboard);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels.filter((q) => q.type !== "row")) {
      expect(p.datasource, p.title).toEqual(DATASOURCE);
      expect(p.description, p.title).toBeTruthy();
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.datasource, `${p.title} ${t.refId}`).toEqual(DATASOURCE);
        expect(t.legendFormat, `${p.title} ${t.refId}`).toBeTruthy();
      }
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
    }
    for (const a of dashboard.annotations.list.filter((x) => x.expr !== undefined)) {
      expect(a.datasource, a.name).toEqual(DATASOURCE);
    }
  });

  it("scopes every query of the set's metrics to $namespace and $shardset", () => {
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(20);
    for (const q of queries) {
      // Every selector of an evaluator or per-set operator metric carries both variables; only the
      // operator-wide metrics (controller-runtime's names) have no set labels.
      for (const m of q.expr.matchAll(/\b(evaluator_[a-z_]+)(\{[^}]*\})?/g)) {
        expect(m[2] ?? "", `${q.where}: ${m[1]}`).toContain('namespace="$namespace",shardset="$shardset"');
      }
    }
  });

  it("is made concrete for one set: the variables and interval placeholders replaced", () => {
    for (const q of dashboardQueries(dashboard)) {
      const expr = substitute(q.expr, { namespace: "iot", shardset: "alerts", range: "30s" });
      expect(expr, q.where).not.toContain("$");
    }
    expect(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
      substitute('rate(x{namespace="$namespace",shardset="${shardset}"}[$__rate_interval])', {
        namespace: "iot",
        shardset: "alerts",
      }),
    ).toBe('rate(x{namespace="iot",shardset="alerts"}[1m])');
  });
});
