#!/usr/bin/env bash
# Keeps the chart's CRD a copy of the one source of truth, crds/ at the repository root. Helm
# installs CRDs only from a chart's own crds/ folder, so the chart carries a copy; test/e2e/helm.test.ts
# fails when the two differ.
#   hack/sync-chart-crds.sh          copy crds/*.yaml into helm/evaluator-operator/crds/
#   hack/sync-chart-crds.sh --check  exit 1, naming the file, when the copy is stale
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$REPO_DIR/crds"
DST="$REPO_DIR/helm/evaluator-operator/crds"

say() { printf '[sync-chart-crds] %s\n' "$*" >&2; }

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) say "usage: $0 [--check]"; exit 2 ;;
esac

stale=0
for src in "$SRC"/*.yaml; do
  dst="$DST/$(basename "$src")"
  if cmp -s "$src" "$dst"; then continue; fi
  if $check; then
    say "stale: helm/evaluator-operator/crds/$(basename "$src") differs from crds/$(basename "$src")"
    stale=1
  else
    mkdir -p "$DST"
    cp "$src" "$dst"
    say "copied crds/$(basename "$src")"
  fi
done
# A CRD removed from crds/ must leave the chart too.
for dst in "$DST"/*.yaml; do
  [[ -e "$dst" ]] || continue
  if [[ ! -e "$SRC/$(basename "$dst")" ]]; then
    if $check; then
      say "extra: helm/evaluator-operator/crds/$(basename "$dst") has no counterpart in crds/"
      stale=1
    else
      rm "$dst"
      say "removed helm/evaluator-operator/crds/$(basename "$dst")"
    fi
  fi
done
if $check && (( stale )); then
  say "run hack/sync-chart-crds.sh to update the chart"
  exit 1
fi
