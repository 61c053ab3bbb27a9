#!/usr/bin/env bash
# Static musl binaries (ARM under qemu-user), end to end on loopback.
#
# 1. builds (cargo no-ops when up to date) the x86_64, aarch64 and armv7 musl
#    binaries with .ci/cross-build.sh, or takes them from the environment;
# 2. checks they are static ELF for the right machine (no INTERP, no NEEDED)
#    and within the size budget (ARM 3,000,000 bytes, x86_64 3,500,000);
# 3. starts a loopback HTTP server and an HTTPS server whose leaf certificate
#    (IP:127.0.0.1) is signed by a throwaway test CA;
# 4. runs each binary (under qemu-user unless it is the host's own
#    architecture) with `--cacert CA.pem` on a CSV of both
#    URLs at 0.5 s, sends SIGTERM after ~3 s, requires exit status 0, and
#    checks the JSON lines: code 200, no error, and
#    namelookup <= connect <= pretransfer <= starttransfer <= total
#    (appconnect 0 for http, connect <= appconnect <= pretransfer for https).
#
# Environment:
#   LL_BIN_AARCH64, LL_BIN_ARMV7   use these binaries, build nothing
#                                  (LL_BIN_X86_64 with x86_64-unknown-linux-musl in QEMU_TEST_TARGETS)
#   QEMU_TEST_TARGETS              default "x86_64-unknown-linux-musl aarch64-unknown-linux-musl
#                                  armv7-unknown-linux-musleabihf"
#   SIZE_BUDGET                    bytes, every target (default: ARM 3000000, x86_64 3500000)
#   QEMU_TEST_EXAMPLE=NAME         build examples/NAME instead of the binary
#   QEMU_TEST_RUN_SECS             how long each binary runs (default 3)
# Skips (exit 0, reason printed) only when qemu-user is not installed and
# CI is not set; in CI a missing qemu is a failure (CI installs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGETS="${QEMU_TEST_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf}"
SIZE_BUDGET="${SIZE_BUDGET:-}"
budget_for() {  # the project's size budget per target (developers' guide)
    if [ -n "$SIZE_BUDGET" ]; then echo "$SIZE_BUDGET"; return; fi
    case "$1" in x86_64-*) echo 3500000 ;; *) echo 3000000 ;; esac
}
HOST_ARCH="$(uname -m)"
RUN_SECS="${QEMU_TEST_RUN_SECS:-3}"
NAME=latency-logger
BUILD_ARGS=()
if [ -n "${QEMU_TEST_EXAMPLE:-}" ]; then
    NAME="$QEMU_TEST_EXAMPLE"
    BUILD_ARGS=(--example "$QEMU_TEST_EXAMPLE")
fi

pass=0; fail=0
ok()   { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad()  { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
note() { printf '.... %s\n' "$*"; }

qemu_for() {
    case "$1" in
        aarch64-*) echo aarch64 ;;
        armv7-*|arm-*) echo arm ;;
        x86_64-*) echo x86_64 ;;
        *) echo unknown ;;
    esac
}
find_qemu() {  # qemu-aarch64-static, or the non-static qemu-user name; nothing for the host's arch
    if [ "$1" = "$HOST_ARCH" ]; then echo env; return; fi
    command -v "qemu-$1-static" 2>/dev/null || command -v "qemu-$1" 2>/dev/null || true
}
bin_var() {
    case "$1" in
        aarch64-*) echo "${LL_BIN_AARCH64:-}" ;;
        armv7-*) echo "${LL_BIN_ARMV7:-}" ;;
        x86_64-*) echo "${LL_BIN_X86_64:-}" ;;
        *) echo "" ;;
    esac
}

# --- qemu-user present? --------------------------------------------------------
for t in $TARGETS; do
    if [ -z "$(find_qemu "$(qemu_for "$t")")" ]; then
        if [ "${CI:-}" = true ]; then
            echo "qemu-$(qemu_for "$t")-static not found, and CI is set: run .ci/cross-setup.sh first" >&2
            exit 1
        fi
        echo "SKIP tests/qemu.sh: qemu-user is not installed (qemu-$(qemu_for "$t")-static missing; 'make cross-setup' installs it)"
        echo "0 passed, 0 failed, 1 skipped"
        exit 0
    fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/qemu-test.XXXXXX")"
