#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for tests.
# Real broker, loopback only, small heap. See tests/support/kafka/README.md.
#
#   broker.sh install                          fetch the jars + make CDS archives (idempotent)
#   broker.sh start DIR [--mode M] [--owner PID]
#        M = plaintext (default) | sasl_plaintext | ssl | sasl_ssl | all
#        DIR must be empty or absent. Writes DIR/env (see below) when ready.
#        --owner PID: a watchdog kills the broker when PID exits.
#   broker.sh stop DIR                         SIGTERM, bounded wait, then SIGKILL
#   broker.sh kill DIR                         SIGKILL now (crash; data kept)
#   broker.sh restart DIR                      start again: same ports, same data
#   broker.sh pause DIR | resume DIR           SIGSTOP / SIGCONT (hung broker)
#   broker.sh topic DIR NAME PARTITIONS [K=V ...]   create a topic, wait for leaders
#   broker.sh status DIR                       exit 0 if running
#   broker.sh env DIR                          print DIR/env
#
# DIR/env (KEY=VALUE, no quotes, no spaces: `source`-able and trivially parsed):
#   KAFKA_PLAINTEXT       always present (also the inter-broker listener)
#   KAFKA_SASL_PLAINTEXT  modes sasl_plaintext, all   (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
#   KAFKA_SSL             modes ssl, all               (ssl.client.auth=requested)
#   KAFKA_MTLS            modes ssl, all               (ssl.client.auth=required)
#   KAFKA_SASL_SSL        modes sasl_ssl, all          (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
#   KAFKA_CA KAFKA_CLIENT_CERT KAFKA_CLIENT_KEY       PEM files (TLS modes)
#   KAFKA_SASL_USER KAFKA_SASL_PASSWORD               valid for all three mechanisms
#   KAFKA_SASL_MECHANISMS KAFKA_PID KAFKA_DIR KAFKA_LOG KAFKA_VERSION KAFKA_MODE KAFKA_CLUSTER_ID
#
# Environment: LL_CACHE_DIR (default REPO/.cache), KAFKA_VERSION (4.4.0),
#   KAFKA_HEAP_OPTS (-Xms64m -Xmx512m), KAFKA_JVM_OPTS (extra), KAFKA_START_TIMEOUT (60),
#   KAFKA_STOP_TIMEOUT (30), JAVA (java), PYTHON (python3), MAVEN_ARGS (extra mvn args),
#   KAFKA_TOPIC_TOOL=java to create topics with org.apache.kafka.tools.TopicCommand.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${LL_CACHE_DIR:-$REPO/.cache}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
JAVA=${JAVA:-java}
PY=${PYTHON:-python3}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
HEAP=${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m}
SASL_USER=alice
SASL_PASSWORD=alice-secret

