# syntax=docker/dockerfile:1
# Build: compile TypeScript and the SQLite addon, then keep only production dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run: a slim image, no compiler, non-root, the database on a volume.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    BRIDGE_DATABASE=/app/data/bridge.db \
    BRIDGE_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
# /healthz and /metrics when BRIDGE_HTTP_PORT=9464 is set.
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run"]
