#!/usr/bin/env bash
# Keeps the chart's alerting rules a copy of the one source of truth, monitoring/alerts.rules.yaml.
# A chart's templates read only files inside the chart (.Files.Get), so the chart carries a copy,
# which templates/prometheusrule.yaml renders as a PrometheusRule; test/static/alert-rules.test.ts
# fails when the two differ.
#   hack/sync-chart-rules.sh          copy monitoring/alerts.rules.yaml into helm/evaluator-operator/rules/
#   hack/sync-chart-rules.sh --check  exit 1, naming the file, when the copy is stale
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$REPO_DIR/monitoring/alerts.rules.yaml"
DST="$REPO_DIR/helm/evaluator-operator/rules/alerts.rules.yaml"

say() { printf '[sync-chart-rules] %s\n' "$*" >&2; }

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) say "usage: $0 [--check]"; exit 2 ;;
esac

if cmp -s "$SRC" "$DST"; then exit 0; fi
if $check; then
  say "stale: helm/evaluator-operator/rules/alerts.rules.yaml differs from monitoring/alerts.rules.yaml"
  say "run hack/sync-chart-rules.sh to update the chart"
  exit 1
fi
mkdir -p "$(dirname "$DST")"
cp "$SRC" "$DST"
say "copied monitoring/alerts.rules.yaml"
