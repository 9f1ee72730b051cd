# syntax=docker/dockerfile:1
# One image for every command: `docker run IMAGE egress|auth-server|ingress|client|demo`.
#
# Runtime base: the official node:24-bookworm-slim (Node 24 LTS, glibc, `node` on PATH), so the
# entrypoint is exactly the CLI's `node dist/cli.js`. Distroless nodejs24 would be smaller, but it
# has no `node` on PATH (its binary is /nodejs/bin/node) and no shell for `kubectl exec`
# debugging; the slim image plus a numeric non-root user and a read-only root filesystem gives
# the same runtime guarantees. Pin a digest in production: --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:...
ARG NODE_IMAGE=node:24-bookworm-slim

# Production dependencies only, in their own stage so the layer is cached until the lockfile changes.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Compile TypeScript with the full (dev) dependency set; nothing from here but dist/ is kept.
# --ignore-scripts: tsc needs no install script, and the test tooling's native ones (jest's
# watcher, swc) would want a compiler toolchain the slim image does not have.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root and unwritable by the runtime user; nothing is written at run time,
# so the container runs with readOnlyRootFilesystem: true and no writable volume.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# 65532 is the conventional "nonroot" UID/GID (distroless, Kubernetes examples): numeric, so
# runAsNonRoot can verify it without an /etc/passwd lookup.
USER 65532:65532
# 15080 egress proxy (loopback by default), 15081 admin (/healthz /readyz /metrics), 8080 auth-server/ingress.
EXPOSE 15080 15081 8080
# The CLI handles SIGTERM itself (drains, exits 0), so node can run as PID 1 without an init.
STOPSIGNAL SIGTERM
# No CMD: the command (egress, auth-server, ...) is always named explicitly, as Kubernetes `args`.
# --max-semi-space-size=2 (MiB of V8's young generation): on Node 24 the egress's peak RSS at
# saturation falls from ~160 to ~109 MiB for ~5% more CPU per request (scavenges every ~12 ms
# instead of ~64 ms; 4 MiB: ~120 MiB at the default's CPU; 1 MiB: +25% CPU), npm run bench --
# footprint and docs/design.md#footprint-per-pod: the request churn is short-lived.
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/cli.js"]
