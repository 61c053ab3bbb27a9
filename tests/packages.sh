#!/usr/bin/env bash
# The release packages, built and taken apart (`make test-packages`).
#
# 1. builds (cargo no-ops when up to date) the three static binaries with
#    .ci/cross-build.sh, then the .deb and .ipk packages with
#    packaging/build.sh into a scratch directory;
# 2. each .deb: control fields (dpkg-deb -I), file list with modes and owners,
#    conffiles, md5sums, maintainer scripts (sh -n), the binary's machine,
#    the man page (renders without warnings, names every flag of -h),
#    copyright and changelog, `systemd-analyze verify` of the unit and its
#    hardening settings; lintian on the amd64 one (no error or warning);
# 3. each .ipk: outer and inner archives, control fields, conffiles, file
#    modes, the binary's machine, `sh -n` of the procd script and the
#    command line its start_service builds (procd calls stubbed);
# 4. runs the binary unpacked from the amd64 .deb for one probe against a
#    loopback HTTP server (python3 -m http.server) and checks the JSON record,
#    under strace: every system call it makes must pass the unit's
#    SystemCallFilter;
# 5. SHA256SUMS verifies.
#
# Needs: dpkg-deb, python3, systemd-analyze, strace, lintian (.ci/test-deps.sh
# installs them; without CI set, a missing lintian/strace/systemd-analyze is a
# skip with a note), the cross toolchains (.ci/cross-setup.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NAME=latency-logger
VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
TRIPLES=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

pass=0; fail=0; skip=0
ok()   { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad()  { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
note() { printf '.... %s\n' "$*"; }
skipped() {
    if [[ ${CI:-} == true ]]; then bad "$* (CI is set: .ci/test-deps.sh installs it)"; else skip=$((skip + 1)); printf 'SKIP %s\n' "$*"; fi
}
check() { # DESCRIPTION COMMAND...: ok if the command succeeds
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ll-packages.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${PIDS[@]+"${PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. build ---------------------------------------------------------------------
note "building ${TRIPLES[*]} (.ci/cross-build.sh)"
if ! bash .ci/cross-build.sh "${TRIPLES[@]}" >"$WORK/cross.log" 2>&1; then
    tail -n 40 "$WORK/cross.log"
    bad "static builds (toolchains missing? run 'make cross-setup')"
    echo "$pass passed, $fail failed, $skip skipped"; exit 1
fi
OUT=$WORK/out
if OUT_DIR=$OUT bash packaging/build.sh deb ipk sums >"$WORK/build.log" 2>&1; then
    ok "packaging/build.sh deb ipk sums (version $VERSION)"
    sed -n 's/^packaging: \(.*bytes\)$/.... \1/p' "$WORK/build.log"
else
    cat "$WORK/build.log"; bad "packaging/build.sh"
    echo "$pass passed, $fail failed, $skip skipped"; exit 1
fi

have() { command -v "$1" >/dev/null 2>&1; }

elf_is() { # FILE TRIPLE: static ELF for that machine
    local desc want
    desc=$(file -b "$1")
    case $2 in aarch64-*) want="ARM aarch64" ;; armv7-*) want="ARM, EABI5" ;; *) want="x86-64" ;; esac
    [[ $desc == *"$want"* && ($desc == *"statically linked"* || $desc == *"static-pie linked"*) ]] \
        || { echo "     file says: $desc (want $want, static)"; return 1; }
}

same_file() { cmp -s "$1" "$2" || { echo "     $1 differs from $2"; return 1; }; }

# `tar -tv` lines -> "MODE OWNER PATH" with directories dropped, sorted
listing() { awk '$1 !~ /^d/ { print $1, $2, $NF }' | sed 's# \./# /#' | LC_ALL=C sort; }

expect_listing() { # WHAT ACTUAL_FILE EXPECTED...
    local what=$1 actual=$2; shift 2
    printf '%s\n' "$@" | LC_ALL=C sort >"$WORK/expected"
    if diff -u "$WORK/expected" "$actual" >"$WORK/listing.diff"; then ok "$what"
    else sed 's/^/     /' "$WORK/listing.diff"; bad "$what"; fi
}

field() { sed -n "s/^$2: //p" "$1" | head -n 1; }

# --- 2. Debian packages --------------------------------------------------------------
declare -A DEB_TRIPLE=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl [armhf]=armv7-unknown-linux-musleabihf)
help_text=$(dist/$NAME-x86_64-unknown-linux-musl -h)
flags=$(grep -o -- '--[a-z][a-z-]*' <<<"$help_text" | LC_ALL=C sort -u)