PIDS=()
cleanup() {
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$p" 2>/dev/null || true
    done
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- binaries -------------------------------------------------------------------
declare -A BIN
to_build=()
for t in $TARGETS; do
    b="$(bin_var "$t")"
    if [ -n "$b" ]; then BIN[$t]="$b"; else to_build+=("$t"); BIN[$t]="dist/$NAME-$t"; fi
done
if [ ${#to_build[@]} -gt 0 ]; then
    note "building ${to_build[*]} (.ci/cross-build.sh)"
    if ! bash .ci/cross-build.sh ${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"} "${to_build[@]}" > "$WORK/build.log" 2>&1; then
        tail -n 40 "$WORK/build.log"
        bad "cross build of ${to_build[*]} (toolchains missing? run 'make cross-setup')"
        echo "$pass passed, $fail failed"
        exit 1
    fi
    grep '^cross-build: .*path,' "$WORK/build.log" | sed 's/^/.... /' || true
fi

# --- static checks --------------------------------------------------------------
for t in $TARGETS; do
    b="${BIN[$t]}"
    if [ ! -x "$b" ]; then bad "$t: $b missing or not executable"; continue; fi
    desc="$(file -b "$b")"
    case "$t" in aarch64-*) want="ARM aarch64" ;; armv7-*) want="ARM, EABI5" ;; x86_64-*) want="x86-64" ;; *) want="" ;; esac
    if [[ "$desc" == *"$want"* && "$desc" == *"statically linked"* || "$desc" == *"$want"* && "$desc" == *"static-pie linked"* ]]; then
        ok "$t: file: $desc"
    else
        bad "$t: file says: $desc"
    fi
    size="$(stat -c %s "$b")"
    budget="$(budget_for "$t")"
    if [ "$size" -le "$budget" ]; then
        ok "$t: $size bytes (budget $budget)"
    else
        bad "$t: $size bytes, over the budget of $budget bytes"
    fi
    if readelf -l "$b" | grep -q 'INTERP'; then bad "$t: has a PT_INTERP program header"; else ok "$t: no INTERP"; fi
    if readelf -d "$b" | grep -q '(NEEDED)'; then
        bad "$t: needs shared libraries: $(readelf -d "$b" | grep NEEDED | tr -s ' ' | tr '\n' ';')"
    else
        ok "$t: no NEEDED"
    fi
done

# --- test CA, leaf certificate, servers -------------------------------------------
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=latency-logger test CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >/dev/null 2>&1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=127.0.0.1" -keyout leaf.key -out leaf.csr >/dev/null 2>&1
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1" > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile leaf.ext -out leaf.pem >/dev/null 2>&1

cat > servers.py <<'PY'
import http.server, ssl, sys, threading, os, signal
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("leaf.pem", "leaf.key")
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
for s in (plain, tls):
    threading.Thread(target=s.serve_forever, daemon=True).start()
with open("ports.tmp", "w") as f:
    f.write("%d %d\n" % (plain.server_address[1], tls.server_address[1]))
os.rename("ports.tmp", "ports")
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
threading.Event().wait(float(sys.argv[1]))   # bounded life, even if orphaned
PY
python3 servers.py 300 > servers.log 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s ports ] && break; sleep 0.1; done
[ -s ports ] || { cat servers.log; bad "servers did not start within 10 s"; echo "$pass passed, $fail failed"; exit 1; }
read -r HTTP_PORT HTTPS_PORT < ports
HTTP_URL="http://127.0.0.1:$HTTP_PORT/"
HTTPS_URL="https://127.0.0.1:$HTTPS_PORT/"
# the servers answer before any binary is judged against them
if python3 - "$HTTP_URL" "$HTTPS_URL" <<'PY'
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="ca.pem")
for u in sys.argv[1:]:
    assert urllib.request.urlopen(u, timeout=5, context=ctx).status == 200
