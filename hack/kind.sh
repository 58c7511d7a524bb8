#!/usr/bin/env bash
# The path for users with a Docker engine: a kind cluster running the real image.
#   hack/kind.sh up     create the cluster, build and load the image, install the CRD and the chart
#   hack/kind.sh down   delete the cluster
# Needs docker, kind, kubectl and helm on PATH. PostgreSQL and Valkey are yours to provide: create
# the Secrets named in crds/samples/secrets-example.yaml before applying a sample shard set.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${KIND_CLUSTER:-evaluator-operator}
IMAGE=${IMAGE:-evaluator-operator:dev}

for cmd in docker kind kubectl helm; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "[kind] $cmd is required on PATH" >&2; exit 1; }
done

case "${1:-}" in
  up)
    kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
    docker build -t "$IMAGE" "$REPO_DIR"
    kind load docker-image "$IMAGE" --name "$CLUSTER"
    kubectl --context "kind-$CLUSTER" apply --server-side -f "$REPO_DIR/crds/"
    helm --kube-context "kind-$CLUSTER" upgrade --install evaluator-operator "$REPO_DIR/helm/evaluator-operator" \
      -n evaluator-system --create-namespace --skip-crds \
      --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never
    kubectl --context "kind-$CLUSTER" -n evaluator-system rollout status deployment --timeout=180s
    echo "[kind] ready: kubectl --context kind-$CLUSTER apply -n <ns> -f crds/samples/" >&2
    ;;
  down) kind delete cluster --name "$CLUSTER" ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
