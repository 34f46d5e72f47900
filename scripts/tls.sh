#!/usr/bin/env bash
# TLS servers of the project's own on loopback, for the amqps: and rediss: tests: a
# redis-server with only a TLS port, and a second RabbitMQ node with only an SSL listener
# (its own node name, ports, config, plugins and data dir; the machine's RabbitMQ node is
# never touched). Both use a certificate for 127.0.0.1 and localhost signed by a CA the
# script makes with openssl; clients trust $dir/ca.pem.
#
#   scripts/tls.sh start    make the certificates if needed, start what is down, wait for it
#   scripts/tls.sh stop     stop both servers
#   scripts/tls.sh env      print the FERRY_* variables the tests read
#
# Environment:
#   FERRY_TLS_DIR          certificates, configs, data and logs (default <repo>/.tls)
#   FERRY_REDISS_PORT      the redis-server's TLS port (default 16380)
#   FERRY_AMQPS_PORT       the RabbitMQ node's SSL listener (default 25691)
#   FERRY_AMQPS_NODENAME   its Erlang node name (default ferry-tls@localhost)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${FERRY_TLS_DIR:-$(cd "$here/.." && pwd)/.tls}"
host=127.0.0.1
redis_port="${FERRY_REDISS_PORT:-16380}"
amqps_port="${FERRY_AMQPS_PORT:-25691}"
# Erlang distribution (rabbitmqctl talks to the node through it), beside the listener; not
# RabbitMQ's default (AMQP port + 20000 = 25672), which the machine's node holds.
dist_port=$((amqps_port + 1))
node="${FERRY_AMQPS_NODENAME:-ferry-tls@localhost}"
rabbit="$dir/rabbitmq"

say() { echo "tls: $*" >&2; }
die() {
  say "$*"
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 deadline=$((SECONDS + ${3:-60}))
  until port_open "$port"; do
    ((SECONDS < deadline)) || die "$name did not open port $port; see its log in $dir"
    sleep 0.5
  done
}

