#!/usr/bin/env bash
# Proves the harness end to end (needs .ci/test-deps.sh python kafka first):
#   Apache Kafka in mode all -> smoke.py on every listener (+ negative auth/TLS cases)
#   -> Avro single-object records read back by consume.py over SASL_SSL
#   -> registry.py + Confluent-framed records read back by consume.py over mTLS
#   -> stop, restart on the same ports: all data still there -> kill -9, restart: same
#   -> stop. With tansu installed (and SKIP_TANSU != 1): produce/consume on tansu too.
#
#   tests/support/kafka/selftest.sh [SCHEMA.avsc]     (default REPO/src/report.avsc)
# Prints timings; exit 0 on success. Everything it starts is stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${LL_CACHE_DIR:-$REPO/.cache}
VPY=$CACHE/venv/bin/python
SCHEMA=${1:-$REPO/src/report.avsc}
[[ -x $VPY ]] || { echo "selftest: no venv at $CACHE/venv: run .ci/test-deps.sh python" >&2; exit 1; }
[[ -f $SCHEMA ]] || { echo "selftest: schema $SCHEMA not found" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kafka-selftest.XXXXXX")
REG_PID=""
cleanup() {
  local rc=$?
  [[ -z $REG_PID ]] || kill "$REG_PID" 2>/dev/null || true
  "$HERE/broker.sh" stop "$WORK/kafka" >/dev/null 2>&1 || true
  [[ ! -f $WORK/tansu/pid ]] || "$HERE/tansu.sh" stop "$WORK/tansu" >/dev/null 2>&1 || true
  if ((rc == 0)); then rm -rf "$WORK"; else echo "selftest: FAILED (rc $rc); kept $WORK" >&2; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
timed() { # LABEL CMD... : runs CMD, prints its duration
  local t0 rc=0; t0=$(now)
  "${@:2}" || rc=$?
  printf 'selftest: %-34s %6.1f s\n' "$1" "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"  >&2
  return $rc
}

K=$WORK/kafka
timed "broker start (mode all)" "$HERE/broker.sh" start "$K" --mode all
# shellcheck source=/dev/null
source "$K/env"
timed "smoke: 7 listener cases + 3 negative" "$VPY" "$HERE/smoke.py" listeners --env "$K/env"

timed "topic create (3 partitions)" "$HERE/broker.sh" topic "$K" reports-so 3
timed "produce 50 single-object Avro" "$VPY" "$HERE/smoke.py" avro --env "$K/env" --topic reports-so --count 50 --schema "$SCHEMA"
timed "consume.py 50 over SASL_SSL/SCRAM-512" "$VPY" "$HERE/consume.py" --env "$K/env" --listener SASL_SSL \
  --sasl-mechanism SCRAM-SHA-512 --topic reports-so --expect 50 --timeout 30 --settle 1 --schema "$SCHEMA" >"$WORK/so.jsonl"
[[ $(wc -l <"$WORK/so.jsonl") == 50 ]]

"$VPY" "$HERE/registry.py" --auth reg:reg-secret --env-file "$WORK/registry.env" >/dev/null &
REG_PID=$!
for _ in $(seq 50); do [[ -f $WORK/registry.env ]] && break; sleep 0.1; done
# shellcheck source=/dev/null
source "$WORK/registry.env"
"$HERE/broker.sh" topic "$K" reports-cf 2
timed "produce 20 Confluent-framed Avro" "$VPY" "$HERE/smoke.py" avro --env "$K/env" --topic reports-cf --count 20 \
  --schema "$SCHEMA" --registry "$REGISTRY_URL" --registry-auth reg:reg-secret
timed "consume.py 20 via registry over mTLS" "$VPY" "$HERE/consume.py" --env "$K/env" --listener MTLS --topic reports-cf \
  --expect 20 --timeout 30 --schema "$SCHEMA" --registry "$REGISTRY_URL" --registry-auth reg:reg-secret >"$WORK/cf.jsonl"
[[ $(wc -l <"$WORK/cf.jsonl") == 20 ]]
# the wrong decoder must fail loudly (exit 3)
rc=0; "$VPY" "$HERE/consume.py" --env "$K/env" --topic reports-cf --expect 1 --timeout 10 --schema "$SCHEMA" >/dev/null 2>&1 || rc=$?
[[ $rc == 3 ]] || { echo "selftest: expected exit 3 for a Confluent-framed record read as single-object, got $rc" >&2; exit 1; }
kill "$REG_PID"; wait "$REG_PID" || true; REG_PID=""

ports_before=$(grep -E '^KAFKA_(PLAINTEXT|SASL_PLAINTEXT|SSL|MTLS|SASL_SSL)=' "$K/env")
timed "broker stop" "$HERE/broker.sh" stop "$K"
timed "broker restart (same ports + data)" "$HERE/broker.sh" restart "$K"
[[ $(grep -E '^KAFKA_(PLAINTEXT|SASL_PLAINTEXT|SSL|MTLS|SASL_SSL)=' "$K/env") == "$ports_before" ]]
timed "verify data after restart" "$VPY" "$HERE/smoke.py" listeners --env "$K/env" --phase verify
timed "consume.py 50 after restart" "$VPY" "$HERE/consume.py" --env "$K/env" --topic reports-so --expect 50 \
  --timeout 30 --settle 1 --schema "$SCHEMA" >/dev/null
timed "broker kill -9" "$HERE/broker.sh" kill "$K"
timed "broker restart after kill -9" "$HERE/broker.sh" restart "$K"
timed "consume.py 50 after kill -9" "$VPY" "$HERE/consume.py" --env "$K/env" --topic reports-so --expect 50 \
  --timeout 30 --settle 1 --schema "$SCHEMA" >/dev/null
timed "broker stop" "$HERE/broker.sh" stop "$K"

if [[ ${SKIP_TANSU:-0} != 1 && ( -x ${TANSU_BIN:-$CACHE/tansu/bin/tansu} ) ]]; then
  T=$WORK/tansu
  timed "tansu start" "$HERE/tansu.sh" start "$T"
  # shellcheck source=/dev/null
  source "$T/env"
  timed "tansu topic create (3 partitions)" "$HERE/tansu.sh" topic "$T" reports 3
  printf 'KAFKA_PLAINTEXT=%s\n' "$TANSU" >"$T/as-kafka.env"
  timed "tansu produce 30 Avro" "$VPY" "$HERE/smoke.py" avro --env "$T/as-kafka.env" --topic reports --count 30 --schema "$SCHEMA"
  timed "tansu consume.py 30" "$VPY" "$HERE/consume.py" --bootstrap "$TANSU" --topic reports --expect 30 --timeout 30 \
    --schema "$SCHEMA" >/dev/null
  timed "tansu stop" "$HERE/tansu.sh" stop "$T"
else
  echo "selftest: tansu skipped (not installed or SKIP_TANSU=1)"
fi
echo "selftest: all checks passed"