log() { printf '[broker.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------- install
cmd_install() {
  if [[ -f $LIBS/.complete ]]; then
    log "kafka $KAFKA_VERSION jars present in $LIBS"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  local t0 tmp; t0=$(now); tmp=$LIBS.tmp.$$
  log "fetching kafka $KAFKA_VERSION jars into $LIBS (maven)"
  rm -rf "$tmp"
  # shellcheck disable=SC2086 # MAVEN_ARGS is a list of words on purpose
  mvn -q -B -Dstyle.color=never ${MAVEN_ARGS:-} -f "$HERE/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
    || { rm -rf "$tmp"; die "maven could not fetch kafka $KAFKA_VERSION"; }
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after maven"; }
  rm -rf "$LIBS"; mkdir -p "$(dirname "$LIBS")"; mv "$tmp" "$LIBS"; touch "$LIBS/.complete"
  log "kafka jars: $(find "$LIBS" -name '*.jar' | wc -l) jars in $(elapsed "$t0") s"
}

# Class-data-sharing archives (JDK dynamic CDS) halve JVM start-up on a busy
# 2-core machine: one throw-away broker run dumps the classes it loaded.
# Tied to this JDK and this classpath; a stale archive is ignored by the JVM.
CDS_BROKER=$CACHE/kafka-$KAFKA_VERSION/broker.jsa
CDS_TOOLS=$CACHE/kafka-$KAFKA_VERSION/tools.jsa
cmd_warm() {
  [[ ${KAFKA_CDS:-1} == 1 ]] || return 0
  if [[ -f $CDS_BROKER && -f $CDS_TOOLS ]]; then log "CDS archives present"; return 0; fi
  need_libs
  local t0 tmp; t0=$(now); tmp=$(mktemp -d)
  log "creating CDS archives (one throw-away broker run)"
  if CDS_DUMP=1 "$0" start "$tmp/b" --mode all >"$tmp/out" 2>&1 && CDS_DUMP=1 "$0" stop "$tmp/b" >>"$tmp/out" 2>&1; then
    [[ -f $CDS_BROKER.tmp ]] && mv "$CDS_BROKER.tmp" "$CDS_BROKER"
    [[ -f $CDS_TOOLS.tmp ]] && mv "$CDS_TOOLS.tmp" "$CDS_TOOLS"
    log "CDS archives in $(elapsed "$t0") s"
  else
    log "warning: CDS archive run failed (brokers start slower; not fatal):"; tail -n 20 "$tmp/out" >&2
    "$0" kill "$tmp/b" >/dev/null 2>&1 || true
  fi
  rm -f "$CDS_BROKER.tmp" "$CDS_TOOLS.tmp"
  rm -rf "$tmp"
}
cds_opt() { # ARCHIVE -> JVM option
  if [[ ${CDS_DUMP:-} == 1 ]]; then echo "-XX:ArchiveClassesAtExit=$1.tmp"
  elif [[ ${KAFKA_CDS:-1} == 1 && -f $1 ]]; then echo "-XX:SharedArchiveFile=$1"
  fi
}

need_libs() { [[ -f $LIBS/.complete ]] || die "kafka $KAFKA_VERSION not installed: run $0 install"; }

# ---------------------------------------------------------------- helpers
free_ports() { # N -> N distinct free loopback ports, one per line
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

# pid alive and not a zombie, and really our broker (guards against pid reuse)
alive() { # DIR
  local pid stat
  [[ -f $1/pid ]] || return 1
  pid=$(<"$1/pid")
  [[ -r /proc/$pid/stat ]] || return 1
  stat=$(<"/proc/$pid/stat") || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]] || return 1
  # our java, or (for an instant after the fork) the broker.sh subshell about to exec it
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "$1/server.properties" -e "broker.sh"
}

