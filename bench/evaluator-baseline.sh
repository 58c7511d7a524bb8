#!/usr/bin/env bash
# The evaluator benchmark before/after, in one run: bench/evaluator.bench.ts of the baseline
# release (BASELINE_REF below), checked out into a temporary git worktree, then this tree's, with
# the same BENCH_* settings; this tree's run then prints both side by side with their ratios (it
# reads the baseline's output). What `npm run bench -- evaluator` runs.
#
#   bash bench/evaluator-baseline.sh
#
# Without git, outside a git checkout (a source tarball) or when the repository lacks BASELINE_REF
# (a shallow clone), it says so and runs this tree's benchmark alone. The worktree is removed on
# exit; node_modules is this tree's (a symlink), so the baseline runs on the same dependencies.
# Settings (env): the benchmark's BENCH_*, DATABASE_URL, VALKEY_URL (both runs get the same);
# BENCH_BASELINE_REF overrides the baseline commit; BENCH_BASELINE=0 skips the baseline run;
# BENCH_MAX_OLD_SPACE_MIB caps the V8 old space of both runs (node --max-old-space-size), as a
# container memory limit does: Node 24 sizes the old space to half the memory limit it reads from its
# cgroup, so 256 is what a shard gets under a 512Mi limit. The young generation is then capped too
# (BENCH_MAX_SEMI_SPACE_MIB, default 16: 3 × 16 MiB, what Node gives a process under a 600Mi limit,
# so no less than under 512Mi) instead of the large default of a machine with many GiB.
# BENCH_CAP_BASELINE=0 runs the baseline without those caps (as it ran before, no limit) and this
# tree under them: what a shard gives up when it moves into the container.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
HACK_DIR=$REPO_DIR/hack
# shellcheck source=../hack/lib.sh
source "$HACK_DIR/lib.sh"

# The last release before the fence: the evaluator just before the exactly-once work (the
# per-tenant fence in PostgreSQL, Valkey as its cache), "Mend: one private step (#advance)…".
BASELINE_REF=${BENCH_BASELINE_REF:-58bf2481bf7686cc99848f1ea8233deabb9915fc}

ensure_node
ensure_deps

node_flags=(--expose-gc)
baseline_flags=(--expose-gc)
if [[ -n "${BENCH_MAX_OLD_SPACE_MIB:-}" ]]; then
  [[ "$BENCH_MAX_OLD_SPACE_MIB" =~ ^[1-9][0-9]*$ ]] \
    || die "BENCH_MAX_OLD_SPACE_MIB must be a whole number of MiB, not '$BENCH_MAX_OLD_SPACE_MIB'"
  semi=${BENCH_MAX_SEMI_SPACE_MIB:-16}
  [[ "$semi" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MAX_SEMI_SPACE_MIB must be a whole number of MiB, not '$semi'"
  node_flags+=("--max-old-space-size=$BENCH_MAX_OLD_SPACE_MIB" "--max-semi-space-size=$semi")
  [[ "${BENCH_CAP_BASELINE:-1}" == 0 ]] || baseline_flags=("${node_flags[@]}")
fi

this_tree_alone() {
  say "no before/after comparison: $*"
  say "running this tree's bench/evaluator.bench.ts alone"
  cd "$REPO_DIR"
  exec node "${node_flags[@]}" bench/evaluator.bench.ts
}

[[ "${BENCH_BASELINE:-1}" == 0 ]] && this_tree_alone "BENCH_BASELINE=0"
command -v git >/dev/null 2>&1 || this_tree_alone "git is not installed"
git -C "$REPO_DIR" rev-parse --git-dir >/dev/null 2>&1 \
  || this_tree_alone "$REPO_DIR is not a git checkout (a source tarball?)"
git -C "$REPO_DIR" cat-file -e "$BASELINE_REF^{commit}" 2>/dev/null \
  || this_tree_alone "commit $BASELINE_REF (the last release before the fence) is not in this repository (a shallow clone? git fetch it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/evaluator-baseline.XXXXXX")
tree=$work/tree
cleanup() {
  rm -f "$tree/node_modules" # the symlink only, before git removes the worktree
  git -C "$REPO_DIR" worktree remove --force "$tree" >/dev/null 2>&1 || true
  git -C "$REPO_DIR" worktree prune >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

short=$(git -C "$REPO_DIR" rev-parse --short "$BASELINE_REF")
what="the last release before the fence"
[[ -n "${BENCH_BASELINE_REF:-}" ]] && what="BENCH_BASELINE_REF"
say "checking out the baseline $short ($what) into $tree"
git -C "$REPO_DIR" worktree add --detach --quiet "$tree" "$BASELINE_REF"
# Only node runs in the worktree, never npm: `npm ci` there would empty this tree's node_modules
# through the symlink.
ln -s "$REPO_DIR/node_modules" "$tree/node_modules"

say "before: the baseline's bench/evaluator.bench.ts ($short), node ${baseline_flags[*]}"
if ! (cd "$tree" && node "${baseline_flags[@]}" bench/evaluator.bench.ts) | tee "$work/baseline.out"; then
  say "the baseline's benchmark failed (above): no before/after comparison"
  say "after: this tree's bench/evaluator.bench.ts alone"
  cd "$REPO_DIR"
  node "${node_flags[@]}" bench/evaluator.bench.ts
  exit
fi

say "after: this tree's bench/evaluator.bench.ts, node ${node_flags[*]}"
cd "$REPO_DIR"
BENCH_BASELINE_OUTPUT=$work/baseline.out BENCH_BASELINE_LABEL="$short ($what)" \
  node "${node_flags[@]}" bench/evaluator.bench.ts
