#!/usr/bin/env bash
# Single-node Apache Kafka broker (KRaft, combined broker + controller) run
# from Maven Central jars, for tests and for machines without Docker. Beside the plain
# listener it opens the ones managed Kafka services use: SASL (PLAIN, SCRAM-SHA-256 and
# SCRAM-SHA-512, one user) without TLS, TLS alone, and SASL over TLS, with a self-signed
# certificate the script makes (its PEM is the CA clients trust: $data/tls/ca.pem).
#
#   scripts/kafka/kafka.sh start    fetch jars if needed, start, wait until it answers
#   scripts/kafka/kafka.sh stop     stop the broker started from the data dir
#   scripts/kafka/kafka.sh status   exit 0 if a broker answers on the port, else 1
#   scripts/kafka/kafka.sh fetch    only fetch the jars (cluster.sh runs the same jars)
#
# Environment:
#   FERRY_KAFKA_PORT           client port (default 9092); the controller uses port + 1
#   FERRY_KAFKA_SASL_PORT      SASL_PLAINTEXT listener (default port + 2)
#   FERRY_KAFKA_TLS_PORT       SSL listener (default port + 3)
#   FERRY_KAFKA_SASL_TLS_PORT  SASL_SSL listener (default port + 4)
#   FERRY_KAFKA_USER           SASL user (default ferry)
#   FERRY_KAFKA_PASSWORD       its password, for every mechanism (default ferry-secret)
#   FERRY_KAFKA_DIR            data dir (default <repo>/.kafka): config, logs, pid, log file
#   FERRY_KAFKA_START_TIMEOUT  seconds to wait for the broker to answer (default 90)
#   JAVA_HOME                  Java 17+ to use (default: java on PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lib="$here/lib"
data="${FERRY_KAFKA_DIR:-$(cd "$here/../.." && pwd)/.kafka}"
host=127.0.0.1
port="${FERRY_KAFKA_PORT:-9092}"
controller_port=$((port + 1))
sasl_port="${FERRY_KAFKA_SASL_PORT:-$((port + 2))}"
tls_port="${FERRY_KAFKA_TLS_PORT:-$((port + 3))}"
sasl_tls_port="${FERRY_KAFKA_SASL_TLS_PORT:-$((port + 4))}"
user="${FERRY_KAFKA_USER:-ferry}"
password="${FERRY_KAFKA_PASSWORD:-ferry-secret}"
tls_dir="$data/tls"
# The keystore password only guards a file in the data dir; the certificate is for loopback.
store_password=ferry-local
bootstrap="$host:$port"
start_timeout="${FERRY_KAFKA_START_TIMEOUT:-90}"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
config="$data/server.properties"
pid_file="$data/kafka.pid"
log_file="$data/kafka.log"
log4j_config="$here/log4j2.properties"

say() { echo "kafka: $*" >&2; }
die() { say "$*"; exit 1; }

