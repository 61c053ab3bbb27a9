#!/usr/bin/env bash
# `make bench`: every figure of BENCHMARKS.md, measured side by side in one run;
# then tests/bench/table.py rewrites the rows of BENCHMARKS.md's current table
# that this run measured (value, commit, date) and puts the full write-up (date,
# commit, machine, every table, the commands) first in docs/benchmarks-history.md.
# Expects the builds of `make bench-build` (Makefile). Bounded: ~11-12 min (part 7 ~5).
#
# Knobs (environment): BENCH_PROBES (1000), BENCH_CURL_PER_PROCESS (1000),
# BENCH_ROUNDS (3), BENCH_STEADY_SECONDS (60), BENCH_SCHED_SECONDS (10),
# BENCH_KAFKA_RECORDS (200000), BENCH_OUT (BENCHMARKS.md: the current table),
# BENCH_HISTORY (docs/benchmarks-history.md: the runs), CARGO_TARGET_DIR,
# BENCH_ALL3_TARGET_DIR, LL_CACHE_DIR (Kafka jars; default .cache),
# BENCH_MUSL_BIN (dist/latency-logger-x86_64-unknown-linux-musl; part 7),
# BENCH_MUSL_STEADY_SECONDS (20; also read by musl.py, as BENCH_ROUNDS).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TD=${CARGO_TARGET_DIR:-$ROOT/target}
REL=$TD/release
CMP=${BENCH_ALL3_TARGET_DIR:-$TD/all3}/release
BIN=$REL/latency-logger
EX=$REL/examples
N=${BENCH_PROBES:-1000}
PP=${BENCH_CURL_PER_PROCESS:-1000}
ROUNDS=${BENCH_ROUNDS:-3}
STEADY=${BENCH_STEADY_SECONDS:-60}
KAFKA_RECORDS=${BENCH_KAFKA_RECORDS:-200000}
PATH_S=${BENCH_PATH_SECONDS:-20}
SCHED_S=${BENCH_SCHED_SECONDS:-10}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
HISTORY=${BENCH_HISTORY:-$ROOT/docs/benchmarks-history.md}
TOOLS="python3 $ROOT/tests/bench/tools.py"

for t in curl python3 /usr/bin/time timeout; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing (apt-get install curl python3 time coreutils)" >&2; exit 2; }
done
for f in "$BIN" "$EX/probe_cost" "$EX/sched_scale" "$EX/bench_server"; do
    [ -x "$f" ] || { echo "bench: $f not built; run 'make bench-build' first" >&2; exit 2; }
done

# Scratch on tmpfs when there is one: output files then cost what /dev/null costs.
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
W=$(mktemp -d "$base/llbench.XXXXXX")
# Spools on a disk (not tmpfs), so that write_bytes counts what reaches it.
DISK=$(mktemp -d /var/tmp/llbench-spool.XXXXXX)
RAW=$W/raw.txt
CMDS=$W/commands.txt
: >"$RAW"
: >"$CMDS"
SERVER_PID=
KAFKA_UP=
KB=tests/support/kafka/broker.sh

