#!/usr/bin/env bash
# Keeps the chart's Grafana dashboards a copy of the one source of truth, monitoring/dashboards/ at
# the repository root. A chart's templates read only files inside the chart (.Files.Get), so the
# chart carries a copy; test/static/dashboard.test.ts fails when the two differ.
#   hack/sync-chart-dashboards.sh          copy monitoring/dashboards/*.json into helm/evaluator-operator/dashboards/
#   hack/sync-chart-dashboards.sh --check  exit 1, naming the file, when the copy is stale
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$REPO_DIR/monitoring/dashboards"
DST="$REPO_DIR/helm/evaluator-operator/dashboards"

say() { printf '[sync-chart-dashboards] %s\n' "$*" >&2; }

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) say "usage: $0 [--check]"; exit 2 ;;
esac

stale=0
for src in "$SRC"/*.json; do
  dst="$DST/$(basename "$src")"
  if cmp -s "$src" "$dst"; then continue; fi
  if $check; then
    say "stale: helm/evaluator-operator/dashboards/$(basename "$src") differs from monitoring/dashboards/$(basename "$src")"
    stale=1
  else
    mkdir -p "$DST"
    cp "$src" "$dst"
    say "copied monitoring/dashboards/$(basename "$src")"
  fi
done
# A dashboard removed from monitoring/dashboards/ must leave the chart too.
for dst in "$DST"/*.json; do
  [[ -e "$dst" ]] || continue
  if [[ ! -e "$SRC/$(basename "$dst")" ]]; then
    if $check; then
      say "extra: helm/evaluator-operator/dashboards/$(basename "$dst") has no counterpart in monitoring/dashboards/"
      stale=1
    else
      rm "$dst"
      say "removed helm/evaluator-operator/dashboards/$(basename "$dst")"
    fi
  fi
done
if $check && (( stale )); then
  say "run hack/sync-chart-dashboards.sh to update the chart"
  exit 1
fi