fetch_jars() {
  local stamp want tmp out
  # Re-fetch whenever pom.xml changes (e.g. a version bump).
  want="$(cksum <"$here/pom.xml")"
  stamp="$lib/.pom-cksum"
  if [[ -f $stamp && "$(<"$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found; it is needed once to fetch the Kafka jars"
  say "fetching jars into $lib"
  tmp="$lib.tmp.$$"
  rm -rf "$tmp"
  if ! out="$(mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1)"; then
    printf '%s\n' "$out" >&2
    rm -rf "$tmp"
    die "jar fetch failed"
  fi
  echo "$want" >"$tmp/.pom-cksum"
  rm -rf "$lib"
  mv "$tmp" "$lib"
}

# Short-lived JVM for Kafka's CLI classes: small heap, fast startup.
run_tool() {
  "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$log4j_config" -cp "$lib/*" "$@"
}

port_open() {
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# A real round trip: the admin client fetches metadata and lists topics.
answering() {
  port_open || return 1
  run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --list \
    --command-config <(printf '%s\n' request.timeout.ms=10000 default.api.timeout.ms=15000 \
      socket.connection.setup.timeout.ms=5000 socket.connection.setup.timeout.max.ms=5000) \
    >/dev/null 2>&1
}

# kill -0 alone would count a zombie (an exited, unreaped child) as alive.
alive() {
  local state
  state="$(ps -p "$1" -o stat= 2>/dev/null)" || return 1
  [[ $state != Z* ]]
}

# Prints the pid from the pid file if that process is alive and is a Kafka broker.
running_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid="$(<"$pid_file")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  # No `ps | grep -q` here: under pipefail a SIGPIPE'd ps would read as "not ours".
  [[ "$(ps -p "$pid" -o args= 2>/dev/null)" == *kafka.Kafka* ]] || return 1
  echo "$pid"
}

write_config() {
  cat >"$config" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$host:$controller_port
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port,SASL_PLAINTEXT://$host:$sasl_port,SSL://$host:$tls_port,SASL_SSL://$host:$sasl_tls_port
advertised.listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port,SASL_PLAINTEXT://$host:$sasl_port,SSL://$host:$tls_port,SASL_SSL://$host:$sasl_tls_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
$(sasl_config sasl_plaintext)
$(sasl_config sasl_ssl)
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls_dir/broker.p12
ssl.keystore.password=$store_password
ssl.key.password=$store_password
ssl.client.auth=none
log.dirs=$data/logs

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# Internal topics: one replica, and few partitions so first use is quick on a small machine.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=5
EOF
}

# PLAIN checks the password from the JAAS line; SCRAM checks the credentials stored in the
# cluster metadata (set after each start, see add_scram_user).
sasl_config() {
  local listener=$1
  cat <<EOF
listener.name.$listener.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.$listener.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$user" password="$password" user_$user="$password";
listener.name.$listener.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.$listener.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
}

# A self-signed certificate for 127.0.0.1 and localhost, made once per data dir.
make_certificate() {
  [[ -f $tls_dir/broker.p12 && -f $tls_dir/ca.pem ]] && return 0
  command -v keytool >/dev/null || die "keytool (from the JDK) is needed to make the TLS certificate"
  mkdir -p "$tls_dir"
  rm -f "$tls_dir/broker.p12" "$tls_dir/ca.pem"
  keytool -genkeypair -noprompt -alias broker -keyalg RSA -keysize 2048 -validity 3650 \
    -dname "CN=localhost" -ext "SAN=ip:127.0.0.1,dns:localhost" \
    -storetype PKCS12 -keystore "$tls_dir/broker.p12" \
    -storepass "$store_password" -keypass "$store_password" >/dev/null 2>&1 ||
    die "keytool could not make the certificate"
  keytool -exportcert -rfc -alias broker -keystore "$tls_dir/broker.p12" \
    -storepass "$store_password" -file "$tls_dir/ca.pem" >/dev/null 2>&1 ||
    die "keytool could not export the certificate"
}

# SCRAM credentials live in the cluster metadata; setting them again is harmless, and it
# brings a data dir formatted before SCRAM was configured up to date.
# One mechanism per request: the broker refuses two changes to one user at once.
add_scram_user() {
  local mechanism
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    run_tool kafka.admin.ConfigCommand --bootstrap-server "$bootstrap" --alter \
      --entity-type users --entity-name "$user" \
      --add-config "$mechanism=[password=$password]" >/dev/null 2>&1 ||
      die "could not add the $mechanism user $user"
  done
}

format_storage() {
  [[ -f "$data/logs/meta.properties" ]] && return 0
  local cluster_id
  # 16 random bytes, base64url without padding: the form Kafka expects.
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  say "formatting $data/logs (cluster id $cluster_id)"
  run_tool kafka.tools.StorageTool format --config "$config" \
    --cluster-id "$cluster_id" --standalone >/dev/null
}

# wait_ready <pid> [keep]: with keep, a broker that is slow to answer is left running (it was
# already up before this call, and a loaded machine can make the probe time out).
wait_ready() {
  local pid=$1 keep=${2:-} deadline=$((SECONDS + start_timeout))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      say "broker exited during startup; last log lines:"
      tail -n 40 "$log_file" >&2 || true
      rm -f "$pid_file"
      return 1
    fi
    if answering; then
      return 0
    fi
    sleep 0.5
  done
  say "broker did not answer on $bootstrap within ${start_timeout}s; last log lines:"
  tail -n 40 "$log_file" >&2 || true
  [[ -n $keep ]] || cmd_stop >/dev/null 2>&1 || true
  return 1
}

# Whether the broker's TLS listener presents a certificate the given CA file vouches for.
trusted_by() {
  [[ -f $1 ]] && command -v openssl >/dev/null &&
    openssl s_client -connect "$host:$tls_port" -CAfile "$1" -verify_return_error </dev/null >/dev/null 2>&1
}

# A broker already answering may have been started from another checkout, with its own CA:
# the TLS tests here would then fail against it. Take that checkout's CA (the broker's command
# line names its config, beside which the CA lives), or stop with the reason.
use_running_broker() {
  local other
  trusted_by "$tls_dir/ca.pem" && return 0
  while read -r other; do
    other="$(dirname "$other")/tls/ca.pem"
    if [[ $other != "$tls_dir/ca.pem" ]] && trusted_by "$other"; then
      mkdir -p "$tls_dir"
      rm -f "$tls_dir/broker.p12"
      cp "$other" "$tls_dir/ca.pem"
      say "the broker on $bootstrap was started from elsewhere; its CA $other is copied to $tls_dir/ca.pem"
      return 0
    fi
  done < <(ps -eo args= | grep -o 'kafka\.Kafka [^ ]*server\.properties' | cut -d' ' -f2)
  die "a broker answers on $bootstrap, but its TLS certificate is not signed by $tls_dir/ca.pem and its own CA was not found; stop it (scripts/services.sh stop-kafka in the checkout that started it)"
}

cmd_start() {
  local pid t0=$SECONDS
  fetch_jars
  if answering; then
    use_running_broker
    say "already running on $bootstrap"
    return 0
  fi
  mkdir -p "$data"

  # Serialise concurrent starts on the same data dir.
  if command -v flock >/dev/null; then
    exec 9>"$data/.lock"
    flock -w $((start_timeout + 30)) 9 || die "timed out waiting for another start"
  fi

  if pid="$(running_pid)"; then
    say "broker process $pid exists; waiting for it to answer"
    wait_ready "$pid" keep
    say "running on $bootstrap (pid $pid)"
    return 0
  fi
  rm -f "$pid_file"
  port_open && die "port $port is in use by something that does not answer as Kafka"

  make_certificate
  write_config
  format_storage
  [[ -f $log_file ]] && mv -f "$log_file" "$log_file.1"

  # setsid detaches the broker from the caller's process group so it outlives
  # the shell that started it; fd 9 (the lock) must not leak into it.
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  ${launcher[@]+"${launcher[@]}"} "$java" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j_config" -Dlog4j2.shutdownHookEnabled=false \
    -cp "$lib/*" kafka.Kafka "$config" \
    </dev/null >"$log_file" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pid_file"

  wait_ready "$pid"
  add_scram_user
  say "running on $bootstrap (pid $pid, ready in $((SECONDS - t0))s, data in $data)"
  say "SASL on $host:$sasl_port, TLS on $host:$tls_port, SASL over TLS on $host:$sasl_tls_port (user $user, CA $tls_dir/ca.pem)"
}

cmd_stop() {
  local pid i
  if ! pid="$(running_pid)"; then
    rm -f "$pid_file"
    say "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    say "pid $pid did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$pid_file"
  say "stopped (pid $pid)"
}

cmd_status() {
  if answering; then
    say "running on $bootstrap"
    return 0
  fi
  say "not answering on $bootstrap"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  fetch) fetch_jars ;;
  *)
    echo "usage: $0 start|stop|status|fetch" >&2
    exit 2
    ;;
esac
