#!/usr/bin/env bash
# The chaos run: the whole system under load and faults, with a verdict (hack/chaos/run.ts). Does
# its own set-up (Node 24, npm dependencies, the cached control-plane toolchain), starts or reuses
# the local control plane, and runs PostgreSQL and Valkey instances of its own, which it stops and
# starts. Needs the PostgreSQL server binaries (initdb, pg_ctl) and redis-server or valkey-server.
#
#   npm run chaos                                                   the CI-sized scenario (minutes)
#   npm run chaos -- --scenario hack/chaos/scenarios/full.json      the full-size one (25 minutes)
#   npm run chaos -- --report FILE --keep                           where the JSON report goes; keep
#                                                                   the namespace and folder after
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

ensure_node
ensure_deps
ensure_toolchain
"$HACK_DIR/cluster.sh" up >&2
cd "$REPO_DIR"
# The verdict of a full-size run holds millions of readings in memory.
exec node --max-old-space-size=8192 hack/chaos/run.ts "$@"
