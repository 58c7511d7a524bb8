#!/usr/bin/env bash
# Keeps the chart's copies of files whose one source of truth lies outside the chart: Helm installs
# CRDs only from the chart's own crds/, and templates read only files inside the chart (.Files.Get).
# Tests fail while a copy differs (test/e2e/helm.test.ts, test/static/alert-rules.test.ts,
# test/static/dashboard.test.ts).
#   hack/sync-chart.sh          copy the sources into helm/evaluator-operator/
#   hack/sync-chart.sh --check  exit 1, naming each file, while a copy is stale
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART=helm/evaluator-operator

# source folder | file pattern | folder in the chart
COPIES=(
  "crds|*.yaml|crds"
  "monitoring/dashboards|*.json|dashboards"
  "monitoring|*.rules.yaml|rules"
)

say() { printf '[sync-chart] %s\n' "$*" >&2; }

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) say "usage: $0 [--check]"; exit 2 ;;
esac

stale=0
for entry in "${COPIES[@]}"; do
  IFS='|' read -r src_dir pattern dst_dir <<<"$entry"
  dst_dir=$CHART/$dst_dir
  for src in "$REPO_DIR/$src_dir"/$pattern; do
    [[ -e "$src" ]] || continue
    name=$(basename "$src")
    if cmp -s "$src" "$REPO_DIR/$dst_dir/$name"; then continue; fi
    if $check; then
      say "stale: $dst_dir/$name differs from $src_dir/$name"
      stale=1
    else
      mkdir -p "$REPO_DIR/$dst_dir"
      cp "$src" "$REPO_DIR/$dst_dir/$name"
      say "copied $src_dir/$name"
    fi
  done
  # A file removed from the source must leave the chart too.
  for dst in "$REPO_DIR/$dst_dir"/$pattern; do
    [[ -e "$dst" ]] || continue
    name=$(basename "$dst")
    [[ -e "$REPO_DIR/$src_dir/$name" ]] && continue
    if $check; then
      say "extra: $dst_dir/$name has no counterpart in $src_dir/"
      stale=1
    else
      rm "$dst"
      say "removed $dst_dir/$name"
    fi
  done
done
if $check && (( stale )); then
  say "run hack/sync-chart.sh to update the chart"
  exit 1
fi
