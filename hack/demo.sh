#!/usr/bin/env bash
# The demo: brings up the whole system locally and shows it working. Does all of its own set-up
# (Node 24, npm dependencies, the cached control-plane toolchain) and leaves everything running.
#
#   npm run demo            start (or reuse) everything and walk through a resize
#   npm run demo -- down    stop the demo's processes and the local control plane
#
# Settings: DEMO_DATABASE_URL (default: a database evaluator_demo on 127.0.0.1:5432),
#           DEMO_VALKEY_URL (default redis://127.0.0.1:6379/0), DEMO_TENANTS (default 300).
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

DEMO_DIR=$CACHE_ROOT/demo
NS=iot-demo
SET=alerts
DB_URL=${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/evaluator_demo}
# Its own Valkey database number, flushed at the start, so a rerun starts from a clean slate.
VALKEY_URL=${DEMO_VALKEY_URL:-redis://127.0.0.1:6379/11}
PROM_PORT=${DEMO_PROMETHEUS_PORT:-19090}
# A NATS server with JetStream of the demo's own (store under the demo folder), for the alert events.
NATS_PORT=${DEMO_NATS_PORT:-14222}
TENANTS=${DEMO_TENANTS:-300}
OPERATOR=("node" "$REPO_DIR/operator/bin/evaluator-operator.ts")

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# background NAME CMD...: runs CMD detached with its log in $DEMO_DIR/NAME.log, unless already running.
background() {
  local name=$1; shift
  local pidfile=$DEMO_DIR/$name.pid
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "$name already running (pid $(cat "$pidfile"))"
    return
  fi
  setsid "$@" >"$DEMO_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  say "started $name (pid $!, log $DEMO_DIR/$name.log)"
}

stop_demo() {
  local f pid
  node "$REPO_DIR/hack/prometheus.ts" down >/dev/null 2>&1 || true
  for f in "$DEMO_DIR"/*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      say "stopped $(basename "$f" .pid) (pid $pid)"
    fi
    rm -f "$f"
  done
}

wait_ready() {
  # wait_ready SHARDS: until the set reports SHARDS shards, all ready, nothing in flight.
  local want=$1 deadline=$((SECONDS + 180)) got
  until got=$(kubectl get ess "$SET" -n "$NS" -o jsonpath='{.status.shards}/{.status.readyShards}/{.status.reshard.phase}' 2>/dev/null) \
      && [[ $got == "$want/$want/" ]]; do
    (( SECONDS < deadline )) || die "timed out waiting for $want ready shards (status: $got); see $DEMO_DIR/operator.log"
    sleep 1
  done
}

if [[ "${1:-}" == "down" ]]; then
  ensure_node
  stop_demo
  "$HACK_DIR/cluster.sh" down
  exit 0
fi

ensure_node
ensure_deps
# Here rather than inside cluster.sh up, so that the whole set-up shows before the demo's steps.
ensure_toolchain
mkdir -p "$DEMO_DIR"

step "Local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
"$HACK_DIR/cluster.sh" up
eval "$("$HACK_DIR/cluster.sh" env)"
kubectl get nodes >&2

step "A clean slate: stop an earlier demo run and remove its shard set"
stop_demo
kubectl delete namespace "$NS" --ignore-not-found --wait=true >&2

node -e 'const { Redis } = require("ioredis"); const r = new Redis(process.argv[1]); r.flushdb().then(() => r.quit())' "$VALKEY_URL"

step "PostgreSQL: the demo database (recreated), migrations and sample tenants"
node "$HACK_DIR/demo/seed.ts" "$DB_URL" "$NS/$SET" --recreate
DATABASE_URL=$DB_URL "${OPERATOR[@]}" migrate up >&2
node "$HACK_DIR/demo/seed.ts" "$DB_URL" "$NS/$SET" "$TENANTS" 10 >&2

step "The EvaluatorShardSet CRD, Secrets and a sample set with 3 shards"
kubectl apply --server-side -f "$REPO_DIR/crds/evaluator.iot.dev_evaluatorshardsets.yaml" >&2
kubectl wait --for=condition=Established crd/evaluatorshardsets.evaluator.iot.dev --timeout=60s >&2
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >&2
kubectl -n "$NS" create secret generic evaluator-database --from-literal=url="$DB_URL" --dry-run=client -o yaml | kubectl apply -f - >&2
kubectl -n "$NS" create secret generic evaluator-valkey --from-literal=url="$VALKEY_URL" --dry-run=client -o yaml | kubectl apply -f - >&2
# The sample, with a 10 s tick so the demo moves quickly.
sed -e 's/^  shards: .*/  shards: 3/' -e 's/^  evaluator:$/  evaluator:\n    tickIntervalSeconds: 10\n    tenantBudgetMs: 2000/' \
  "$REPO_DIR/crds/samples/evaluatorshardset-fixed.yaml" | kubectl apply -n "$NS" -f - >&2

step "The operator (leader-elected, watching $NS)"
background operator "${OPERATOR[@]}" run --kubeconfig "$KUBECONFIG" --namespaces "$NS" \
  --leader-election-namespace "$NS" --metrics-bind-address 127.0.0.1:18080 --health-probe-bind-address 127.0.0.1:18081 \
  --resync-period 10s --drain-slack 1s --autoscale-interval 5s
wait_ready 3
kubectl get ess -n "$NS" >&2
kubectl get deployments,pods -n "$NS" -o wide >&2
DATABASE_URL=$DB_URL "${OPERATOR[@]}" shards status --shard-set "$NS/$SET" >&2

step "Evaluators: one process per shard Deployment (the shard runner plays the kubelet), Prometheus, telemetry"
background shard-runner node "$REPO_DIR/hack/shard-runner/main.ts" --kubeconfig "$KUBECONFIG" --namespace "$NS" \
  --shardset "$SET" --file-sd "$DEMO_DIR/file_sd.json" --log-dir "$DEMO_DIR/shards"
# Prometheus scrapes the operator too (its job name as the alerting rules expect it), so the
# dashboard (monitoring/dashboards/) has every panel on the demo's data.
printf '[{"targets":["127.0.0.1:18080"],"labels":{"job":"evaluator-operator"}}]\n' >"$DEMO_DIR/operator_sd.json"
node "$REPO_DIR/hack/prometheus.ts" up --file-sd "$DEMO_DIR/file_sd.json" --file-sd "$DEMO_DIR/operator_sd.json" \
  --port "$PROM_PORT" >&2
background telemetry node "$HACK_DIR/demo/telemetry.ts" "$DB_URL" "$NS/$SET" 5
say "letting the evaluators tick for 30 s (tick interval 10 s)"
sleep 30
node "$HACK_DIR/demo/alerts.ts" "$DB_URL" >&2

step "Alert events: each alert change is an outbox row, relayed to NATS JetStream (message id = event id)"
ensure_nats_server
rm -rf "$DEMO_DIR/nats"
background nats "$(command -v nats-server || echo /usr/sbin/nats-server)" -js -sd "$DEMO_DIR/nats" -a 127.0.0.1 -p "$NATS_PORT"
deadline=$((SECONDS + 30))
until (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; do
  (( SECONDS < deadline )) || die "nats-server did not start; see $DEMO_DIR/nats.log"
  sleep 0.5
done
background relay "${OPERATOR[@]}" events relay --database-url "$DB_URL" --nats-url "nats://127.0.0.1:$NATS_PORT" \
  --http-bind-address 127.0.0.1:18082
say "letting the relay catch up for 5 s"
sleep 5
node "$HACK_DIR/demo/events.ts" "$DB_URL" "nats://127.0.0.1:$NATS_PORT" >&2

step "A resize: the plan first (a dry run), then kubectl scale 3 → 4"
DATABASE_URL=$DB_URL "${OPERATOR[@]}" shards plan --shard-set "$NS/$SET" --shards 4 >&2
kubectl scale "ess/$SET" -n "$NS" --replicas=4 >&2
wait_ready 4
kubectl get ess -n "$NS" >&2
DATABASE_URL=$DB_URL "${OPERATOR[@]}" shards status --shard-set "$NS/$SET" >&2
kubectl get events -n "$NS" --field-selector involvedObject.kind=EvaluatorShardSet \
  -o custom-columns=REASON:.reason,MESSAGE:.message >&2

step "After the resize: alerts keep flowing, and Prometheus sees every shard"
sleep 25
node "$HACK_DIR/demo/alerts.ts" "$DB_URL" >&2
curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode \
  'query=sum by (shard) (evaluator_tenants_evaluated_total)' | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const r = JSON.parse(s).data.result;
      console.error("Tenant evaluations per shard (Prometheus):");
      for (const x of r.sort((a, b) => a.metric.shard - b.metric.shard)) console.error(`  shard ${x.metric.shard}: ${x.value[1]}`);
    });' || say "Prometheus has no evaluator samples yet"

step "The autoscaler: mode Auto, from Prometheus's readings and the tenant load; then a tenant surge"
# loadPerShard = the load now ÷ 3.5: today's tenants need 4 shards (the count that runs), and the
# surge below needs more. The queue-depth and tick-latency signals come from Prometheus; the
# latency target is half the demo's 10 s tick (the default, 30 s, is for the 60 s tick).
LOAD=$(node -e '
  const pg = require("pg"); const c = new pg.Client(process.argv[1]);
  c.connect().then(() => c.query("SELECT sum(greatest(weight, 1))::float8 AS l FROM tenants WHERE shard_set = $1", [process.argv[2]]))
   .then((r) => { console.log(Math.round(r.rows[0].l / 3.5)); return c.end(); });' "$DB_URL" "$NS/$SET")
kubectl patch "ess/$SET" -n "$NS" --type=merge -p "{\"spec\":{\"autoscaling\":{\"mode\":\"Auto\",\"minShards\":2,\"maxShards\":8,
  \"minReshardIntervalSeconds\":15,\"targets\":{\"loadPerShard\":$LOAD,\"tickLatencySeconds\":5},
  \"prometheus\":{\"url\":\"http://127.0.0.1:$PROM_PORT\"}}}}" >&2
deadline=$((SECONDS + 120))
until [[ $(kubectl get ess "$SET" -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="MetricsAvailable")].status}') == True ]]; do
  (( SECONDS < deadline )) || { say "the autoscaler has no metrics yet: $(kubectl get ess "$SET" -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="MetricsAvailable")].message}')"; break; }
  sleep 2
done
kubectl get ess -n "$NS" >&2
say "a tenant surge: 300 more tenants"
node "$HACK_DIR/demo/seed.ts" "$DB_URL" "$NS/$SET" 300 10 --add >&2
deadline=$((SECONDS + 180))
# Grown past 4, every shard ready, no reshard in flight ("<shards>/<ready>/<phase>").
until got=$(kubectl get ess "$SET" -n "$NS" -o jsonpath='{.status.shards}/{.status.readyShards}/{.status.reshard.phase}') \
    && IFS=/ read -r shards ready phase <<<"$got" && (( shards > 4 )) && [[ $ready == "$shards" && -z $phase ]]; do
  (( SECONDS < deadline )) || die "the set did not grow (status: $got); see $DEMO_DIR/operator.log"
  sleep 2
done
kubectl get ess -n "$NS" >&2
kubectl get events -n "$NS" --field-selector involvedObject.kind=EvaluatorShardSet,reason=ScalingUp \
  -o custom-columns=REASON:.reason,MESSAGE:.message >&2

cat >&2 <<MSG

The system is running. Point kubectl at the local control plane with:

  eval "\$(npm run --silent cluster env)"
  kubectl get ess -n $NS
  kubectl scale ess/$SET -n $NS --replicas=2

Alert events: node hack/demo/events.ts $DB_URL nats://127.0.0.1:$NATS_PORT
Prometheus: http://127.0.0.1:$PROM_PORT   Logs: $DEMO_DIR/*.log, $DEMO_DIR/shards/
Stop everything: npm run demo -- down
MSG
