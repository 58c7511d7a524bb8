/**
 * The alerting rules (monitoring/alerts.rules.yaml): `promtool check rules` passes, the promtool
 * unit tests of monitoring/tests/ pass, and they show every alert both firing and silent; every
 * alert has a severity, a summary, a description and a runbook in docs/runbooks.md; every metric
 * the expressions read is one the operator, the evaluator or the relay registers; the chart ships
 * the file byte for byte (test/e2e/helm.test.ts checks that it renders the same groups).
 * Needs only the promtool binary of the toolchain (hack/toolchain.sh), or $PROMTOOL.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { promtoolPath } from "../support/evaluatorProcess.ts";
import { runPromtool } from "../support/promtool.ts";

const repo = join(import.meta.dirname, "..", "..");
const RULES_FILE = join(repo, "monitoring", "alerts.rules.yaml");
const TESTS_DIR = join(repo, "monitoring", "tests");
const RUNBOOKS_FILE = join(repo, "docs", "runbooks.md");
/** The files that register every metric a rule may read. */
const METRIC_SOURCES = [
  "operator/src/metrics.ts",
  "evaluator/src/metrics.ts",
  "operator/src/events/relayMetrics.ts",
];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; rules: Rule[] }[];
}
interface TestFile {
  rule_files: string[];
  tests: {
    name?: string;
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: unknown[] | null }[];
  }[];
}

const rulesText = readFileSync(RULES_FILE, "utf8");
const alerts = k8s
  .loadYaml<RulesFile>(rulesText)
  .groups.flatMap((g) => g.rules)
  .filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => join(TESTS_DIR, f));
const cases = testFiles.flatMap((f) =>
  k8s.loadYaml<TestFile>(readFileSync(f, "utf8")).tests.flatMap((t) => t.alert_rule_test ?? []),
);

describe("the alerting rules", () => {
  it("pass promtool check rules and the promtool unit tests of monitoring/tests/", async () => {
    expect(
      existsSync(promtoolPath()),
      `promtool not found at ${promtoolPath()} (run hack/toolchain.sh)`,
    ).toBe(true);
    const check = await runPromtool(["check", "rules", RULES_FILE]);
    expect(check.code, check.output).toBe(0);
    expect(check.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    const tests = await runPromtool(["test", "rules", ...testFiles]);
    expect(tests.code, tests.output).toBe(0);
  });

  it("each have a test that fires them and one that shows them silent, and every test names an alert", () => {
    expect(alerts.length).toBeGreaterThan(0);
    const names = alerts.map((a) => a.alert);
    expect(new Set(names).size, "alert names are unique").toBe(names.length);
    for (const name of names) {
      const mine = cases.filter((c) => c.alertname === name);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${name}: no test in monitoring/tests/ expects it to fire`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${name}: no test in monitoring/tests/ expects it to stay silent`,
      ).toBe(true);
    }
    for (const c of cases)
      expect(names, `a test names an unknown alert at ${c.eval_time}`).toContain(c.alertname);
  });

  it("each carry a severity, a summary, a description and the anchor of their runbook", () => {
    const runbooks = readFileSync(RUNBOOKS_FILE, "utf8");
    const sections = [...runbooks.matchAll(/^## (\w+)$/gm)].map((m) => m[1]!);
    for (const a of alerts) {
      expect(["warning", "critical"], `${a.alert}: severity`).toContain(a.labels?.["severity"]);
      expect(a.for, `${a.alert}: a for duration`).toMatch(/^\d+[smh]$/);
      expect(a.annotations?.["summary"], `${a.alert}: summary`).toBeTruthy();
      expect(a.annotations?.["description"], `${a.alert}: description`).toBeTruthy();
      // GitHub's anchor of the heading "## <Alert>" is the name in lower case.
      expect(a.annotations?.["runbook_url"], `${a.alert}: runbook_url`).toBe(
        `docs/runbooks.md#${a.alert.toLowerCase()}`,
      );
      expect(sections, `docs/runbooks.md has no section "## ${a.alert}"`).toContain(a.alert);
    }
    // And no runbook of an alert that no longer exists.
    const names = alerts.map((a) => a.alert);
    for (const s of sections.filter((h) => /^[A-Z][a-z]+[A-Z]/.test(h))) expect(names).toContain(s);
  });

  it("read only metrics that the operator, the evaluator or the relay registers", () => {
    const registered = new Set(
      METRIC_SOURCES.flatMap((f) =>
        [...readFileSync(join(repo, f), "utf8").matchAll(/"([a-z_][a-z0-9_]*)"/g)].map((m) => m[1]!),
      ),
    );
    // `up` is Prometheus' own series of each target.
    registered.add("up");
    for (const a of alerts) {
      const used = [
        ...a.expr.matchAll(/\b(up|leader_election_[a-z_]+|evaluator_[a-z0-9_]+|alert_events_[a-z0-9_]+)\b/g),
      ];
      expect(used.length, `${a.alert}: reads no metric`).toBeGreaterThan(0);
      for (const [, metric] of used) {
        const base = metric!.replace(/_(bucket|sum|count)$/, "");
        expect(
          registered.has(metric!) || registered.has(base),
          `${a.alert}: ${metric} is registered nowhere`,
        ).toBe(true);
      }
    }
  });

  it("are shipped by the chart as they are (update the copy with hack/sync-chart.sh)", () => {
    const copy = readFileSync(join(repo, "helm", "evaluator-operator", "rules", "alerts.rules.yaml"), "utf8");
    expect(
      copy === rulesText,
      "helm/evaluator-operator/rules/alerts.rules.yaml differs from monitoring/alerts.rules.yaml: run hack/sync-chart.sh",
    ).toBe(true);
  });
});