# a child of this shell still running (not a zombie)
child_alive() { # PID
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

gen_tls() { # DIR/tls: test CA, broker leaf (localhost, 127.0.0.1), client leaf
  local d=$1 ext
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  mkdir -p "$d"
  ext=$d/ext.cnf
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
    -keyout "$d/ca.key" -out "$d/ca.pem" -subj "/CN=latency-logger test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  leaf() { # name CN eku san
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/$1.key" -out "$d/$1.csr" -subj "/CN=$2" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$3" "$4" >"$ext"
    openssl x509 -req -sha256 -days 3650 -in "$d/$1.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
      -set_serial "0x$(openssl rand -hex 8)" -extfile "$ext" -out "$d/$1.pem" 2>/dev/null
    rm -f "$d/$1.csr"
  }
  leaf broker localhost serverAuth "DNS:localhost,IP:127.0.0.1"
  leaf client latency-logger-client clientAuth "DNS:latency-logger-client"
  rm -f "$ext"
  chmod 600 "$d"/*.key
}

pem_prop() { # FILE -> one .properties value, continued over lines
  awk 'NR > 1 { printf " \\\n" } { printf "%s", $0 } END { printf "\n" }' "$1"
}

write_log4j() { # DIR
  cat >"$1/log4j2.properties" <<EOF
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.lifecycle.name = org.apache.kafka.server.BrokerLifecycleManager
logger.lifecycle.level = INFO
logger.acceptor.name = kafka.network.DataPlaneAcceptor
logger.acceptor.level = INFO
EOF
  cat >"$1/log4j2-tools.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
}

java_tool() { # DIR CLASS ARGS...
  local dir=$1 cls=$2; shift 2
  # shellcheck disable=SC2046 # cds_opt gives zero or one word
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC $(cds_opt "$CDS_TOOLS") \
    -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" -cp "$LIBS/*" "$cls" "$@"
}

# ---------------------------------------------------------------- start
cmd_start() {
  local dir="" mode=plaintext owner=""
  while (($#)); do
    case $1 in
      --mode) mode=${2:?--mode needs a value}; shift 2 ;;
      --mode=*) mode=${1#*=}; shift ;;
      --owner) owner=${2:?--owner needs a pid}; shift 2 ;;
      -*) die "unknown option $1" ;;
      *) [[ -z $dir ]] || die "one DIR only"; dir=$1; shift ;;
    esac
  done
  [[ -n $dir ]] || usage
  case $mode in plaintext | sasl_plaintext | ssl | sasl_ssl | all) ;; *) die "bad --mode $mode" ;; esac
  need_libs
  dir=$(abs_dir "$dir")
  [[ -z $(ls -A "$dir") ]] || die "$dir is not empty (use restart DIR to start an existing broker again)"
  local t0; t0=$(now)

  local -a ports; mapfile -t ports < <(free_ports 6)
  local p_ctl=${ports[0]} p_plain=${ports[1]} p_saslp=${ports[2]} p_ssl=${ports[3]} p_mtls=${ports[4]} p_sasls=${ports[5]}
  local -a names=(PLAINTEXT) lsn=("PLAINTEXT://127.0.0.1:$p_plain")
  local tls=no sasl=no
  case $mode in
    sasl_plaintext) sasl=yes ;;
    ssl) tls=yes ;;
    sasl_ssl) tls=yes sasl=yes ;;
    all) tls=yes sasl=yes ;;
  esac
  if [[ $mode == sasl_plaintext || $mode == all ]]; then names+=(SASL_PLAINTEXT); lsn+=("SASL_PLAINTEXT://127.0.0.1:$p_saslp"); fi
  if [[ $mode == ssl || $mode == all ]]; then
    names+=(SSL MTLS); lsn+=("SSL://127.0.0.1:$p_ssl" "MTLS://127.0.0.1:$p_mtls")
  fi
  if [[ $mode == sasl_ssl || $mode == all ]]; then names+=(SASL_SSL); lsn+=("SASL_SSL://127.0.0.1:$p_sasls"); fi

  mkdir -p "$dir/data" "$dir/logs"
  write_log4j "$dir"
  [[ $tls == no ]] || gen_tls "$dir/tls"

  local advertised listeners
  advertised=$(IFS=,; echo "${lsn[*]}")
  listeners="$advertised,CONTROLLER://127.0.0.1:$p_ctl"
  {
    echo "# generated by broker.sh (mode $mode)"
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.voters=1@127.0.0.1:$p_ctl"
    echo "controller.listener.names=CONTROLLER"
    echo "listeners=$listeners"
    echo "advertised.listeners=$advertised"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL"
    echo "log.dirs=$dir/data"
    echo "num.partitions=1"
    echo "default.replication.factor=1"
    echo "auto.create.topics.enable=false"
    echo "offsets.topic.replication.factor=1"
    echo "offsets.topic.num.partitions=1"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "transaction.state.log.num.partitions=1"
    echo "share.coordinator.state.topic.replication.factor=1"
    echo "share.coordinator.state.topic.min.isr=1"
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=2"
    echo "background.threads=2"
    echo "num.recovery.threads.per.data.dir=1"
    echo "broker.heartbeat.interval.ms=500"
    # after kill -9 the old registration blocks re-registration until this expires (default 9 s)
    echo "broker.session.timeout.ms=3000"
    if [[ $sasl == yes ]]; then
      echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
      local l
      for l in sasl_plaintext sasl_ssl; do
        echo "listener.name.$l.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER=\"$SASL_PASSWORD\";"
        echo "listener.name.$l.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        echo "listener.name.$l.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      done
    fi
    if [[ $tls == yes ]]; then
      echo "ssl.keystore.type=PEM"
      # the leaf alone: with leaf+CA joined on continued lines Kafka 4.4 served the CA as leaf
      printf 'ssl.keystore.certificate.chain='; pem_prop "$dir/tls/broker.pem"
      printf 'ssl.keystore.key='; pem_prop "$dir/tls/broker.key"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$dir/tls/ca.pem"
      echo "listener.name.ssl.ssl.client.auth=requested"
      echo "listener.name.mtls.ssl.client.auth=required"
      echo "listener.name.sasl_ssl.ssl.client.auth=none"
    fi
  } >"$dir/server.properties"

  # cluster id: 16 random bytes, base64url without padding, not starting with '-'
  local cid
  while :; do
    cid=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $cid != -* ]] && break
  done
  local -a fmt=(format -t "$cid" -c "$dir/server.properties")
  if [[ $sasl == yes ]]; then
    fmt+=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]"
          --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
  fi
  local tf; tf=$(now)
  java_tool "$dir" kafka.tools.StorageTool "${fmt[@]}" >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "storage format failed"; }
  log "storage formatted in $(elapsed "$tf") s"

  {
    echo "KAFKA_VERSION=$KAFKA_VERSION"
    echo "KAFKA_MODE=$mode"
    echo "KAFKA_DIR=$dir"
    echo "KAFKA_LOG=$dir/broker.log"
    echo "KAFKA_CLUSTER_ID=$cid"
    echo "KAFKA_PLAINTEXT=127.0.0.1:$p_plain"
    [[ " ${names[*]} " != *" SASL_PLAINTEXT "* ]] || echo "KAFKA_SASL_PLAINTEXT=127.0.0.1:$p_saslp"
    [[ " ${names[*]} " != *" SSL "* ]] || echo "KAFKA_SSL=127.0.0.1:$p_ssl"
    [[ " ${names[*]} " != *" MTLS "* ]] || echo "KAFKA_MTLS=127.0.0.1:$p_mtls"
    [[ " ${names[*]} " != *" SASL_SSL "* ]] || echo "KAFKA_SASL_SSL=127.0.0.1:$p_sasls"
    if [[ $tls == yes ]]; then
      echo "KAFKA_CA=$dir/tls/ca.pem"
      echo "KAFKA_CLIENT_CERT=$dir/tls/client.pem"
      echo "KAFKA_CLIENT_KEY=$dir/tls/client.key"
    fi
    if [[ $sasl == yes ]]; then
      echo "KAFKA_SASL_MECHANISMS=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
      echo "KAFKA_SASL_USER=$SASL_USER"
      echo "KAFKA_SASL_PASSWORD=$SASL_PASSWORD"
    fi
  } >"$dir/env.static"
  [[ -z $owner ]] || echo "$owner" >"$dir/owner"

  launch "$dir"
  log "kafka $KAFKA_VERSION ($mode) ready in $(elapsed "$t0") s: $dir/env"
}

# starts java on DIR/server.properties, waits until ready, writes DIR/env
launch() {
  local dir=$1 pid t0
  t0=$(now)
  rm -f "$dir/env"
  : >>"$dir/broker.log"
  echo "=== start $(date -Is)" >>"$dir/broker.log"
  # shellcheck disable=SC2086,SC2046 # HEAP and KAFKA_JVM_OPTS are word lists
  nohup "$JAVA" $HEAP $(cds_opt "$CDS_BROKER") -XX:TieredStopAtLevel=1 -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true ${KAFKA_JVM_OPTS:-} \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/pid"
  # if we fail below, do not leave a half-started broker behind
  trap 'kill -9 '"$pid"' 2>/dev/null || true' EXIT

  local plain; plain=$(sed -n 's/^KAFKA_PLAINTEXT=//p' "$dir/env.static")
  local deadline=$((SECONDS + START_TIMEOUT)) ok=no
  while ((SECONDS < deadline)); do
    # $pid was forked by this shell a moment ago (its pid cannot have been
    # reused yet): a plain liveness check suffices. alive()'s cmdline check can
    # misfire while the child is inside execve (cmdline briefly empty), which
    # once failed a start in CI with nothing in the broker's log.
    child_alive "$pid" || { tail -n 40 "$dir/broker.log" >&2; die "broker exited during start (log: $dir/broker.log)"; }
    if port_open "${plain##*:}" &&
      "$PY" "$HERE/kafka_admin.py" ping "$plain" --timeout 2 >/dev/null 2>&1; then
      ok=yes; break
    fi
    sleep 0.2
  done
  [[ $ok == yes ]] || { tail -n 40 "$dir/broker.log" >&2; die "broker not ready after ${START_TIMEOUT}s (log: $dir/broker.log)"; }
  local hp
  while read -r hp; do
    while ! port_open "${hp##*:}"; do
      ((SECONDS < deadline)) || die "listener $hp not open after ${START_TIMEOUT}s"
      sleep 0.1
    done
  done < <(sed -n 's/^KAFKA_[A-Z_]*=\(127\.0\.0\.1:[0-9]*\)$/\1/p' "$dir/env.static")
  trap - EXIT
  { cat "$dir/env.static"; echo "KAFKA_PID=$pid"; } >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  if [[ -f $dir/owner ]]; then
    nohup "$0" _watchdog "$dir" "$(<"$dir/owner")" "$pid" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/watchdog.pid"
  fi
  log "broker pid $pid up in $(elapsed "$t0") s"
}

cmd_watchdog() { # DIR OWNER BROKER_PID (internal)
  local dir=$1 owner=$2 pid=$3
  while kill -0 "$owner" 2>/dev/null && alive "$dir" && [[ $(<"$dir/pid") == "$pid" ]]; do sleep 1; done
  if alive "$dir" && [[ $(<"$dir/pid") == "$pid" ]]; then
    kill -9 "$pid" 2>/dev/null || true
  fi
}

stop_watchdog() {
  if [[ -f $1/watchdog.pid ]]; then
    kill "$(<"$1/watchdog.pid")" 2>/dev/null || true
    rm -f "$1/watchdog.pid"
  fi
}

existing_dir() { [[ -n ${1:-} && -f $1/server.properties ]] || die "${1:-DIR}: not a broker dir"; abs_dir "$1"; }

# restart a broker with the Kafka version it was started with, whatever KAFKA_VERSION says now
use_dir_version() { # DIR
  local v; v=$(sed -n 's/^KAFKA_VERSION=//p' "$1/env.static" 2>/dev/null)
  if [[ -n $v && $v != "$KAFKA_VERSION" ]]; then
    KAFKA_VERSION=$v
    LIBS=$CACHE/kafka-$v/libs
    CDS_BROKER=$CACHE/kafka-$v/broker.jsa
    CDS_TOOLS=$CACHE/kafka-$v/tools.jsa
  fi
}

cmd_restart() {
  local dir; dir=$(existing_dir "${1:-}")
  use_dir_version "$dir"
  need_libs
  alive "$dir" && die "broker in $dir is running (pid $(<"$dir/pid"))"
  stop_watchdog "$dir"
  launch "$dir"
}

cmd_stop() {
  local dir pid t0; dir=$(existing_dir "${1:-}"); t0=$(now)
  stop_watchdog "$dir"
  if ! alive "$dir"; then log "not running: $dir"; rm -f "$dir/env"; return 0; fi
  pid=$(<"$dir/pid")
  kill -CONT "$pid" 2>/dev/null || true # in case it was paused
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$dir" && ((SECONDS < deadline)); do sleep 0.1; done
  if alive "$dir"; then
    log "no exit after ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$dir" && ((SECONDS < deadline)); do sleep 0.1; done
    alive "$dir" && die "pid $pid survived SIGKILL"
  fi
  rm -f "$dir/env"
  log "stopped pid $pid in $(elapsed "$t0") s"
}

cmd_kill() {
  local dir; dir=$(existing_dir "${1:-}")
  stop_watchdog "$dir"
  alive "$dir" || { log "not running: $dir"; return 0; }
  kill -KILL "$(<"$dir/pid")"
  local deadline=$((SECONDS + 10))
  while alive "$dir" && ((SECONDS < deadline)); do sleep 0.1; done
  rm -f "$dir/env"
  log "killed pid $(<"$dir/pid")"
}

cmd_signal() { # DIR SIG
  local dir; dir=$(existing_dir "${1:-}")
  alive "$dir" || die "not running: $dir"
  kill "-$2" "$(<"$dir/pid")"
}

cmd_topic() {
  local dir; dir=$(existing_dir "${1:-}")
  local name=${2:?topic NAME} parts=${3:?PARTITIONS}
  shift 3
  [[ -f $dir/env ]] || die "broker in $dir is not running"
  local plain kv; plain=$(sed -n 's/^KAFKA_PLAINTEXT=//p' "$dir/env")
  local -a cfg=()
  for kv in "$@"; do cfg+=(--config "$kv"); done
  if [[ ${KAFKA_TOPIC_TOOL:-} == java ]]; then # ≈ 2-4 s of JVM; the default takes ≈ 0.3 s
    java_tool "$dir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$plain" \
      --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 "${cfg[@]}"
  fi
  # creates (or finds) the topic, then waits until every partition has a leader
  "$PY" "$HERE/kafka_admin.py" create "$plain" "$name" "$parts" "${cfg[@]}" >/dev/null
}

main() {
  local cmd=${1:-}; shift || true
  case $cmd in
    install) cmd_install; cmd_warm ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart "$@" ;;
    pause) cmd_signal "${1:-}" STOP ;;
    resume) cmd_signal "${1:-}" CONT ;;
    topic) cmd_topic "$@" ;;
    status) alive "$(existing_dir "${1:-}")" ;;
    env) cat "$(existing_dir "${1:-}")/env" ;;
    _watchdog) cmd_watchdog "$@" ;;
    *) usage ;;
  esac
}

main "$@"
