#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the black-box suite in both modes
# (embedded: SQLite + in-process store; production: PostgreSQL + Redis), then the production
# half of the black-box suite again against each other Redis shape — TLS with a private CA,
# Sentinel (1 master, 1 replica, 3 sentinels) and a 3-master Cluster — made of local
# redis-server processes by scripts/redis-shape.sh (set MBPANEL_REDIS_SHAPES="" to skip them,
# or to a subset such as "cluster"); the shapes run side by side. Filters given as arguments skip
# the shape runs.
#
# PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379) are started when they
# are not answering, and installed with apt-get when absent, as are Chromium and chromedriver
# (for the web UI tests), axe-core (npm, into /var/tmp/mbpanel-npm) and PgBouncer (for the PostgreSQL deployment tests). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
export TEST_DATABASE_ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@${PG_HOST}:${PG_PORT}/postgres}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

log() { printf '[test.sh] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_answers() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
postgres_accepts_us() { psql "$TEST_DATABASE_ADMIN_URL" -tAc 'SELECT 1' >/dev/null 2>&1; }

ensure_postgres() {
  if ! command -v pg_isready >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    postgres_answers 2>/dev/null && return 0
    apt_install postgresql postgresql-client
  fi
  if ! postgres_answers; then
    log "starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do postgres_answers && break; sleep 0.5; done
  fi
  postgres_answers || { log "PostgreSQL does not answer on ${PG_HOST}:${PG_PORT}"; exit 1; }
  if ! postgres_accepts_us; then
    # A fresh Debian cluster wants passwords over TCP; the tests connect as postgres from
    # loopback only, so trust loopback on this test machine.
    log "allowing trust authentication from loopback for the tests"
    local hba
    hba=$(as_root su postgres -c "psql -tAc 'SHOW hba_file'")
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root su postgres -c "psql -tAc 'SELECT pg_reload_conf()'" >/dev/null
    sleep 1
  fi
  postgres_accepts_us || { log "cannot connect with $TEST_DATABASE_ADMIN_URL"; exit 1; }
}

redis_answers() { redis-cli -u "$TEST_REDIS_URL" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis_answers; then
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 40); do redis_answers && break; sleep 0.25; done
  fi
  redis_answers || { log "Redis does not answer at $TEST_REDIS_URL"; exit 1; }
}

# The web UI test drives a real headless Chromium through chromedriver.
ensure_redis_tools() {
  command -v openssl >/dev/null || apt_install openssl
  command -v python3 >/dev/null || apt_install python3
}

ensure_browser() {
  if ! command -v chromedriver >/dev/null || [ ! -x /usr/bin/chromium ]; then
    apt_install chromium chromium-driver
  fi
}

# The web UI tests run axe-core (npm package) in the page: installed once into a cache outside
# the repository (MBPANEL_NPM_CACHE, default /var/tmp/mbpanel-npm); never committed.
ensure_axe() {
  local cache="${MBPANEL_NPM_CACHE:-/var/tmp/mbpanel-npm}"
  export MBPANEL_AXE="$cache/node_modules/axe-core/axe.min.js"
  [ -f "$MBPANEL_AXE" ] && return 0
  command -v npm >/dev/null || apt_install npm
  log "npm install axe-core into $cache"
  npm install --silent --no-audit --no-fund --prefix "$cache" axe-core >/dev/null
}

# The PostgreSQL deployment tests run a private PgBouncer (transaction pooling) and private
# PostgreSQL clusters (initdb, pg_basebackup; from the postgresql package above).
ensure_pgbouncer() {
  if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
    apt_install pgbouncer
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
  fi
}

drop_leftover_test_databases() {
  psql "$TEST_DATABASE_ADMIN_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'mbpanel_test_%'" |
    while read -r db; do
      [ -n "$db" ] && psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
    done
}

ensure_postgres
ensure_redis
ensure_redis_tools
ensure_browser
ensure_axe
ensure_pgbouncer
drop_leftover_test_databases
log "PostgreSQL, Redis, PgBouncer and Chromium are ready; running cargo test"
cargo test "$@"

# The shape runs take the same cargo flags but no test-name filter.
flags=()
for arg in "$@"; do
  case "$arg" in
    --*) flags+=("$arg") ;;
    *) log "a test filter was given: skipping the Redis shape runs"; exit 0 ;;
  esac
done
# The shapes run side by side (each on its own servers and databases); their output is shown
# shape by shape once all have ended. They run the black-box binary the run above built (a
# `cargo test --test api` would select other targets, unify features differently and rebuild).
shapes=(${MBPANEL_REDIS_SHAPES-tls sentinel cluster})
api_bin=$(cargo test "${flags[@]}" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "api" and m.get("executable"):
        print(m["executable"])')
[ -x "$api_bin" ] || { log "cannot find the black-box test binary"; exit 1; }
declare -A shape_dir shape_pid
for shape in "${shapes[@]}"; do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/mbpanel-redis-$shape.XXXXXX")
  shape_dir[$shape]=$dir
  log "Redis $shape: starting local servers"
  scripts/redis-shape.sh start "$shape" "$dir" >/dev/null
  log "Redis $shape: running the production half of the black-box suite"
  # The timing-parity test compares two paths that do the same Redis work: it says nothing
  # about the shape, and three shape runs side by side on 2 cores make it a noise test. It runs
  # in the main run above, in both modes.
  # Each shape run writes its browser screenshots to a folder of its own.
  (set -a; . "$dir/env"; set +a
   export MBPANEL_UI_SCREENSHOTS="${CARGO_TARGET_DIR:-target}/ui-screenshots/redis-$shape"
   exec "$api_bin" production --skip take_as_long_for_unknown) \
    >"$dir/test.log" 2>&1 &
  shape_pid[$shape]=$!
done
failed=()
for shape in "${shapes[@]}"; do
  dir=${shape_dir[$shape]}
  status=0
  wait "${shape_pid[$shape]}" || status=$?
  log "Redis $shape: output of the production half"
  cat "$dir/test.log"
  scripts/redis-shape.sh stop "$dir"
  rm -rf "$dir"
  [ "$status" -eq 0 ] || { log "Redis $shape: tests failed"; failed+=("$shape"); }
done
[ "${#failed[@]}" -eq 0 ] || { log "failed shapes: ${failed[*]}"; exit 1; }
