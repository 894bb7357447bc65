#!/usr/bin/env bash
# Start-up time with many revoked sessions in PostgreSQL: nothing is rebuilt at start-up, so
# the time to listen must not grow with the table. Inserts N revoked (unexpired) sessions into
# a fresh database, then times `serve` from exec to the first answer of /healthz.
#
#     bench/startup.sh [N=1000000]
# Needs a release build (cargo build --release --bin mbpanel-auth), PostgreSQL on
# 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
BIN="${CARGO_TARGET_DIR:-target}/release/mbpanel-auth"
DB="mbpanel_startup_$$"
PORT=$((20000 + RANDOM % 20000))
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379
export REDIS_KEY_PREFIX="startup$$:" JWT_SECRET_KEY="startup-benchmark-key-of-at-least-32-bytes"
export BIND_ADDR="127.0.0.1:$PORT" LOG_LEVEL=warn
"$BIN" migrate >/dev/null
NOW_MS=$(($(date +%s) * 1000))
psql "$DATABASE_URL" -qc "
INSERT INTO users (email, name, password_hash, created_at, updated_at) VALUES ('startup@example.com', 's', 'x', $NOW_MS, $NOW_MS);
INSERT INTO teams (name, owner_user_id, created_at) VALUES ('t', 1, $NOW_MS);
INSERT INTO active_sessions (user_id, team_id, refresh_token_jti, created_at, last_seen_at, expires_at, revoked_at, revoked_reason)
SELECT 1, 1, 'jti' || g, $NOW_MS, $NOW_MS, $NOW_MS + 86400000, $NOW_MS - g, 'logout' FROM generate_series(1, $N) g;"
echo "revoked sessions: $(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM active_sessions WHERE revoked_at IS NOT NULL')"
start=$(date +%s%N)
"$BIN" serve &
pid=$!
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.01; done
end=$(date +%s%N)
kill "$pid"; wait "$pid" 2>/dev/null || true
echo "listening after $(( (end - start) / 1000000 )) ms"
