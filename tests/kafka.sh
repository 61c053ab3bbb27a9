#!/usr/bin/env bash
# Runs the Kafka test suites against real brokers started here and stopped on
# exit: Apache Kafka 4.4.0 (KRaft, all listeners) for both suites, Apache
# Kafka 3.9.1 for the producer suite (the 3.x line; set KAFKA_COMPAT_VERSION
# to change it, or to "none" to skip), and tansu (a Kafka-compatible broker)
# for the compatibility test when it is installed.
# Needs .ci/test-deps.sh to have run. Used by `make test-kafka`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
K=tests/support/kafka
COMPAT=${KAFKA_COMPAT_VERSION:-3.9.1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ll-kafka-tests.XXXXXX")
cleanup() {
  "$K/broker.sh" stop "$WORK/kafka" >/dev/null 2>&1 || true
  [[ -d $WORK/kafka3 ]] && { KAFKA_VERSION=$COMPAT "$K/broker.sh" stop "$WORK/kafka3" >/dev/null 2>&1 || true; }
  [[ -d $WORK/tansu ]] && { "$K/tansu.sh" stop "$WORK/tansu" >/dev/null 2>&1 || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

"$K/broker.sh" start "$WORK/kafka" --mode all --owner $$
export LATENCY_LOGGER_KAFKA_ENV=$WORK/kafka/env
export LATENCY_LOGGER_REQUIRE_KAFKA=1

if "$K/tansu.sh" start "$WORK/tansu" --owner $$ 2>"$WORK/tansu-start.log"; then
  export LATENCY_LOGGER_TANSU_ENV=$WORK/tansu/env
  echo "kafka.sh: tansu running ($(grep '^TANSU=' "$WORK/tansu/env"))"
elif [[ ${CI:-} == true ]]; then
  echo "kafka.sh: tansu did not start in CI:" >&2
  cat "$WORK/tansu-start.log" >&2
  exit 1
else
  echo "kafka.sh: SKIP tansu compatibility: $(tail -1 "$WORK/tansu-start.log")" >&2
fi

cargo test --test kafka_e2e --test kafka_producer
"$K/broker.sh" stop "$WORK/kafka"
# The spool suite starts (and stops) a private broker per test; one at a
# time, so brokers starting on 2 cores do not skew its timings.
cargo test --test kafka_spool -- --test-threads=1 --show-output   # prints the crash tests' counts

if [[ $COMPAT != none ]]; then
  echo "kafka.sh: the producer suite against Apache Kafka $COMPAT"
  KAFKA_VERSION=$COMPAT "$K/broker.sh" install
  KAFKA_VERSION=$COMPAT "$K/broker.sh" start "$WORK/kafka3" --mode all --owner $$
  # KAFKA_VERSION also reaches the brokers that the outage tests start themselves.
  KAFKA_VERSION=$COMPAT env -u LATENCY_LOGGER_TANSU_ENV LATENCY_LOGGER_KAFKA_ENV="$WORK/kafka3/env" \
    cargo test --test kafka_producer
fi
