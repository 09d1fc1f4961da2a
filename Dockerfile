# keymeter: build once, run the compiled server. Without DATABASE_URL it runs its own
# PostgreSQL (embedded, the binaries come with the npm dependencies) under DATA_DIR, the
# /data volume; with it, migrations are applied at start under PostgreSQL's advisory lock,
# so replicas may start together. Node 24 is the image's LTS; the project itself still
# supports Node ≥ 20.19 (package.json engines).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY prisma.config.ts tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
# the runtime carries what runs: no TypeScript, no Prisma CLI or Studio, no test tools
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 DATA_DIR=/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma/migrations ./prisma/migrations
COPY package.json ./
# the embedded PostgreSQL refuses to run as root: the data volume belongs to the node user
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 3000
# follows PORT, whatever it is set to at run time
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/ready').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains in-flight requests for SHUTDOWN_GRACE_MS; docker's stop timeout must exceed it
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=64", "dist/server.js"]
