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
# uses only erasable syntax), so the image ships the sources as they are in the repository.

ARG NODE_IMAGE=node:24-slim

# Production dependencies only, installed exactly from the lockfile.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
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
ENTRYPOINT ["node", "/app/evaluator/bin/evaluator.ts"]
CMD ["run"]
