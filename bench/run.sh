#!/usr/bin/env bash
# Builds the benchmark (release) and runs the session-core load benchmark in both modes, each
# beside an axum hello-world in the same run: `bench/run.sh [seconds=10] [connections=64]`.
# Production mode uses PostgreSQL on 127.0.0.1:5432 (user postgres; a fresh database is made
# and dropped) and Redis on 127.0.0.1:6379 (a key prefix of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${1:-10}"
CONNECTIONS="${2:-64}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin mbpanel-auth --example hello --example loadgen
"$TARGET/release/examples/loadgen" embedded "$SECONDS_PER_PHASE" "$CONNECTIONS"
DB="mbpanel_bench_$$"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379 \
  "$TARGET/release/examples/loadgen" production "$SECONDS_PER_PHASE" "$CONNECTIONS"
