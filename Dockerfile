# syntax=docker/dockerfile:1
# The infer-connect runtime image.
#
#   docker build -t infer-connect .
#   docker run --rm -v "$PWD/my-config:/etc/infer-connect:ro" -p 127.0.0.1:8083:8083 infer-connect
#
# The default command runs a standalone worker with /etc/infer-connect/worker.json and
# /etc/infer-connect/census-inference.json; the image ships the docker-compose versions of both
# (deploy/config/), so mount your own folder over /etc/infer-connect, or pass another command:
#   docker run ... infer-connect standalone /etc/infer-connect/worker.json /etc/infer-connect/a.json
#   docker run ... infer-connect validate /etc/infer-connect/a.json
# Relative paths inside connector configs (schemas/census.avsc) resolve against /app.
#
# test/integration/packaging-dockerfile.test.ts parses this file and runs its steps natively, so
# keep every step a plain COPY or RUN it can follow.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------- build: compile TypeScript
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# patches/ before npm ci: its postinstall (patch-package) applies them to kafkajs.
COPY package.json package-lock.json ./
COPY patches/ patches/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY runtime/ runtime/
COPY connectors/ connectors/
COPY app/ app/
RUN npm run build

# ---------------------------------------------------------------- runtime: production dependencies only
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# package.json also marks the package root, where the gRPC client looks for proto/.
COPY package.json package-lock.json ./
COPY patches/ patches/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/ dist/
COPY bin/ bin/
COPY proto/ proto/
COPY schemas/ schemas/
COPY config/ config/
COPY deploy/config/ /etc/infer-connect/
RUN ln -s /app/bin/infer-connect.js /usr/local/bin/infer-connect \
    && mkdir -p /var/lib/infer-connect \
    && chown node:node /var/lib/infer-connect

# The node image's unprivileged user (uid 1000). Offsets of source connectors go to
# /var/lib/infer-connect (deploy/config/worker.json); mount a volume there to keep them.
USER node
# --max-semi-space-size=16: V8's young generation at 16 MB per semi-space (Node 24 picks up to 64 MB
# on hosts with a lot of RAM, and the worker's RSS follows). bench/README.md has the measurements.
ENV NODE_OPTIONS="--enable-source-maps --max-semi-space-size=16" \
    INFER_CONNECT_HEALTH_URL=http://127.0.0.1:8083/health
VOLUME ["/var/lib/infer-connect"]
EXPOSE 8083

# GET /health answers 200 once the worker has started (503 while starting or unhealthy).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch(process.env.INFER_CONNECT_HEALTH_URL,{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM drains the worker (stop fetching, finish in-flight work, flush, commit) and exits 0
# within task.shutdown.graceful.timeout.ms + 5 s: give `docker stop` at least that (-t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["infer-connect"]
CMD ["standalone", "/etc/infer-connect/worker.json", "/etc/infer-connect/census-inference.json"]
