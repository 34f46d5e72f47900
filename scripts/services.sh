#!/usr/bin/env bash
# Makes sure the services the integration suites use are up on loopback, starting the ones
# that are down with the machine's own commands, starts Kafka from scripts/kafka and the
# project's own TLS Redis and RabbitMQ from scripts/tls.sh (`scripts/tls.sh env` prints the
# variables the tests read).
# Usage: scripts/services.sh start | stop-kafka | stop-tls
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 deadline=$((SECONDS + 60))
  until port_open "$port"; do
    if ((SECONDS > deadline)); then
      echo "services: $name did not open port $port" >&2
      return 1
    fi
    sleep 0.5
  done
}

ensure() {
  local name=$1 port=$2
  shift 2
  if port_open "$port"; then
    echo "services: $name is up on $port"
    return 0
  fi
  echo "services: starting $name"
  "$@" || true
  wait_port "$name" "$port"
}

start() {
  ensure postgresql 5432 sh -c 'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start'
  ensure mariadb 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  ensure redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  ensure rabbitmq 5672 rabbitmq-server -detached
  # The STOMP adapter ships with RabbitMQ; it only needs enabling (idempotent).
  if ! port_open 61613; then
    rabbitmq-plugins enable --quiet rabbitmq_stomp >/dev/null
    wait_port rabbitmq-stomp 61613
  fi
  echo "services: rabbitmq stomp is up on 61613"
  bash "$here/kafka/kafka.sh" start
  bash "$here/tls.sh" start
}

case "${1:-}" in
  start) start ;;
  stop-kafka) bash "$here/kafka/kafka.sh" stop ;;
  stop-tls) bash "$here/tls.sh" stop ;;
  *)
    echo "usage: $0 start | stop-kafka | stop-tls" >&2
    exit 2
    ;;
esac
