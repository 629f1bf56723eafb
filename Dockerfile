# langfuse-bridge: one image for the bridge (`run`) and its workers (`worker`).
# Builds offline from a registry mirror too: no BuildKit frontend to fetch, only the base image.

# Build: compile TypeScript and the SQLite addon, then keep only what `node dist/cli.js` loads.
FROM node:20-bookworm-slim AS build
# Every RUN stops at the first command that fails, pipes included.
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /app
RUN apt-get update; \
    apt-get install -y --no-install-recommends python3 make g++; \
    rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
# npm ci has been seen to exit 0 after failing to fetch packages: check the tree it left right here,
# so that a failed install fails this step, not the compile two steps later.
RUN npm ci --no-audit --no-fund; \
    npm ls --all > /dev/null; \
    test -x node_modules/.bin/tsc || { echo "npm ci left no node_modules/.bin/tsc: the install failed" >&2; exit 1; }; \
    node -e "new (require('better-sqlite3'))(':memory:').close()"
COPY tsconfig.json ./
COPY src ./src
COPY scripts/prune-runtime.mjs ./scripts/
RUN npm run build; \
    npm prune --omit=dev --no-audit --no-fund; \
    node scripts/prune-runtime.mjs /app

# Run: a slim image, no compiler, non-root. The database goes on the volume the operator mounts at
# /app/data (compose and the README's `docker run` do); workers keep no state and mount none.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    BRIDGE_DATABASE=/app/data/bridge.db \
    BRIDGE_HTTP_HOST=0.0.0.0 \
    BRIDGE_HTTP_PORT=9464
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The database holds event bodies: its folder is the bridge user's alone.
RUN install -d -o node -g node -m 0700 /app/data
USER node
# /healthz and /metrics (bridge and workers alike).
EXPOSE 9464
# node itself probes /healthz: the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.BRIDGE_HTTP_PORT||9464)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run"]