PY
then ok "loopback servers: $HTTP_URL $HTTPS_URL (leaf signed by test CA)"
else bad "loopback servers do not answer"; fi
printf '# interval_seconds, URL\n0.5, %s\n0.5, %s\n' "$HTTP_URL" "$HTTPS_URL" > targets.csv

# --- run each binary under qemu ------------------------------------------------------
for t in $TARGETS; do
    b="${BIN[$t]}"; [[ "$b" = /* ]] || b="$ROOT/$b"
    [ -x "$b" ] || continue
    q="$(find_qemu "$(qemu_for "$t")")"
    out="$t.jsonl"; err="$t.err"
    start=$(date +%s.%N)
    "$q" "$b" -W 2 --cacert ca.pem targets.csv > "$out" 2> "$err" &
    pid=$!; PIDS+=("$pid")
    sleep "$RUN_SECS"
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && rc=0 || rc=$?
        bad "$t: exited early with status $rc: $(tail -n 5 "$err")"
        continue
    fi
    kill -TERM "$pid"
    rc=timeout
    for _ in $(seq 100); do   # up to 10 s for a graceful exit
        if ! kill -0 "$pid" 2>/dev/null; then wait "$pid" && rc=0 || rc=$?; break; fi
        sleep 0.1
    done
    if [ "$rc" = timeout ]; then
        kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        bad "$t: still running 10 s after SIGTERM"
        continue
    fi
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 0 ]; then ok "$t: exit status 0 after SIGTERM (ran ${secs}s $([ "$q" = env ] && echo natively || echo "under $(basename "$q")"))"
    else bad "$t: exit status $rc after SIGTERM: $(tail -n 5 "$err")"; fi

    if python3 - "$out" "$HTTP_URL" "$HTTPS_URL" <<'PY'
import json, sys
path, http_url, https_url = sys.argv[1:]
lines = [l for l in open(path) if l.strip()]
errors, seen = [], {http_url: 0, https_url: 0}
for n, line in enumerate(lines, 1):
    try:
        r = json.loads(line)
    except ValueError as e:
        errors.append("line %d: not JSON (%s): %r" % (n, e, line[:120])); continue
    missing = [k for k in ("url", "code", "namelookup", "connect", "appconnect", "pretransfer",
                           "starttransfer", "total", "error_kind") if k not in r]
    if missing:
        errors.append("line %d: missing %s" % (n, ",".join(missing))); continue
    u = r["url"]
    if u not in seen:
        errors.append("line %d: unexpected url %r" % (n, u)); continue
    if r["error_kind"] == "skipped" and r.get("error") == "shutting down":
        continue  # a job queued when SIGTERM came: reported, not probed (docs/operations.md, Signals)
    if r["code"] != 200 or r["error_kind"] not in (None, ""):
        errors.append("line %d: %s code=%r error_kind=%r error=%r" % (n, u, r["code"], r["error_kind"], r.get("error"))); continue
    t = [r[k] for k in ("namelookup", "connect", "pretransfer", "starttransfer", "total")]
    if not all(isinstance(x, (int, float)) and x >= 0 for x in t + [r["appconnect"]]) or t != sorted(t) or t[-1] <= 0:
        errors.append("line %d: timings out of order: %s" % (n, line.strip())); continue
    if u == https_url and not (r["connect"] <= r["appconnect"] <= r["pretransfer"] and r["appconnect"] > 0):
        errors.append("line %d: https appconnect not between connect and pretransfer: %s" % (n, line.strip())); continue
    if u == http_url and r["appconnect"] != 0:
        errors.append("line %d: http with appconnect %r" % (n, r["appconnect"])); continue
    seen[u] += 1
for u, c in seen.items():
    if c == 0:
        errors.append("no successful probe of %s" % u)
for e in errors[:10]:
    print("     " + e)
print("     %d lines; good probes: http %d, https %d" % (len(lines), seen[http_url], seen[https_url]))
sys.exit(1 if errors else 0)
PY
    then ok "$t: JSON lines (code 200, ordered timings) for http and https"
    else bad "$t: JSON lines check (stderr: $(tail -n 3 "$err" | tr '\n' ' '))"; fi
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