cleanup() {
    if [ -n "$KAFKA_UP" ]; then "$KB" stop "$W/kafka" >/dev/null 2>&1 || true; fi
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -f "$W"/*.csv "$W"/*.jsonl
    rm -rf "$DISK"
}
trap cleanup EXIT

say() { echo "bench: $*" >&2; }
note() { printf '%s\n' "$*" >>"$CMDS"; }
raw() { printf '%s\n' "$*" >>"$RAW"; }
# /usr/bin/time -v CMD... → key=value of the OS figures (user_s sys_s maxrss_kib wall_s exit)
tv() {
    /usr/bin/time -v -o "$W/time.txt" "$@" >/dev/null || true
    $TOOLS timev "$W/time.txt"
}
# the same, with the command's stdout to file $1
tvo() {
    local out=$1
    shift
    /usr/bin/time -v -o "$W/time.txt" "$@" >"$out" || true
    $TOOLS timev "$W/time.txt"
}
# per-probe figures from a `tv` line and a probe count
per_probe() {
    python3 - "$1" "$2" <<'EOF'
import sys
d = dict(p.split("=", 1) for p in sys.argv[1].split())
n = int(sys.argv[2])
cpu = (float(d["user_s"]) + float(d["sys_s"])) * 1e6 / max(n, 1)
print(f"probes={n} cpu_per_probe_us={cpu:.1f} wall_per_probe_us={float(d['wall_s']) * 1e6 / max(n, 1):.1f} maxrss_kib={d['maxrss_kib']}")
EOF
}

START_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)

# ---------------------------------------------------------------- server
"$EX/bench_server" "$W" &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$W/server.env" ] && break; sleep 0.05; done
[ -f "$W/server.env" ] || { say "bench_server did not start"; exit 1; }
# shellcheck disable=SC1091
. "$W/server.env"
note "# \$W = scratch dir; server: target/release/examples/bench_server \$W (separate process, loopback)"
note "# HTTP_BASE=$HTTP_BASE HTTPS_BASE=$HTTPS_BASE CA_FILE=\$W/test-ca.pem"
base_of() { if [ "$1" = https ]; then echo "$HTTPS_BASE"; else echo "$HTTP_BASE"; fi; }

# ---------------------------------------------------------------- 1. per-probe cost
say "1. per-probe cost: $ROUNDS round(s) x {http,https} x {latency-logger, curl} x $N probes"
note "## 1. per-probe cost (\$N=$N, rounds=$ROUNDS, interleaved)"
note "probe_cost URL \$N [CA_FILE]       # tests/bench/probe_cost.rs: Prober loop, getrusage around the loop (shipped release profile, and a build with opt-level 3 for every crate)"
note "PROBE_COST_INTERVAL_US=4000 probe_cost URL \$N [CA_FILE]   # the same loop, one probe every 4 ms (the real binary's cadence below)"
note "/usr/bin/time -v curl -s -H 'Connection: close' [--cacert CA_FILE] -o /dev/null URL -o /dev/null URL ... (\$N URLs)"
note "/usr/bin/time -v curl -s --no-sessionid -H 'Connection: close' --cacert CA_FILE -o /dev/null URL ... (\$N URLs, https only)"
note "/usr/bin/time -v timeout -s TERM 4.02 latency-logger -W 1 -Q 1 [--cacert CA_FILE] one.csv >one.jsonl   # one.csv: '0.004, URL'"
note "/usr/bin/time -v bash -c 'for i in 1..$PP; do curl -s -o /dev/null -H \"Connection: close\" [--cacert CA_FILE] URL; done'"
for round in $(seq "$ROUNDS"); do
    for scheme in http https; do
        url=$(base_of $scheme)/fixed
        ca=()
        [ $scheme = https ] && ca=(--cacert "$CA_FILE")
        cafile=()
        [ $scheme = https ] && cafile=("$CA_FILE")

        line=$("$EX/probe_cost" "$url" "$N" "${cafile[@]}")
        raw "p1.lib.rel.$scheme round=$round $line"
        if [ -x "$CMP/examples/probe_cost" ]; then
            line=$("$CMP/examples/probe_cost" "$url" "$N" "${cafile[@]}")
            raw "p1.lib.all3.$scheme round=$round $line"
        fi
        # The same loop on the real binary's 4 ms cadence: what a probe costs
        # when the CPU idles in between (the floor under the whole process).
        line=$(PROBE_COST_INTERVAL_US=4000 "$EX/probe_cost" "$url" "$N" "${cafile[@]}")
        raw "p1.lib.cad.$scheme round=$round $line"

        urls=()
        for _ in $(seq "$N"); do urls+=(-o /dev/null "$url"); done
        t=$(tv curl -s -H 'Connection: close' "${ca[@]}" "${urls[@]}")
        raw "p1.curl1.$scheme round=$round $(per_probe "$t" "$N") $t"
        if [ $scheme = https ]; then
            t=$(tv curl -s --no-sessionid -H 'Connection: close' "${ca[@]}" "${urls[@]}")
            raw "p1.curl1ns.$scheme round=$round $(per_probe "$t" "$N") $t"
        fi

        # The real binary, whole process: one target every 4 ms for ~4 s (~1,000 probes).
        echo "0.004, $url" >"$W/one.csv"
        t=$(tvo "$W/one.jsonl" timeout -s TERM 4.02 "$BIN" -W 1 -Q 1 "${ca[@]}" "$W/one.csv" 2>"$W/one-$scheme.err")
        # a late wake-up (> 4 ms) on a busy machine is logged and its slot skipped
        missed=$(grep -c 'woke late' "$W/one-$scheme.err" || true)
        c=$($TOOLS count "$W/one.jsonl")
        ok=$(sed -E 's/.*ok=([0-9]+).*/\1/' <<<"$c")
        raw "p1.bin.$scheme round=$round $(per_probe "$t" "$ok") $c late_wakeups=$missed $t"

        if [ "$round" = 1 ]; then
            say "   curl one process per request, $scheme x $PP"
            t=$(tv bash -c 'for ((i = 0; i < $0; i++)); do curl -s -o /dev/null -H "Connection: close" "$@"; done' "$PP" "${ca[@]}" "$url")
            raw "p1.curlpp.$scheme round=$round $(per_probe "$t" "$PP") $t"
        fi
    done
done

# ---------------------------------------------------------------- 2. timing fidelity
say "2. timing fidelity: 100 probes of /delay per scheme, latency-logger vs curl -w"
note "## 2. timing fidelity (/delay answers after exactly 200 ms)"
note "timeout -s TERM 10.35 latency-logger -W 8 --cacert CA_FILE fid.csv >fid.jsonl   # fid.csv: '0.1, HTTP_BASE/delay' and '0.1, HTTPS_BASE/delay'; first 100 reports per scheme"
note "curl -s -H 'Connection: close' [--cacert CA_FILE] -w '%{time_pretransfer} %{time_starttransfer}\\n' -o /dev/null URL/delay ... (x50)   # 2 processes per scheme, 4 at once"
printf '0.1, %s/delay\n0.1, %s/delay\n' "$HTTP_BASE" "$HTTPS_BASE" >"$W/fid.csv"
timeout -s TERM 10.35 "$BIN" -W 8 --cacert "$CA_FILE" "$W/fid.csv" >"$W/fid.jsonl" 2>"$W/fid.err" || true
for scheme in http https; do
    raw "p2.ll.$scheme $($TOOLS llfid "$W/fid.jsonl" $scheme 100)"
done
pids=()
for scheme in http https; do
    ca=()
    [ $scheme = https ] && ca=(--cacert "$CA_FILE")
    urls=()
    for _ in $(seq 50); do urls+=(-o /dev/null "$(base_of $scheme)/delay"); done
    for j in 1 2; do
        curl -s -H 'Connection: close' "${ca[@]}" -w '%{time_pretransfer} %{time_starttransfer}\n' "${urls[@]}" >"$W/curlw-$scheme-$j.txt" &
        pids+=($!)
    done
done
wait "${pids[@]}"
for scheme in http https; do
    cat "$W/curlw-$scheme-"*.txt >"$W/curlw-$scheme.txt"
    raw "p2.curl.$scheme $($TOOLS curlw "$W/curlw-$scheme.txt")"
done

# ---------------------------------------------------------------- 3. scheduler scale
say "3. scheduler scale: 10k / 100k / 1M targets, ${SCHED_S} s each"
note "## 3. scheduler scale"
note "python3 tests/bench/tools.py gen N 10000 tN.csv   # 10,000 hot targets (0.25-5 s), the rest cold (60-3600 s), shuffled, seed 42"
note "/usr/bin/time -v sched_scale tN.csv $SCHED_S 1 100 2   # tests/bench/sched_scale.rs: CSV, seconds, splay, queue, consumers"
note "python3 tests/bench/tools.py startup 1 -- latency-logger -v cold1m.csv   # real binary, 1M cold targets: exec -> ready, wait4 peak RSS"
for n in 10000 100000 1000000; do
    $TOOLS gen $n 10000 "$W/t$n.csv"
    /usr/bin/time -v -o "$W/time.txt" "$EX/sched_scale" "$W/t$n.csv" "$SCHED_S" 1 100 2 >"$W/sched.txt"
    t=$($TOOLS timev "$W/time.txt")
    raw "p3.sched $(cat "$W/sched.txt") os_maxrss_kib=$(sed -E 's/.*maxrss_kib=([0-9]+).*/\1/' <<<"$t")"
    rm -f "$W/t$n.csv"
done
$TOOLS gen 1000000 0 "$W/cold1m.csv"
raw "p3.bin1m $($TOOLS startup 1 -- "$BIN" -v "$W/cold1m.csv")"
rm -f "$W/cold1m.csv"

# ---------------------------------------------------------------- 4. steady state
say "4. steady state: 1,000 targets at 1 s, -W 8, ${STEADY} s"
note "## 4. steady state (stdout to a file on tmpfs so lateness can be read back)"
note "/usr/bin/time -v timeout -s TERM $STEADY latency-logger -W 8 -Q 100 --splay 1 --cacert CA_FILE steady.csv >\$W/steady.jsonl   # 500 x '1, HTTP_BASE/fixed' + 500 x '1, HTTPS_BASE/fixed'"
for i in $(seq 500); do
    printf '1, %s/fixed\n1, %s/fixed\n' "$HTTP_BASE" "$HTTPS_BASE"
done >"$W/steady.csv"
t=$(tvo "$W/steady.jsonl" timeout -s TERM "$STEADY" "$BIN" -W 8 -Q 100 --splay 1 --cacert "$CA_FILE" "$W/steady.csv" 2>"$W/steady.err")
raw "p4 $t $($TOOLS steady "$W/steady.jsonl")"

# ---------------------------------------------------------------- 5. producer
# A real Apache Kafka broker (tests/support/kafka/broker.sh: jars from Maven
# Central, cached in $LL_CACHE_DIR), plaintext listener on loopback, a 6-partition
# topic; kafka_bench Avro-encodes Reports and produces them as the sink does.
note "## 5. Kafka producer (Apache Kafka \${KAFKA_VERSION:-4.4.0}, single node, loopback; tests/support/kafka/broker.sh)"
note "broker.sh install; broker.sh start \$W/kafka --mode plaintext; broker.sh topic \$W/kafka bench-N 6"
note "/usr/bin/time -v kafka_bench \$KAFKA_PLAINTEXT bench-N $KAFKA_RECORDS [-X compression.type=snappy] [--spool DIR [--replay]]   # tests/bench/kafka_bench.rs: acks=all, linger 5 ms, idempotent"
if [ ! -x "$EX/kafka_bench" ]; then
    say "5. producer: $EX/kafka_bench not built (make bench-build)"
    raw "p5 status=skipped reason=kafka_bench_not_built"
elif ! "$KB" install >"$W/kafka-install.log" 2>&1; then
    say "5. producer: could not install the Kafka broker: $(tail -1 "$W/kafka-install.log")"
    raw "p5 status=skipped reason=broker_install_failed_(see_$W/kafka-install.log)"
elif ! "$KB" start "$W/kafka" --mode plaintext --owner $$ >"$W/kafka-start.log" 2>&1; then
    say "5. producer: the Kafka broker did not start: $(tail -1 "$W/kafka-start.log")"
    raw "p5 status=skipped reason=broker_did_not_start_(see_$W/kafka-start.log)"
else
    KAFKA_UP=1
    BOOT=$(sed -n 's/^KAFKA_PLAINTEXT=//p' "$W/kafka/env")
    say "5. producer: $ROUNDS round(s) x {none, snappy} x $KAFKA_RECORDS records into $BOOT"
    for round in $(seq "$ROUNDS"); do
        for comp in none snappy; do
            topic=bench-$round-$comp
            if ! "$KB" topic "$W/kafka" "$topic" 6 >>"$W/kafka-start.log" 2>&1; then
                raw "p5 status=failed round=$round reason=topic_${topic}_not_created_(see_$W/kafka-start.log)"
                continue
            fi
            line=$(tvo "$W/kb.txt" "$EX/kafka_bench" "$BOOT" "$topic" "$KAFKA_RECORDS" -X "compression.type=$comp")
            raw "p5 status=measured round=$round $(cat "$W/kb.txt") $line"
        done
        # The same through the disk spool: live (append, then produce from
        # the spool) and replay (a spool left by a previous run).
        for mode in live replay; do
            topic=bench-$round-spool-$mode
            if ! "$KB" topic "$W/kafka" "$topic" 6 >>"$W/kafka-start.log" 2>&1; then
                raw "p5 status=failed round=$round reason=topic_${topic}_not_created_(see_$W/kafka-start.log)"
                continue
            fi
            rm -rf "$DISK/spool-$mode"
            extra=(--spool "$DISK/spool-$mode")
            [ "$mode" = replay ] && extra+=(--replay)
            line=$(tvo "$W/kb.txt" "$EX/kafka_bench" "$BOOT" "$topic" "$KAFKA_RECORDS" -X "compression.type=none" "${extra[@]}")
            raw "p5 status=measured round=$round $(cat "$W/kb.txt") $line"
        done
    done
    # The whole process per probe: stdout vs Kafka vs Kafka + spool, at 10
    # and 1,000 targets/s, glibc and (when built) the static musl binary,
    # interleaved per round (tests/bench/kafka_path.py; spool on disk).
    PATH_BUILDS=(glibc="$BIN")
    [ -x "${BENCH_MUSL_BIN:-$ROOT/dist/latency-logger-x86_64-unknown-linux-musl}" ] &&
        PATH_BUILDS+=(musl="${BENCH_MUSL_BIN:-$ROOT/dist/latency-logger-x86_64-unknown-linux-musl}")
    note "## 5b. Kafka path per probe"
    note "python3 tests/bench/kafka_path.py --server bench_server --kafka-env \$W/kafka/env --rounds $ROUNDS --seconds $PATH_S glibc=target/release/latency-logger [musl=dist/latency-logger-x86_64-unknown-linux-musl]   # N x '1, HTTP_BASE/fixed#i', -W 8 --splay 1; -B/-T, --spool under /var/tmp"
    say "5b. Kafka path per probe: $ROUNDS round(s) x {10, 1000} targets/s x {stdout, kafka, kafka+spool} x ${PATH_S} s x ${#PATH_BUILDS[@]} build(s)"
    python3 tests/bench/kafka_path.py --server "$EX/bench_server" --kafka-env "$W/kafka/env" \
        --rounds "$ROUNDS" --seconds "$PATH_S" "${PATH_BUILDS[@]}" >"$W/kpath.md" 2>"$W/kpath.err" ||
        { say "5b. kafka_path.py failed, see $W/kpath.err"; echo "failed: see $W/kpath.err" >"$W/kpath.md"; }
    "$KB" stop "$W/kafka" >/dev/null 2>&1 || true
    KAFKA_UP=
fi

# ---------------------------------------------------------------- 6. start-up, size
say "6. start-up (20 runs) and binary size"
note "## 6. start-up and size"
note "python3 tests/bench/tools.py startup 20 -- latency-logger -v --cacert CA_FILE steady.csv   # exec -> the 'probing N target(s)' log line, logged right after the scheduler and workers are spawned"
note "python3 tests/bench/tools.py floor 20 -- latency-logger --version"
raw "p6.ready $($TOOLS startup 20 -- "$BIN" -v --cacert "$CA_FILE" "$W/steady.csv")"
raw "p6.floor $($TOOLS floor 20 -- "$BIN" --version)"
sz="rel=$(stat -c %s "$BIN")"
[ -x "$CMP/latency-logger" ] && sz="$sz all3=$(stat -c %s "$CMP/latency-logger")"
raw "p6.size $sz"

# ---------------------------------------------------------------- 7. musl vs glibc
# What users install is the static musl build: the same binary workloads for it
# and the glibc build, interleaved, with faults and syscalls per probe.
MUSL_BIN=${BENCH_MUSL_BIN:-$ROOT/dist/latency-logger-x86_64-unknown-linux-musl}
note "## 7. static musl (what ships) vs glibc release, same run (tests/bench/musl.py)"
note "python3 tests/bench/musl.py --rounds $ROUNDS (--probe-rounds: 8, or ROUNDS if more) --steady-seconds ${BENCH_MUSL_STEADY_SECONDS:-20} --server bench_server glibc=target/release/latency-logger musl=dist/latency-logger-x86_64-unknown-linux-musl glibc-again=target/release/latency-logger   # glibc-again: the same glibc binary again, a control that shows the measurement's own spread"
if [ -x "$MUSL_BIN" ]; then
    say "7. static musl vs glibc (+ glibc again as a control): $ROUNDS round(s) x {http,https} x {sequential, 100 targets -W 4} + callgrind + strace -c"
    python3 tests/bench/musl.py --rounds "$ROUNDS" --steady-seconds "${BENCH_MUSL_STEADY_SECONDS:-20}" \
        --server "$EX/bench_server" --raw "$W/musl-raw.txt" \
        glibc="$BIN" musl="$MUSL_BIN" glibc-again="$BIN" >"$W/musl.md" || say "7. musl.py failed"
else
    say "7. $MUSL_BIN not built (make static, or make bench-build with musl-gcc): skipped"
    echo "skipped: $MUSL_BIN not built (\`make static\`)" >"$W/musl.md"
fi

# ---------------------------------------------------------------- micro
say "criterion micro-benchmarks"
note "## micro: cargo bench --bench micro   # tests/bench/micro.rs"
cargo bench --bench micro >"$W/criterion.txt" 2>"$W/criterion.err" || { say "criterion failed, see $W/criterion.err"; }
$TOOLS criterion "$W/criterion.txt" >>"$RAW"

# ---------------------------------------------------------------- write up
T1=$(date +%s)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT (+ uncommitted changes)"
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
RUN_MD=$W/run.md
{
    echo "## Run $START_DATE — commit $COMMIT"
    echo
    echo "- Machine: $(uname -srm), $CPU_MODEL, $(nproc) CPUs, $MEM; load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Tools: $(rustc --version), $(curl --version | head -1 | cut -d' ' -f1-2,5), Python $(python3 -c 'import platform; print(platform.python_version())')"
    echo "- Duration of the measurements: $((T1 - T0)) s; scratch directory \$W = $W (raw.txt kept there)"
    echo
    $TOOLS summarize "$W"
    echo "### 7. Static musl (what ships) vs glibc release build, same run"
    echo
    echo "Whole process, wait4 rusage; per probe = whole run ÷ probes with code 200 (tests/bench/musl.py)."
    echo
    cat "$W/musl.md"
    echo
    if [ -s "$W/kpath.md" ]; then
        echo "### 5b. Kafka path per probe (whole process; issue 10: ≤ 50 µs added per record at 10 targets/s, ≤ 20 µs at 1,000, ≤ 8 MB RSS with 1,000 targets)"
        echo
        cat "$W/kpath.md"
        echo
    fi
    echo "<details><summary>Exact commands of this run</summary>"
    echo
    echo '```'
    cat "$CMDS"
    echo '```'
    echo
    echo "</details>"
} >"$RUN_MD"

# The current table: the figures this run measured (tools.py figures), and the
# static binaries' sizes when dist/ holds binaries built after the last commit
# (older ones were built from an earlier tree).
$TOOLS figures "$W" >"$W/figures.tsv"
COMMIT_TIME=$(git log -1 --format=%ct 2>/dev/null || echo 0)
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf; do
    b=$ROOT/dist/latency-logger-$t
    [ "$t" = x86_64-unknown-linux-musl ] && b=$MUSL_BIN
    if [ -f "$b" ] && [ "$(stat -c %Y "$b")" -gt "$COMMIT_TIME" ]; then
        printf 'static binary size, %s\t%s bytes\n' "${t%%-*}" \
            "$(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$(stat -c %s "$b")")" >>"$W/figures.tsv"
    fi
done
if [ ! -s "$HISTORY" ]; then
    mkdir -p "$(dirname "$HISTORY")"
    printf '# Benchmark history\n\nEvery run of `make bench`, newest first.\n\n<!-- runs:newest-first -->\n' >"$HISTORY"
fi
if python3 tests/bench/table.py --bench "$OUT" --history "$HISTORY" --commit "$COMMIT" \
    --date "${START_DATE%%T*}" --figures "$W/figures.tsv" --run "$RUN_MD"; then
    say "done in $((T1 - T0)) s; current table in $OUT updated, run added to $HISTORY (raw figures in $RAW)"
else
    say "done in $((T1 - T0)) s; $OUT or $HISTORY could not be updated: the run is in $RUN_MD, its figures in $W/figures.tsv"
    exit 1
fi
