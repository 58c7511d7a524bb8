#!/usr/bin/env bash
# Benchmarks: runs every bench/*.bench.ts in turn (each prints its own table of figures and ratios
# measured side by side in one run). Does its own set-up like the other entry points.
# Pass a file name fragment to run only some: `npm run bench -- planner`.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

ensure_node
ensure_deps
# The scale-latency benchmark needs the local control plane (started, or reused if up).
"$HACK_DIR/cluster.sh" up
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export VALKEY_URL=${VALKEY_URL:-redis://127.0.0.1:6379/0}
cd "$REPO_DIR"
shopt -s nullglob
ran=0
for f in bench/*.bench.ts; do
  [[ -n "${1:-}" && "$f" != *"$1"* ]] && continue
  say "running $f"
  node --expose-gc "$f"
  ran=$((ran + 1))
done
(( ran > 0 )) || die "no benchmark matched ${1:-bench/*.bench.ts}"