# A CA, and a server certificate it signs for 127.0.0.1 and localhost. Made once per dir.
make_certificates() {
  [[ -f $dir/ca.pem && -f $dir/server.pem && -f $dir/server-key.pem ]] && return 0
  command -v openssl >/dev/null || die "openssl is needed to make the certificates"
  mkdir -p "$dir"
  local tmp
  tmp="$(mktemp -d "$dir/certs.XXXXXX")"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ferry test CA" \
    -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>/dev/null || die "openssl could not make the CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tmp/server-key.pem" -out "$tmp/server.csr" 2>/dev/null ||
    die "openssl could not make the server key"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
    -CAcreateserial -days 3650 -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null ||
    die "openssl could not sign the server certificate"
  # The RabbitMQ node may run as another user than the one making the files: readable keys.
  chmod 644 "$tmp"/*.pem
  mv "$tmp/ca.pem" "$tmp/server.pem" "$tmp/server-key.pem" "$dir/"
  rm -rf "$tmp"
  say "made $dir/ca.pem and a server certificate for 127.0.0.1 and localhost"
}

# A server already listening may have been started from another checkout, whose CA is not
# ours: the tests would then fail on an untrusted certificate. Say so at once instead.
check_trusted() {
  local name=$1 port=$2
  openssl s_client -connect "$host:$port" -CAfile "$dir/ca.pem" -verify_return_error </dev/null >/dev/null 2>&1 ||
    die "$name on $port presents a certificate not signed by $dir/ca.pem (started from another checkout?); stop it with scripts/tls.sh stop there"
}

start_redis() {
  if port_open "$redis_port"; then
    check_trusted "redis (TLS)" "$redis_port"
    say "redis (TLS) is up on $redis_port"
    return 0
  fi
  command -v redis-server >/dev/null || die "redis-server not found"
  mkdir -p "$dir/redis"
  redis-server --port 0 --tls-port "$redis_port" --bind "$host" \
    --tls-cert-file "$dir/server.pem" --tls-key-file "$dir/server-key.pem" \
    --tls-ca-cert-file "$dir/ca.pem" --tls-auth-clients no \
    --save "" --appendonly no --dir "$dir/redis" --daemonize yes \
    --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" ||
    die "redis-server did not start (is it built with TLS?)"
  wait_port "redis (TLS)" "$redis_port"
  say "redis (TLS) is up on $redis_port"
}

stop_redis() {
  local pid
  [[ -f $dir/redis/redis.pid ]] || return 0
  pid="$(<"$dir/redis/redis.pid")"
  if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(ps -p "$pid" -o args= 2>/dev/null)" == *":$redis_port"* ]]; then
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    say "redis (TLS) stopped"
  fi
  rm -f "$dir/redis/redis.pid"
}

# Every file the node reads is in $rabbit: nothing from /etc/rabbitmq, the machine node's.
rabbit_env() {
  env HOME="$rabbit" \
    RABBITMQ_CONF_ENV_FILE="$rabbit/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="$node" \
    RABBITMQ_NODE_IP_ADDRESS="$host" \
    RABBITMQ_NODE_PORT="$amqps_port" \
    RABBITMQ_DIST_PORT="$dist_port" \
    RABBITMQ_CONFIG_FILE="$rabbit/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$rabbit/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$rabbit/mnesia" \
    RABBITMQ_LOG_BASE="$rabbit/log" \
    RABBITMQ_PID_FILE="$rabbit/rabbitmq.pid" \
    ERL_EPMD_ADDRESS="$host" \
    "$@"
}

rabbit_bin() {
  local found
  for found in /usr/lib/rabbitmq/bin/"$1" "$(command -v "$1" 2>/dev/null || true)"; do
    [[ -x $found ]] && {
      echo "$found"
      return 0
    }
  done
  die "$1 not found"
}

start_rabbitmq() {
  if port_open "$amqps_port"; then
    check_trusted "rabbitmq (TLS)" "$amqps_port"
    say "rabbitmq (TLS) is up on $amqps_port"
    return 0
  fi
  mkdir -p "$rabbit/mnesia" "$rabbit/log"
  # The node's own cookie, in its HOME; the CLI below runs with the same HOME.
  [[ -f $rabbit/.erlang.cookie ]] || {
    head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$rabbit/.erlang.cookie"
    chmod 400 "$rabbit/.erlang.cookie"
  }
  : >"$rabbit/rabbitmq-env.conf"
  echo '[].' >"$rabbit/enabled_plugins"
  echo '[].' >"$rabbit/advanced.config"
  cat >"$rabbit/rabbitmq.conf" <<EOF
listeners.tcp = none
listeners.ssl.default = $host:$amqps_port
ssl_options.cacertfile = $dir/ca.pem
ssl_options.certfile = $dir/server.pem
ssl_options.keyfile = $dir/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
  rabbit_env "$(rabbit_bin rabbitmq-server)" -detached >/dev/null 2>&1 ||
    die "rabbitmq-server did not start; see $rabbit/log"
  # `wait` follows the pid file the node writes, then waits for its boot to finish.
  rabbit_env "$(rabbit_bin rabbitmqctl)" -n "$node" -q wait "$rabbit/rabbitmq.pid" --timeout 120 >/dev/null ||
    die "rabbitmq ($node) did not start; see $rabbit/log"
  wait_port "rabbitmq (TLS)" "$amqps_port"
  say "rabbitmq (TLS) is up on $amqps_port (node $node)"
}

stop_rabbitmq() {
  [[ -f $rabbit/.erlang.cookie ]] || return 0
  # -n: only this node, never the machine's.
  if rabbit_env "$(rabbit_bin rabbitmqctl)" -n "$node" -q stop >/dev/null 2>&1; then
    say "rabbitmq (TLS) stopped"
  fi
}

case "${1:-}" in
  start)
    make_certificates
    start_redis
    start_rabbitmq
    ;;
  stop)
    stop_redis
    stop_rabbitmq
    ;;
  env)
    echo "FERRY_TLS_CA=$dir/ca.pem"
    echo "FERRY_REDISS_URL=rediss://$host:$redis_port"
    echo "FERRY_AMQPS_URL=amqps://guest:guest@$host:$amqps_port"
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
