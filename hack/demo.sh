#!/usr/bin/env bash
# The demo: brings up the whole system locally. Does all of its own set-up (Node 24, npm
# dependencies, the cached control-plane toolchain) and leaves everything running.
# Stop it with: npm run cluster down
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

ensure_node
ensure_deps
"$HACK_DIR/cluster.sh" up
eval "$("$HACK_DIR/cluster.sh" env)"

say "nodes of the local control plane:"
kubectl get nodes -o wide >&2
cat >&2 <<MSG

The local control plane is running. Point kubectl at it with:

  eval "\$(npm run --silent cluster env)"
  kubectl get nodes

Stop everything with: npm run cluster down
MSG
