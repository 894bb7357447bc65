#!/usr/bin/env bash
# Row writes (pg_stat_database: inserted + updated + deleted tuples) of one sign-in, step by step,
# against a release build in production mode (PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379).
set -e
BIN="${CARGO_TARGET_DIR:-target}/release/mbpanel-auth"
DB=mbpanel_writes_$$; PORT=28765
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="w$$:" JWT_SECRET_KEY="writes-benchmark-key-of-at-least-32-bytes!!" BIND_ADDR=127.0.0.1:$PORT BASE_URL=http://127.0.0.1:$PORT LOG_LEVEL=info RETENTION_INTERVAL_SECONDS=86400
$BIN serve > /tmp/writes.log 2>&1 &
PID=$!
until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.05; done
writes() { sleep 3; psql "$DATABASE_URL" -tAc "SELECT pg_stat_clear_snapshot(); SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()" | tail -1; }
B=http://127.0.0.1:$PORT/api/v1
J='Content-Type: application/json'
curl -s -XPOST $B/auth/register -H "$J" -d '{"email":"w@example.com","password":"a long password 123","name":"W"}' >/dev/null
sleep 1.5
TOKEN=$(grep -o 'token=[A-Za-z0-9_-]*' /tmp/writes.log | head -1 | cut -d= -f2)
curl -s -XPOST $B/auth/verify-email -H "$J" -d "{\"token\":\"$TOKEN\"}" >/dev/null
sleep 2
w0=$(writes)
PRE=$(curl -s -c /tmp/jar -b /tmp/jar -XPOST $B/auth/login -H "$J" -d '{"email":"w@example.com","password":"a long password 123"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["preauth_token"])')
w1=$(writes)
sleep 1
CODE=$(grep -o 'verification code: [0-9]\{6\}' /tmp/writes.log | tail -1 | awk '{print $3}')
curl -s -c /tmp/jar -b /tmp/jar -XPOST $B/auth/otp/verify -H "$J" -d "{\"preauth_token\":\"$PRE\",\"code\":\"$CODE\"}" >/dev/null
w2=$(writes)
curl -s -c /tmp/jar -b /tmp/jar -XPOST $B/auth/session-exchange -H "$J" -d "{\"preauth_token\":\"$PRE\"}" >/dev/null
w3=$(writes)
CSRF=$(grep mbpanel_csrf /tmp/jar | awk '{print $7}')
curl -s -c /tmp/jar -b /tmp/jar -XPOST $B/auth/refresh -H "X-CSRF-Token: $CSRF" >/dev/null
w4=$(writes)
echo "row writes: login $((w1-w0)) (incl. the emailed code's outbox row), code $((w2-w1)), exchange $((w3-w2)), refresh $((w4-w3))"
kill $PID; wait $PID 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
