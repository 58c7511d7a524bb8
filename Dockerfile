# syntax=docker/dockerfile:1
#
# One image for both programs of the project:
#   - the evaluator (the shard worker) is the default: ENTRYPOINT runs evaluator/bin/evaluator.ts, so
#     the shard Deployments the operator builds (container args ["run"]) start `evaluator run`;
#   - the operator runs from the same image with the command overridden, as the Helm chart does:
#     command ["node", "/app/operator/bin/evaluator-operator.ts"], args ["run", ...].
#
#   docker build -t evaluator-operator:0.1.0 .
#   docker run --rm evaluator-operator:0.1.0 run                  # evaluator (needs DATABASE_URL, VALKEY_URL, SHARD_INDEX ...)
#   docker run --rm --entrypoint node evaluator-operator:0.1.0 operator/bin/evaluator-operator.ts run
#   docker run --rm --entrypoint node evaluator-operator:0.1.0 operator/bin/evaluator-operator.ts migrate up
#
# No build step: Node 24 strips TypeScript types itself (relative imports carry `.ts` and the code
# uses only erasable syntax), so the image ships the sources as they are in the repository. What the
# build context holds is decided by .dockerignore: the programs' sources, migrations and CRD, never
# tests, fixtures, benchmarks or hack/ (test/static/image.test.ts checks both files).

# The base image, pinned by the digest of its multi-architecture image index: every build, on every
# architecture, starts from the same bytes, and a tag moved upstream changes nothing here. The tag
# only says what the digest is (Node 24.19.0 on Debian bookworm, slim). To move to a newer Node 24,
# read the index digest of the tag (the first "Digest:" line) and replace both:
#   docker buildx imagetools inspect node:24-bookworm-slim
# A NODE_IMAGE given with --build-arg must be pinned the same way (name@sha256:...).
ARG NODE_IMAGE=node:24.19.0-bookworm-slim@sha256:a9f5f7c91a432850b2a8a7797adf5eadb6c733ceed61167806cee7ea7fbc29df

# Production dependencies only, installed exactly from the lockfile.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
# The programs run `node` only: no package manager in the runtime image (npm, npx and corepack, with
# their own dependencies; yarn where the base has it), so nothing in it can fetch and run packages.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
LABEL org.opencontainers.image.title="evaluator-operator" \
      org.opencontainers.image.description="Operator that shards a multi-tenant alert-rule evaluator, and the evaluator it shards" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
# package.json carries "type": "module", which makes Node load the .ts sources as ES modules.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY runtime/ ./runtime/
COPY operator/ ./operator/
COPY evaluator/ ./evaluator/
# `evaluator-operator migrate` reads ../migrations relative to its sources; the CRD ships for
# `kubectl apply` from the image if wanted.
COPY migrations/ ./migrations/
COPY crds/ ./crds/
# Files stay root-owned and read-only for the runtime user (the pods also run readOnlyRootFilesystem).
USER 65532:65532
# No --max-old-space-size: Node 24 sizes the V8 heap from the memory limit it reads in its cgroup
# (half of it for the old space, measured for limits of 600 MiB to 2 GiB: 256 MiB under 512Mi; plus
# a young generation of at most 48 MiB), which leaves the other half for what is not heap (code, buffers, sockets). The evaluator
# benchmark's 400,000-pair shard run under that cap keeps about 100 MiB of heap between ticks and
# peaked at 295-297 MiB resident (evaluator README, "Memory and CPU per pair"); a larger old space
# (75 % of the limit, say) would let the heap grow into the room the rest needs.
ENTRYPOINT ["node", "/app/evaluator/bin/evaluator.ts"]
CMD ["run"]
