#!/usr/bin/env bash
# Three-node Apache Kafka cluster (KRaft, each node a combined broker + controller, the three
# controllers one quorum of three voters) on loopback, from the same Maven Central jars as
# kafka.sh. For the failover test: brokers can be killed and restarted one at a time.
#
#   scripts/kafka/cluster.sh start          start every node that is down, wait until all answer
#   scripts/kafka/cluster.sh stop           stop every node (SIGTERM, then SIGKILL)
#   scripts/kafka/cluster.sh kill <id>      SIGKILL node <id> (1..3), as a crash would
#   scripts/kafka/cluster.sh start-node <id>  start node <id> again, wait until it answers
#   scripts/kafka/cluster.sh pid <id>       print node <id>'s pid if it runs, else exit 1
#   scripts/kafka/cluster.sh brokers        print the bootstrap list (host:port,...)
#
# Node n listens for clients on base + 2(n-1) and for its controller on the port after it:
# with the default base 19092, ports 19092..19097. When a start finds none of its nodes running
# and one of those ports taken (say, by a cluster some other checkout left behind), it moves to
# the next free block of six (19192, 19292, ...) and records it in the data dir, where every
# later command reads it.
#
# Environment:
#   FERRY_KAFKA_CLUSTER_PORT     client port of node 1, used as given (default: the recorded
#                                port, else 19092 or the next free block)
#   FERRY_KAFKA_CLUSTER_DIR      data dir (default <repo>/.kafka-cluster): one node-<id> dir each
#   FERRY_KAFKA_CLUSTER_HEAP     -Xmx of each broker JVM (default 384m)
#   FERRY_KAFKA_START_TIMEOUT    seconds to wait for the nodes to answer (default 120)
#   JAVA_HOME                    Java 17+ to use (default: java on PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lib="$here/lib"
data="${FERRY_KAFKA_CLUSTER_DIR:-$(cd "$here/../.." && pwd)/.kafka-cluster}"
host=127.0.0.1
ports_file="$data/base-port"
if [[ -n ${FERRY_KAFKA_CLUSTER_PORT:-} ]]; then
  base=$FERRY_KAFKA_CLUSTER_PORT
  base_fixed=1
elif [[ -f $ports_file ]]; then
  base="$(<"$ports_file")"
  base_fixed=0
else
  base=19092
  base_fixed=0
fi
heap="${FERRY_KAFKA_CLUSTER_HEAP:-384m}"
start_timeout="${FERRY_KAFKA_START_TIMEOUT:-120}"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
log4j_config="$here/log4j2.properties"
nodes=(1 2 3)