for arch in amd64 arm64 armhf; do
    deb=$OUT/${NAME}_${VERSION}-1_${arch}.deb
    t=${DEB_TRIPLE[$arch]}
    if [[ ! -f $deb ]]; then bad "$arch: $deb missing"; continue; fi
    u=$WORK/deb-$arch; mkdir -p "$u/root" "$u/control"
    dpkg-deb -I "$deb" control >"$u/control.txt"
    fields_ok=yes
    for kv in "Package=$NAME" "Version=$VERSION-1" "Architecture=$arch" "Section=net" "Priority=optional"; do
        [[ $(field "$u/control.txt" "${kv%%=*}") == "${kv#*=}" ]] || { echo "     ${kv%%=*}: '$(field "$u/control.txt" "${kv%%=*}")', want '${kv#*=}'"; fields_ok=no; }
    done
    [[ $(field "$u/control.txt" Maintainer) == *"<"*"@"*">" ]] || { echo "     Maintainer: not 'Name <email>'"; fields_ok=no; }
    [[ $(field "$u/control.txt" Installed-Size) =~ ^[0-9]+$ ]] || { echo "     Installed-Size not a number"; fields_ok=no; }
    [[ -n $(field "$u/control.txt" Description) ]] || { echo "     no Description"; fields_ok=no; }
    grep -q '^Depends:' "$u/control.txt" && { echo "     Depends: a static binary needs none"; fields_ok=no; }
    [[ $fields_ok == yes ]] && ok "$arch: control fields (Package, Version $VERSION-1, Architecture, Maintainer, …)" || bad "$arch: control fields"

    dpkg-deb -c "$deb" | listing >"$u/listing"
    expect_listing "$arch: file list, modes and owners" "$u/listing" \
        "-rwxr-xr-x root/root /usr/bin/$NAME" \
        "-rw-r--r-- root/root /usr/lib/systemd/system/$NAME.service" \
        "-rw-r--r-- root/root /etc/$NAME/targets.csv" \
        "-rw------- root/root /etc/default/$NAME" \
        "-rw-r--r-- root/root /usr/share/man/man1/$NAME.1.gz" \
        "-rw-r--r-- root/root /usr/share/doc/$NAME/copyright" \
        "-rw-r--r-- root/root /usr/share/doc/$NAME/changelog.Debian.gz" \
        "-rw-r--r-- root/root /usr/share/lintian/overrides/$NAME"

    dpkg-deb -e "$deb" "$u/control/DEBIAN"
    dpkg-deb -x "$deb" "$u/root"
    check "$arch: conffiles = /etc/default/$NAME, /etc/$NAME/targets.csv" \
        diff <(LC_ALL=C sort "$u/control/DEBIAN/conffiles") <(printf '%s\n' "/etc/default/$NAME" "/etc/$NAME/targets.csv")
    check "$arch: md5sums match the files" bash -c "cd '$u/root' && md5sum --quiet -c '$u/control/DEBIAN/md5sums'"
    scripts_ok=yes
    for sc in postinst prerm postrm; do
        [[ $(stat -c %a "$u/control/DEBIAN/$sc") == 755 ]] && sh -n "$u/control/DEBIAN/$sc" || scripts_ok=no
    done
    [[ $scripts_ok == yes ]] && ok "$arch: postinst, prerm, postrm: mode 0755, sh -n" || bad "$arch: maintainer scripts"
    check "$arch: /usr/bin/$NAME is dist/$NAME-$t, static $t" \
        bash -c "$(declare -f elf_is same_file); same_file '$u/root/usr/bin/$NAME' 'dist/$NAME-$t' && elf_is '$u/root/usr/bin/$NAME' '$t'"
    check "$arch: changelog.Debian.gz names $NAME ($VERSION-1)" \
        bash -c "gzip -dc '$u/root/usr/share/doc/$NAME/changelog.Debian.gz' | head -n 1 | grep -qF '$NAME ($VERSION-1) '"
    check "$arch: copyright is DEP-5 and lists the linked crates" \
        bash -c "grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' '$u/root/usr/share/doc/$NAME/copyright' && grep -q '^ rustls ' '$u/root/usr/share/doc/$NAME/copyright'"

    if [[ $arch == amd64 ]]; then
        # the man page: renders cleanly, and names every flag that -h names
        man1=$u/root/usr/share/man/man1/$NAME.1.gz
        if MANWIDTH=80 man --warnings -l "$man1" >"$WORK/man.txt" 2>"$WORK/man.err" && [[ ! -s $WORK/man.err ]]; then
            missing=$(while read -r f; do grep -qF -- "$f" "$WORK/man.txt" || echo "$f"; done <<<"$flags")
            if [[ -z $missing ]]; then ok "man page renders without warnings and names all $(wc -l <<<"$flags") flags of -h"
            else bad "man page lacks: $(tr '\n' ' ' <<<"$missing")"; fi
        else
            sed 's/^/     /' "$WORK/man.err"; bad "man page: warnings from man/groff"
        fi

        # the unit: systemd-analyze verify prints nothing for a clean unit
        unit=$u/root/usr/lib/systemd/system/$NAME.service
        if have systemd-analyze; then
            mkdir -p "$WORK/unit"
            sed "s#/usr/bin/$NAME#$u/root/usr/bin/$NAME#g" "$unit" >"$WORK/unit/$NAME.service"
            if systemd-analyze verify --man=no "$WORK/unit/$NAME.service" >"$WORK/verify.log" 2>&1 && [[ ! -s $WORK/verify.log ]]; then
                ok "systemd-analyze verify $NAME.service: clean"
            else
                sed 's/^/     /' "$WORK/verify.log"; bad "systemd-analyze verify $NAME.service"
            fi
            exposure=$(systemd-analyze security --offline=true "$WORK/unit/$NAME.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
            if [[ -n $exposure ]] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
                ok "systemd-analyze security: exposure $exposure (≤ 2.0)"
            else
                bad "systemd-analyze security: exposure '${exposure:-?}' (want ≤ 2.0)"
            fi
        else
            skipped "systemd-analyze not installed: unit not verified"
        fi
        unit_ok=yes
        for want in "DynamicUser=yes" "ExecReload=/bin/kill -HUP \$MAINPID" "ProtectSystem=strict" \
            "StateDirectory=$NAME" "NoNewPrivileges=yes" "EnvironmentFile=-/etc/default/$NAME" \
            "ExecStart=/usr/bin/$NAME \$LATENCY_LOGGER_ARGS /etc/$NAME/targets.csv" "RestartPreventExitStatus=2"; do
            grep -qxF -- "$want" "$unit" || { echo "     unit lacks: $want"; unit_ok=no; }
        done
        stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
        # stop bound: 10 s for probes in flight + 10 s Kafka flush, with margin
        [[ -n $stop && $stop -gt 20 ]] || { echo "     TimeoutStopSec='$stop': must exceed 10 s + 10 s"; unit_ok=no; }
        [[ $unit_ok == yes ]] && ok "unit: DynamicUser, ExecReload SIGHUP, hardening, EnvironmentFile, TimeoutStopSec=$stop" || bad "unit settings"

        # ExecCondition: skips a targets file that has comments only (as installed)
        cond=$(sed -n 's/^ExecCondition=//p' "$unit" | sed "s#/etc/$NAME/targets.csv##")
        printf '# only\n\n   # comments\n' >"$WORK/empty.csv"
        printf '# a comment\n 5, http://127.0.0.1/\n' >"$WORK/one.csv"
        # shellcheck disable=SC2086 # the unit's command line, split as systemd does (no quotes inside but the pattern)
        if eval "$cond '$u/root/etc/$NAME/targets.csv'" || eval "$cond '$WORK/empty.csv'" || ! eval "$cond '$WORK/one.csv'"; then
            bad "ExecCondition: must skip the installed targets.csv and a comments-only file, pass a file with a target"
        else
            ok "ExecCondition skips the installed (comments-only) targets.csv, passes one with a target"
        fi

        if have lintian; then
            lintian -E -I --pedantic --fail-on none "$deb" >"$WORK/lintian.log" 2>&1 || true
            if grep -E '^[EW]: ' "$WORK/lintian.log" >"$WORK/lintian.bad"; then
                sed 's/^/     /' "$WORK/lintian.bad"; bad "lintian: errors or warnings"
            else
                ok "lintian $(lintian --version | awk '{ print $2 }'): no error or warning$(grep -c '^[IPX]: ' "$WORK/lintian.log" | awk '$1 > 0 { print ", " $1 " info/pedantic tag(s)" }')"
                grep -E '^[IPX]: ' "$WORK/lintian.log" | sed 's/^/     /' || true
            fi
        else
            skipped "lintian not installed"
        fi
    fi
done

# --- 3. OpenWrt packages -------------------------------------------------------------
ipks=("$OUT"/${NAME}_"$VERSION"-1_*.ipk)
n_aarch64=0; n_arm=0
for ipk in "${ipks[@]}"; do
    [[ -f $ipk ]] || { bad "no .ipk built"; break; }
    arch=${ipk##*/${NAME}_"$VERSION"-1_}; arch=${arch%.ipk}
    case $arch in aarch64_*) t=aarch64-unknown-linux-musl; n_aarch64=$((n_aarch64 + 1)) ;;
                  arm_*) t=armv7-unknown-linux-musleabihf; n_arm=$((n_arm + 1)) ;;
                  *) bad "$arch: unexpected OpenWrt architecture"; continue ;; esac
    u=$WORK/ipk-$arch; mkdir -p "$u/outer" "$u/control" "$u/data"
    errs=()
    [[ $(head -c 2 "$ipk" | od -An -tx1 | tr -d ' ') == 1f8b ]] || errs+=("outer archive is not gzip (OpenWrt's ipkg-build format)")
    tar -tzf "$ipk" | LC_ALL=C sort >"$u/outer.list"
    [[ $(tr '\n' ' ' <"$u/outer.list") == "./control.tar.gz ./data.tar.gz ./debian-binary " ]] || errs+=("outer members: $(tr '\n' ' ' <"$u/outer.list")")
    tar -xzf "$ipk" -C "$u/outer"
    [[ $(cat "$u/outer/debian-binary") == 2.0 ]] || errs+=("debian-binary is not 2.0")
    tar -xzf "$u/outer/control.tar.gz" -C "$u/control"
    tar -xzf "$u/outer/data.tar.gz" -C "$u/data"
    c=$u/control/control
    for kv in "Package=$NAME" "Version=$VERSION-1" "Architecture=$arch" "Section=net"; do
        [[ $(field "$c" "${kv%%=*}") == "${kv#*=}" ]] || errs+=("${kv%%=*}: '$(field "$c" "${kv%%=*}")', want '${kv#*=}'")
    done
    [[ $(field "$c" Installed-Size) == "$(gzip -dc "$u/outer/data.tar.gz" | wc -c)" ]] || errs+=("Installed-Size is not the data size")
    [[ -n $(field "$c" Maintainer) && -n $(field "$c" Description) ]] || errs+=("Maintainer or Description missing")
    grep -q '^Depends:' "$c" && errs+=("Depends: a static binary needs none")
    if ((${#errs[@]})); then printf '     %s\n' "${errs[@]}"; bad "$arch: archive layout and control fields"
    else ok "$arch: gzip tar of debian-binary 2.0, control.tar.gz, data.tar.gz; control fields"; fi

    tar -tvzf "$u/outer/data.tar.gz" | listing | sed 's#^\([^ ]*\) 0/0 #\1 root/root #' >"$u/listing"
    expect_listing "$arch: data files, modes, owners" "$u/listing" \
        "-rwxr-xr-x root/root /usr/bin/$NAME" \
        "-rwxr-xr-x root/root /etc/init.d/$NAME" \
        "-rw------- root/root /etc/config/$NAME" \
        "-rw-r--r-- root/root /etc/$NAME/targets.csv"
    conf_ok=yes
    diff -q <(LC_ALL=C sort "$u/control/conffiles") <(printf '%s\n' "/etc/$NAME/targets.csv" "/etc/config/$NAME" | LC_ALL=C sort) >/dev/null || conf_ok=no
    while read -r f; do [[ -f $u/data$f ]] || conf_ok=no; done <"$u/control/conffiles"
    for sc in postinst prerm; do [[ -x $u/control/$sc ]] && sh -n "$u/control/$sc" || conf_ok=no; done
    [[ $conf_ok == yes ]] && ok "$arch: conffiles (/etc/config/$NAME, targets.csv) present; postinst/prerm executable, sh -n" || bad "$arch: conffiles or scripts"
    check "$arch: /usr/bin/$NAME is dist/$NAME-$t, static $t" \
        bash -c "$(declare -f elf_is same_file); same_file '$u/data/usr/bin/$NAME' 'dist/$NAME-$t' && elf_is '$u/data/usr/bin/$NAME' '$t'"
done
[[ $n_aarch64 -ge 1 && $n_arm -ge 1 ]] && ok ".ipk for $n_aarch64 aarch64 and $n_arm armv7 OpenWrt architectures" || bad ".ipk: want aarch64 and armv7 ones"

# the procd script: syntax, then what start_service asks procd for (procd calls stubbed)
init=$WORK/ipk-aarch64_generic/data/etc/init.d/$NAME
if [[ -f $init ]]; then
    check "procd init script: sh -n" sh -n "$init"
    check "procd init script: USE_PROCD=1, start_service, reload_service sends HUP, respawn" \
        bash -c "grep -qx 'USE_PROCD=1' '$init' && grep -q '^start_service()' '$init' && grep -q '^reload_service()' '$init' \
                 && grep -q 'procd_send_signal \"\$NAME\" main HUP' '$init' && grep -q 'procd_set_param respawn' '$init'"
    cat >"$WORK/procd-stub.sh" <<'SH'
# What rc.common and procd.sh would provide, recording the calls.
config_load() { :; }
config_get() { eval "$1=\${CFG_$3:-\$4}"; }
config_get_bool() { eval "$1=\${CFG_$3:-\$4}"; }
procd_open_instance() { echo "open $*"; }
procd_set_param() { printf 'param'; printf ' [%s]' "$@"; echo; }
procd_close_instance() { echo close; }
logger() { echo "logger $*"; }
SH
    stub_run() { # TARGETS_FILE ARGS PASSWORD
        # shellcheck disable=SC2016
        CFG_targets=$1 CFG_args=$2 CFG_sasl_password=$3 sh -c '. "$1"; . "$2"; start_service' _ "$WORK/procd-stub.sh" "$init"
    }
    printf '5, http://127.0.0.1:1/\n' >"$WORK/t.csv"
    got=$(stub_run "$WORK/t.csv" "-B k1:9092,k2:9092 -T mon --compression gzip" "s3cr*t")
    want="open main
param [command] [/usr/bin/$NAME] [-B] [k1:9092,k2:9092] [-T] [mon] [--compression] [gzip] [$WORK/t.csv]
param [env] [LATENCY_LOGGER_SASL_PASSWORD=s3cr*t]
param [respawn] [3600] [5] [5]
param [stdout] [1]
param [stderr] [1]
param [term_timeout] [30]
close"
    if [[ $got == "$want" ]]; then ok "procd start_service: command line from UCI args (split, no globbing), password in env, respawn, term_timeout 30"
    else diff <(echo "$want") <(echo "$got") | sed 's/^/     /'; bad "procd start_service: unexpected procd calls"; fi
    got=$(stub_run "$u/../ipk-aarch64_generic/data/etc/$NAME/targets.csv" "" "")
    if [[ $got == "logger "*"no targets"* && $got != *open* ]]; then ok "procd start_service: the installed (comments-only) targets.csv starts nothing, says why"
    else echo "     $got"; bad "procd start_service with no targets"; fi
    check "UCI config: section main with enabled, targets, args, sasl_password, term_timeout" \
        bash -c "d='$WORK/ipk-aarch64_generic/data/etc/config/$NAME'; grep -q \"^config $NAME 'main'\" \"\$d\" && for o in enabled targets args sasl_password term_timeout; do grep -q \"^[[:space:]]*option \$o \" \"\$d\" || exit 1; done"
else
    bad "no aarch64_generic .ipk to take the procd script from"
fi

# --- 4. the packaged binary probes --------------------------------------------------
bin=$WORK/deb-amd64/root/usr/bin/$NAME
if [[ -x $bin && $(uname -m) == x86_64 ]]; then
    v=$("$bin" -V)
    if [[ $v =~ ^$NAME\ $VERSION\ \(([0-9a-f]{7,}|unknown)\)$ ]]; then ok "-V: $v"; else bad "-V says '$v' (want '$NAME $VERSION (COMMIT)')"; fi
    mkdir -p "$WORK/www"; echo hello >"$WORK/www/index.html"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (cd "$WORK/www" && exec timeout 120 python3 -m http.server --bind 127.0.0.1 "$port") >"$WORK/http.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null && break; sleep 0.1; done
    printf '# one target\n0.3, http://127.0.0.1:%s/\n' "$port" >"$WORK/probe.csv"
    tracer=()
    if have strace; then tracer=(strace -f -qq -o "$WORK/strace.log"); fi
    "${tracer[@]}" "$bin" "$WORK/probe.csv" >"$WORK/probe.jsonl" 2>"$WORK/probe.err" &
    pid=$!; PIDS+=("$pid")
    for _ in $(seq 100); do [[ -s $WORK/probe.jsonl ]] && break; sleep 0.1; done
    # under strace, signal the traced binary: strace itself blocks SIGTERM
    target=$pid
    if ((${#tracer[@]})); then
        target=$(ps -o pid= --ppid "$pid" | head -n 1 | tr -d ' ')
        target=${target:-$pid}
    fi
    kill -TERM "$target" 2>/dev/null || true
    rc=0; wait "$pid" || rc=$?
    if [[ $rc == 0 ]] && python3 - "$WORK/probe.jsonl" "http://127.0.0.1:$port/" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no record"
r = json.loads(lines[0])
assert r["url"] == sys.argv[2], r["url"]
assert r["code"] == 200 and r["error_kind"] is None, r
assert r["size_download"] == len(b"hello\n"), r["size_download"]
t = [r[k] for k in ("namelookup", "connect", "pretransfer", "starttransfer", "total")]
assert t == sorted(t) and t[-1] > 0 and r["appconnect"] == 0, t
print("     " + lines[0].strip()[:160])
PY
    then ok "the .deb's binary probed the loopback server: code 200, ordered timings, exit 0 after SIGTERM"
    else bad "one probe with the .deb's binary (exit $rc): $(tail -n 3 "$WORK/probe.err" | tr '\n' ' ')"; fi

    # the unit's SystemCallFilter must allow every call that run made
    if [[ -s $WORK/strace.log ]] && have systemd-analyze; then
        if python3 - "$WORK/strace.log" "$WORK/unit/$NAME.service" <<'PY'
import re, subprocess, sys
def expand(name, seen=None):
    out = set()
    for line in subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True).stdout.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out |= expand(line) if line.startswith("@") else {line}
    return out
allowed, denied = set(), set()
for line in open(sys.argv[2]):
    if line.startswith("SystemCallFilter="):
        spec = line.split("=", 1)[1].split()
        if spec[0].startswith("~"):
            spec[0] = spec[0][1:]
            for s in spec: denied |= expand(s) if s.startswith("@") else {s}
        else:
            for s in spec: allowed |= expand(s) if s.startswith("@") else {s}
used = set()
for line in open(sys.argv[1]):
    m = re.match(r"^\d+\s+([a-z0-9_]+)\(", line)
    if m: used.add(m.group(1))
used.discard("execve")  # strace's own exec of the binary; systemd execs before the filter's checks matter
bad = sorted(s for s in used if s not in allowed or s in denied)
print(f"     {len(used)} distinct system calls; outside the filter: {bad or 'none'}")
sys.exit(1 if bad else 0)
PY
        then ok "every system call of that run passes the unit's SystemCallFilter"
        else bad "system calls outside the unit's SystemCallFilter (the service would get EPERM)"; fi
    elif ! have strace; then
        skipped "strace not installed: system calls not checked against the unit's filter"
    fi
    # the unit's ExecReload and the procd reload run `--check` on the targets file
    if grep -q -- '--check' <<<"$help_text"; then
        sed 's/^# \([0-9]\)/\1/' "$WORK/deb-amd64/root/etc/$NAME/targets.csv" >"$WORK/examples.csv"
        if "$bin" --check "$WORK/examples.csv" >"$WORK/check.out" 2>&1; then
            ok "--check accepts the packaged targets.csv's examples, uncommented: $(head -n 1 "$WORK/check.out")"
        else
            bad "--check rejects the packaged targets.csv's examples: $(head -n 3 "$WORK/check.out" | tr '\n' ' ')"
        fi
    else
        note "this binary has no --check yet: the packaged examples are not validated"
    fi
else
    note "not on x86_64: the probe check runs the amd64 package's binary only"
fi

# --- 5. checksums ------------------------------------------------------------------------
check "SHA256SUMS: $(wc -l <"$OUT/SHA256SUMS") files verify" bash -c "cd '$OUT' && sha256sum --quiet -c SHA256SUMS"

echo "$pass passed, $fail failed, $skip skipped"
[[ $fail == 0 ]]
