#!/usr/bin/env bash
# The test command: does all of its own set-up (Node 24, npm dependencies, the cached control-plane
# toolchain, PgBouncer), checks that PostgreSQL and Valkey/Redis answer, then runs every vitest project
# (unit, integration, e2e). The e2e project starts the local control plane itself, or reuses one.
# Extra arguments go to vitest, e.g. `npm test -- --project unit`.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HACK_DIR/lib.sh"

ensure_node
ensure_deps
ensure_toolchain
ensure_pgbouncer
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export VALKEY_URL=${VALKEY_URL:-redis://127.0.0.1:6379/0}
node -e '
  const net = require("node:net");
  const check = (name, url) => new Promise((ok, fail) => {
    const u = new URL(url);
    const s = net.connect(Number(u.port), u.hostname, () => { s.end(); ok(); });
    s.on("error", (e) => fail(new Error(`${name} is not reachable at ${u.host} (${e.code}): start it, or set ${name}`)));
  });
  Promise.all([check("DATABASE_URL", process.env.DATABASE_URL), check("VALKEY_URL", process.env.VALKEY_URL)])
    .catch((e) => { console.error("[test] " + e.message); process.exit(1); });
'
cd "$REPO_DIR"
exec npx vitest run "$@"
