#!/usr/bin/env bash
# Benchmarks: runs every bench/*.bench.ts in turn (each prints its own table of figures and ratios
# measured side by side in one run). Does its own set-up like the other entry points.
# Pass a file name fragment to run only some: `npm run bench -- planner`, `npm run bench -- many-sets`
# (one operator at 1, 10 and 50 sets × 16 shards, two rate limits), `npm run bench -- sizing`
# (evaluator processes on 1, 2 and 4 shards against one Valkey and one PostgreSQL, about 12 minutes;
# README "Sizing"); `npm run bench -- autoscale`
# runs the autoscaling-policy simulator (bench/autoscale.ts) alone. The evaluator benchmark
# runs through bench/evaluator-baseline.sh, which also runs the last release before the fence's
# and prints both side by side.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

ensure_node
ensure_deps
# The scale-latency and many-sets benchmarks need the local control plane (started, or reused if
# up); only then, so the other benchmarks do not share the CPUs with it.
if [[ -z "${1:-}" || "bench/scale-latency.bench.ts" == *"$1"* || "bench/many-sets.bench.ts" == *"$1"* ]]; then
  "$HACK_DIR/cluster.sh" up
fi
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export VALKEY_URL=${VALKEY_URL:-redis://127.0.0.1:6379/0}
cd "$REPO_DIR"
shopt -s nullglob
ran=0
# The autoscaling-policy simulator is a plain script (no cluster, no database): `npm run bench -- autoscale`.
if [[ -z "${1:-}" || "bench/autoscale.ts" == *"$1"* ]]; then
  say "running bench/autoscale.ts"
  node bench/autoscale.ts
  ran=$((ran + 1))
fi
for f in bench/*.bench.ts; do
  [[ -n "${1:-}" && "$f" != *"$1"* ]] && continue
  say "running $f"
  if [[ "$f" == bench/evaluator.bench.ts ]]; then
    bash bench/evaluator-baseline.sh
  else
    node --expose-gc "$f"
  fi
  ran=$((ran + 1))
done
(( ran > 0 )) || die "no benchmark matched ${1:-bench/*.bench.ts}"
