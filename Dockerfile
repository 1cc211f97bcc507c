# syntax=docker/dockerfile:1
# rewrap's container image, built from the compiled output (npm run build).
#
#   docker build -t rewrap .                  # the runtime image (the last stage)
#   docker run --rm rewrap worker             # ENTRYPOINT is `node bin/rewrap.js`
#   docker build --target dev -t rewrap-dev . # sources + devDependencies: the local KMS server,
#                                             # the demo, the compose bootstrap (never in production)
#
# The runtime image runs as the unprivileged `node` user (uid 1000) and writes nothing to its own
# filesystem: run it with a read-only root filesystem (compose `read_only: true`, Kubernetes
# `readOnlyRootFilesystem: true`), a tmpfs on /tmp, and a volume for anything it must keep
# (a local keyring the scheduler rotates, report files). /var/lib/rewrap exists, owned by node,
# so that a named volume mounted there starts writable by it.
#
# Health: workers and the scheduler serve /healthz and /readyz on REWRAP_METRICS_PORT (9464 here),
# bound to REWRAP_METRICS_HOST (0.0.0.0 here: loopback would hide it from probes and Prometheus);
# `rewrap api --host 0.0.0.0 --port 4600` serves them on its own port (override the HEALTHCHECK
# with `node bin/healthcheck.js http://127.0.0.1:4600/readyz`).

ARG NODE_IMAGE=node:20-slim

# --- all dependencies, for building (and for the dev target) ---------------------------------
FROM ${NODE_IMAGE} AS deps-dev
WORKDIR /src
# pkcs11js (the PKCS#11 provider) is a native addon with no prebuilt binary: node-gyp compiles it.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# --- the build: tsc to dist/ -----------------------------------------------------------------
FROM deps-dev AS build
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY src src
COPY scheduler scheduler
COPY workers workers
RUN npm run build

# --- runtime dependencies only (no tsx, no TypeScript) -----------------------------------------
# No install scripts run but pkcs11js's build (npm rebuild), with a compiler that only this stage
# has: the runtime image gets the built addon, not the toolchain.
FROM ${NODE_IMAGE} AS deps-runtime
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm rebuild pkcs11js && npm cache clean --force

# --- development image: the checkout run through tsx (compose: kms, bootstrap) ----------------
FROM deps-dev AS dev
COPY . .
RUN mkdir -p /var/lib/rewrap && chown node:node /var/lib/rewrap
USER 1000:1000
ENV REWRAP_METRICS_HOST=0.0.0.0 REWRAP_METRICS_PORT=9464
ENTRYPOINT ["node", "bin/rewrap.js"]
CMD ["--help"]

# --- the runtime image (default target) ---------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    REWRAP_METRICS_HOST=0.0.0.0 \
    REWRAP_METRICS_PORT=9464
WORKDIR /app
COPY --from=deps-runtime /app/node_modules node_modules
COPY package.json ./
COPY bin bin
COPY --from=build /src/dist dist
RUN mkdir -p /var/lib/rewrap && chown node:node /var/lib/rewrap
USER 1000:1000
EXPOSE 9464 4600
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["node", "bin/healthcheck.js"]
ENTRYPOINT ["node", "bin/rewrap.js"]
# Nothing long-running by default: name the role, e.g. `docker run IMAGE worker`.
CMD ["--help"]