say() { echo "kafka-cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

client_port() { echo $((base + 2 * ($1 - 1))); }
controller_port() { echo $((base + 2 * ($1 - 1) + 1)); }
node_dir() { echo "$data/node-$1"; }

voters() {
  local n out=()
  for n in "${nodes[@]}"; do out+=("$n@$host:$(controller_port "$n")"); done
  local IFS=,
  echo "${out[*]}"
}

brokers() {
  local n out=()
  for n in "${nodes[@]}"; do out+=("$host:$(client_port "$n")"); done
  local IFS=,
  echo "${out[*]}"
}

check_node() {
  [[ $1 =~ ^[123]$ ]] || die "node id must be 1, 2 or 3, got '$1'"
}

port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

# kill -0 alone would count a zombie (an exited, unreaped child) as alive.
alive() {
  local state
  state="$(ps -p "$1" -o stat= 2>/dev/null)" || return 1
  [[ $state != Z* ]]
}

# Prints node $1's pid if its pid file names a live Kafka broker of this data dir.
running_pid() {
  local pid file
  file="$(node_dir "$1")/kafka.pid"
  [[ -f $file ]] || return 1
  pid="$(<"$file")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  [[ "$(ps -p "$pid" -o args= 2>/dev/null)" == *"$(node_dir "$1")/server.properties"* ]] || return 1
  echo "$pid"
}

# Replication 3 and min.insync.replicas 2 everywhere, internal topics included: a write is
# acked by two brokers at least, and one broker may be down without stopping writes.
# Short broker sessions so a killed broker is fenced (and its partitions move) in seconds.
write_config() {
  local n=$1 dir
  dir="$(node_dir "$n")"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://$host:$(client_port "$n"),CONTROLLER://$host:$(controller_port "$n")
advertised.listeners=PLAINTEXT://$host:$(client_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/logs

num.partitions=3
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000

offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
share.coordinator.state.topic.num.partitions=3

# Few threads: three brokers share a small machine.
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.cleaner.threads=1
EOF
}

run_tool() {
  "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$log4j_config" -cp "$lib/*" "$@"
}

# Every node is formatted with the same cluster id; the static voter list makes them one quorum.
format_storage() {
  local n cluster_id
  if [[ -f $data/cluster-id ]]; then
    cluster_id="$(<"$data/cluster-id")"
  else
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    echo "$cluster_id" >"$data/cluster-id"
  fi
  local pids=() failed=0 pid
  for n in "$@"; do
    [[ -f "$(node_dir "$n")/logs/meta.properties" ]] && continue
    run_tool kafka.tools.StorageTool format --config "$(node_dir "$n")/server.properties" \
      --cluster-id "$cluster_id" >/dev/null &
    pids+=("$!")
  done
  for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" || failed=1; done
  ((failed == 0)) || die "could not format the storage of node(s) $*"
}

launch() {
  local n=$1 dir pid
  dir="$(node_dir "$n")"
  [[ -f $dir/kafka.log ]] && mv -f "$dir/kafka.log" "$dir/kafka.log.1"
  port_open "$(client_port "$n")" && die "port $(client_port "$n") is in use by another process"
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  # A small heap and the serial collector: three brokers and the test share two cores.
  ${launcher[@]+"${launcher[@]}"} "$java" -Xms128m -Xmx"$heap" -XX:+UseSerialGC \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j_config" -Dlog4j2.shutdownHookEnabled=false \
    -cp "$lib/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >"$dir/kafka.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  say "node $n starting (pid $pid, port $(client_port "$n"))"
}

# A node is ready once it logged its start (a KRaft broker logs it after catching up with the
# metadata quorum and being unfenced) and its client port accepts connections.
wait_ready() {
  local deadline=$((SECONDS + start_timeout)) n pid pending
  while :; do
    pending=()
    for n in "$@"; do
      pid="$(running_pid "$n")" || {
        say "node $n exited during startup; last log lines:"
        tail -n 30 "$(node_dir "$n")/kafka.log" >&2 || true
        return 1
      }
      if ! grep -q 'Kafka Server started' "$(node_dir "$n")/kafka.log" 2>/dev/null ||
        ! port_open "$(client_port "$n")"; then
        pending+=("$n")
      fi
    done
    ((${#pending[@]} == 0)) && return 0
    if ((SECONDS > deadline)); then
      say "node(s) ${pending[*]} did not start within ${start_timeout}s; last log lines:"
      for n in "${pending[@]}"; do tail -n 20 "$(node_dir "$n")/kafka.log" >&2 || true; done
      return 1
    fi
    sleep 0.5
  done
}

block_free() {
  local n
  for n in "${nodes[@]}"; do
    port_open "$(client_port "$n")" && return 1
    port_open "$(controller_port "$n")" && return 1
  done
  return 0
}

# With no node of this data dir running, the ports may move: to the first free block from
# 19092 on, unless FERRY_KAFKA_CLUSTER_PORT fixes them. The nodes' storage is formatted anew
# for new ports, as the controllers' addresses are part of it.
choose_base() {
  local n try
  for n in "${nodes[@]}"; do running_pid "$n" >/dev/null && return 0; done
  ((base_fixed)) && return 0
  block_free && return 0
  for ((try = 0; try < 20; try++)); do
    base=$((19092 + 100 * try))
    if block_free; then
      say "ports in use; moving to $base..$((base + 2 * ${#nodes[@]} - 1))"
      rm -rf "$data"/node-* "$data/cluster-id"
      echo "$base" >"$ports_file"
      return 0
    fi
  done
  die "no free block of $((2 * ${#nodes[@]})) ports from 19092 to $base"
}

start_nodes() {
  local n t0=$SECONDS down=()
  bash "$here/kafka.sh" fetch
  mkdir -p "$data"
  exec 9>"$data/.lock"
  flock -w $((start_timeout + 30)) 9 || die "timed out waiting for another start"
  choose_base
  for n in "$@"; do
    running_pid "$n" >/dev/null && continue
    mkdir -p "$(node_dir "$n")"
    write_config "$n"
    down+=("$n")
  done
  if ((${#down[@]})); then
    format_storage "${down[@]}"
    for n in "${down[@]}"; do launch "$n"; done
  fi
  wait_ready "$@" || return 1
  say "node(s) $* up in $((SECONDS - t0))s; bootstrap $(brokers)"
}

stop_node() {
  local n=$1 pid i
  pid="$(running_pid "$n")" || {
    rm -f "$(node_dir "$n")/kafka.pid"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    say "node $n (pid $pid) did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$(node_dir "$n")/kafka.pid"
  say "node $n stopped (pid $pid)"
}

cmd_stop() {
  local n pid
  # The last voters cannot shut down cleanly once the quorum is gone: kill them all at once
  # after asking, rather than waiting for each in turn.
  for n in "${nodes[@]}"; do
    pid="$(running_pid "$n")" && kill -TERM "$pid" 2>/dev/null || true
  done
  for n in "${nodes[@]}"; do stop_node "$n"; done
}

cmd_kill() {
  local n=$1 pid
  check_node "$n"
  pid="$(running_pid "$n")" || die "node $n is not running"
  kill -KILL "$pid"
  while alive "$pid"; do sleep 0.1; done
  rm -f "$(node_dir "$n")/kafka.pid"
  say "node $n killed (pid $pid)"
}

case "${1:-}" in
  start) start_nodes "${nodes[@]}" ;;
  stop) cmd_stop ;;
  kill) cmd_kill "${2:-}" ;;
  start-node)
    check_node "${2:-}"
    start_nodes "$2"
    ;;
  pid)
    check_node "${2:-}"
    running_pid "$2"
    ;;
  brokers) brokers ;;
  *)
    echo "usage: $0 start|stop|kill <id>|start-node <id>|pid <id>|brokers" >&2
    exit 2
    ;;
esac
