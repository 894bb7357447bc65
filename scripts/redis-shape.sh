#!/usr/bin/env bash
# Local Redis deployments for the tests, each made of plain `redis-server` processes on free
# loopback ports, with everything (configs, pid files, logs, certificates) under DIR:
#
#   scripts/redis-shape.sh start tls      DIR   # one server, TLS only, with a CA made here
#   scripts/redis-shape.sh start sentinel DIR   # 1 master, 1 replica, 3 sentinels ("mymaster")
#   scripts/redis-shape.sh start cluster  DIR   # 3 masters, all 16384 slots assigned
#   scripts/redis-shape.sh stop DIR
#
# `start` prints the settings the test harness reads (KEY=VALUE lines: TEST_REDIS_SHAPE and
# the shape's addresses) and writes them to DIR/env as well.
set -euo pipefail

# A free port below 45000 whose +10000 twin (Redis Cluster's bus port) is free too.
free_port() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 45000)
    if free(p) and free(p + 10000):
        print(p); break
PY
}

wait_for() { # command...
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "redis-shape: timed out waiting for: $*" >&2
  return 1
}

server() { # port extra-args...
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$DIR" --pidfile "$DIR/redis-$port.pid" --logfile "$DIR/redis-$port.log" "$@"
}

start_tls() {
  local port; port=$(free_port)
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mbpanel test CA" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$DIR/san.ext"
  openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
    -CAcreateserial -days 2 -extfile "$DIR/san.ext" -out "$DIR/server.crt" 2>/dev/null
  redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --dir "$DIR" --pidfile "$DIR/redis-$port.pid" --logfile "$DIR/redis-$port.log" \
    --tls-cert-file "$DIR/server.crt" --tls-key-file "$DIR/server.key" \
    --tls-ca-cert-file "$DIR/ca.crt" --tls-auth-clients no
  wait_for redis-cli --tls --cacert "$DIR/ca.crt" -p "$port" ping
  {
    echo "TEST_REDIS_SHAPE=tls"
    echo "TEST_REDIS_URL=rediss://127.0.0.1:$port"
    echo "TEST_REDIS_CA_CERT=$DIR/ca.crt"
  } >"$DIR/env"
}

start_sentinel() {
  local master replica sentinels=()
  master=$(free_port); replica=$(free_port)
  server "$master"
  server "$replica" --replicaof 127.0.0.1 "$master"
  wait_for redis-cli -p "$master" ping
  for _ in 1 2 3; do
    local port; port=$(free_port)
    cat >"$DIR/sentinel-$port.conf" <<EOF
port $port
bind 127.0.0.1
daemonize yes
pidfile $DIR/redis-$port.pid
logfile $DIR/redis-$port.log
dir $DIR
sentinel monitor mymaster 127.0.0.1 $master 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
EOF
    redis-server "$DIR/sentinel-$port.conf" --sentinel
    sentinels+=("$port")
  done
  for port in "${sentinels[@]}"; do
    wait_for bash -c "redis-cli -p $port sentinel replicas mymaster | grep -q $replica"
  done
  wait_for bash -c "redis-cli -p $replica info replication | grep -q master_link_status:up"
  local list=""
  for port in "${sentinels[@]}"; do list="${list:+$list,}redis://127.0.0.1:$port"; done
  {
    echo "TEST_REDIS_SHAPE=sentinel"
    echo "TEST_REDIS_SENTINELS=$list"
    echo "TEST_REDIS_SENTINEL_MASTER=mymaster"
  } >"$DIR/env"
}

start_cluster() {
  local ports=() addrs=() list=""
  for _ in 1 2 3; do
    local port; port=$(free_port)
    server "$port" --cluster-enabled yes --cluster-config-file "$DIR/nodes-$port.conf" \
      --cluster-node-timeout 2000
    ports+=("$port"); addrs+=("127.0.0.1:$port")
  done
  for port in "${ports[@]}"; do wait_for redis-cli -p "$port" ping; done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log"
  for port in "${ports[@]}"; do
    wait_for bash -c "redis-cli -p $port cluster info | grep -q cluster_state:ok"
    list="${list:+$list,}redis://127.0.0.1:$port"
  done
  {
    echo "TEST_REDIS_SHAPE=cluster"
    echo "TEST_REDIS_CLUSTER_NODES=$list"
  } >"$DIR/env"
}

stop_all() {
  for pidfile in "$DIR"/redis-*.pid; do
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}

cmd=${1:?usage: redis-shape.sh start tls|sentinel|cluster DIR | stop DIR}
case "$cmd" in
  start)
    shape=${2:?shape}; DIR=${3:?dir}; mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
    case "$shape" in
      tls) start_tls ;;
      sentinel) start_sentinel ;;
      cluster) start_cluster ;;
      *) echo "unknown shape $shape" >&2; exit 2 ;;
    esac
    cat "$DIR/env"
    ;;
  stop)
    DIR=${2:?dir}; stop_all ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
