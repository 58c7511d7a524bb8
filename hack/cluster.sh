#!/usr/bin/env bash
# A real local Kubernetes control plane without Docker: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (fake nodes whose pods turn Running/Ready), all on 127.0.0.1.
#
#   hack/cluster.sh up      start (or reuse) the plane and wait until /readyz is ok and the node is Ready
#   hack/cluster.sh down    stop only the processes this script started (pid files) and remove its state
#   hack/cluster.sh env     print `export KUBECONFIG=... PATH=...` for a shell: eval "$(hack/cluster.sh env)"
#   hack/cluster.sh status  print what runs
#
# Settings (env): EO_CLUSTER_DIR (state folder), EO_API_PORT (default 16443), EO_ETCD_PORT (default 23790).
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

STATE_DIR=${EO_CLUSTER_DIR:-$CACHE_ROOT/cluster}
API_PORT=${EO_API_PORT:-16443}
ETCD_PORT=${EO_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 10))
KCM_PORT=$((API_PORT + 1))
SCHED_PORT=$((API_PORT + 2))
KWOK_PORT=$((API_PORT + 3))
PKI=$STATE_DIR/pki
LOGS=$STATE_DIR/logs
RUN=$STATE_DIR/run
KUBECONFIG_FILE=$STATE_DIR/kubeconfig
NODE_NAME=kwok-node-0
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

kubectl_() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

pid_alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

gen_pki() {
  [[ -f "$PKI/admin.crt" ]] && return
  command -v openssl >/dev/null || die "openssl is needed to generate the plane's certificates (apt-get install openssl)"
  say "generating certificates and service-account keys in $PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=evaluator-operator-local-ca" 2>/dev/null
    cat > server.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 3650 -extfile server.ext 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=local-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  cat > "$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
- name: evaluator-operator-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: local-admin
  user:
    client-certificate: $PKI/admin.crt
    client-key: $PKI/admin.key
contexts:
- name: evaluator-operator-local
  context: { cluster: evaluator-operator-local, user: local-admin }
current-context: evaluator-operator-local
KC
}

# start NAME CMD...: runs CMD in its own session with its output in logs/NAME.log and its pid in run/NAME.pid.
start() {
  local name=$1; shift
  if pid_alive "$name"; then return; fi
  # 9>&-: the daemon must not inherit the lock of `up` (it would hold it for as long as it runs).
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$RUN/$name.pid"
  say "started $name (pid $!, log $LOGS/$name.log)"
}

wait_for() {
  # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS > deadline )); then
      die "timed out after ${secs}s waiting for $what; last log lines:
$(tail -n 20 "$LOGS"/*.log 2>/dev/null | tail -n 60)"
    fi
    sleep 0.5
  done
}

up() {
  ensure_node
  ensure_deps
  ensure_toolchain
  mkdir -p "$STATE_DIR" "$LOGS" "$RUN"
  # One `up` at a time (parallel test runs each call it): two at once would both generate the
  # certificates and keys, and the running apiserver would keep a service-account key that is no
  # longer the one on disk (a second apiserver of the plane then refuses the first one's tokens).
  exec 9>"$STATE_DIR.lock"
  flock 9
  if pid_alive kube-apiserver && kubectl_ get --raw /readyz >/dev/null 2>&1; then
    say "control plane already up (KUBECONFIG=$KUBECONFIG_FILE)"
  fi
  gen_pki

  start etcd etcd --name local --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --quota-backend-bytes 2147483648
  wait_for "etcd" 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" --client-ca-file "$PKI/ca.crt" \
    --authorization-mode RBAC --allow-privileged=true \
    --service-cluster-ip-range 10.96.0.0/16 \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --endpoint-reconciler-type none --profiling=false
  wait_for "kube-apiserver /readyz" 90 kubectl_ get --raw /readyz

  start kube-controller-manager kube-controller-manager \
    --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' --profiling=false
  start kube-scheduler kube-scheduler \
    --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false
  start kwok kwok --kubeconfig "$KUBECONFIG_FILE" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 \
    --cidr 10.244.0.1/16 --node-ip 127.0.0.1 --server-address "127.0.0.1:$KWOK_PORT"

  kubectl_ apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
spec: {}
status:
  allocatable: { cpu: "64", memory: 256Gi, pods: "500" }
  capacity: { cpu: "64", memory: 256Gi, pods: "500" }
NODE
  wait_for "node $NODE_NAME Ready" 60 kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
  wait_for "service account default/default" 60 kubectl_ get serviceaccount default -n default
  say "control plane ready: kube-apiserver https://127.0.0.1:$API_PORT ($(kubectl_ version -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).serverVersion.gitVersion))'))"
  say "use it:  eval \"\$(npm run --silent cluster env)\"   (or: export KUBECONFIG=$KUBECONFIG_FILE)"
}

down() {
  local name pid i
  # Reverse start order: nodes and controllers first, etcd last.
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
    name=${COMPONENTS[$i]}
    [[ -f "$RUN/$name.pid" ]] || continue
    pid=$(cat "$RUN/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      say "stopped $name (pid $pid)"
    fi
  done
  rm -rf "$STATE_DIR"
}

status() {
  local name
  for name in "${COMPONENTS[@]}"; do
    if pid_alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env)
    echo "export KUBECONFIG=$KUBECONFIG_FILE"
    echo "export PATH=$("$HACK_DIR/toolchain.sh" path):\$PATH"
    ;;
  status) status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
