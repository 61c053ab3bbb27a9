#!/usr/bin/env bash
# Static release builds for edge devices.
#
#   .ci/cross-build.sh [--example NAME] TARGET... [-- CARGO_ARGS...]
#
# For each TARGET: build with the ordinary toolchain when its rust-std is
# installed (or `rustup target add` can fetch it): the "plain" path. If not,
# and the target is armv7-unknown-linux-musleabihf, fall back to building std
# from source: the "build-std" path (pinned nightly + rust-src,
# -Zbuild-std=std,panic_abort, Debian's musl for armhf through its
# arm-linux-musleabihf-gcc wrapper, libgcc_eh.a offered as libunwind.a,
# -C link-self-contained=no). Says which path it used, copies the binary to
# dist/NAME-TARGET and prints its size.
#
# Environment:
#   CARGO_TARGET_DIR   default: ./target
#   DIST_DIR           default: ./dist
#   CROSS_NIGHTLY      toolchain for build-std (default nightly-2026-05-19)
#   CROSS_MODE         auto (default) | plain | build-std
#   SIZE_BUDGET        bytes; a larger binary is reported (default: 3,500,000 for
#                      x86_64, 3,000,000 for the ARM targets, as tests/qemu.sh checks)
#   SIZE_STRICT=1      ... and makes the script fail
#   CARGO_PROFILE_RELEASE_OPT_LEVEL=z|s|3 is read by cargo itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CROSS_NIGHTLY="${CROSS_NIGHTLY:-nightly-2026-05-19}"
CROSS_MODE="${CROSS_MODE:-auto}"
budget_for() { # TARGET
    if [ -n "${SIZE_BUDGET:-}" ]; then echo "$SIZE_BUDGET"
    elif [ "${1%%-*}" = x86_64 ]; then echo 3500000
    else echo 3000000; fi
}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DIST_DIR="${DIST_DIR:-$ROOT/dist}"

say() { printf 'cross-build: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

name=latency-logger
select=(--bin latency-logger)
subdir=""
targets=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --example) [ $# -ge 2 ] || die "--example needs a name"
                   name="$2"; select=(--example "$2"); subdir=examples/; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || die "usage: $0 [--example NAME] TARGET... [-- CARGO_ARGS...]"

has_rust_std() {  # is rust-std for $1 usable by the default toolchain?
    command -v rustup >/dev/null 2>&1 || return 0   # no rustup: trust the toolchain
    rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
    say "rust-std for $1 not installed; trying 'rustup target add $1'"
    rustup target add "$1" >/dev/null 2>&1
}

build_plain() {
    local t="$1"
    cargo build --release --target "$t" "${select[@]}" ${extra[@]+"${extra[@]}"}
}

build_std_armv7() {
    local t=armv7-unknown-linux-musleabihf
    command -v arm-linux-musleabihf-gcc >/dev/null \
        || die "arm-linux-musleabihf-gcc missing (Debian musl-dev:armhf): run 'make cross-setup'"
    rustup run "$CROSS_NIGHTLY" rustc --version >/dev/null 2>&1 \
        || die "toolchain $CROSS_NIGHTLY missing: run 'make cross-setup'"
    rustup component list --toolchain "$CROSS_NIGHTLY" --installed | grep -q '^rust-src' \
        || die "rust-src missing for $CROSS_NIGHTLY: run 'make cross-setup'"
    # The std `unwind` crate links -lunwind statically on musl; GCC's
    # libgcc_eh.a provides the same _Unwind_* API.
    local eh; eh="$(arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a)"
    [ -f "$eh" ] || die "libgcc_eh.a not found for arm-linux-gnueabihf-gcc"
    local sysdir="$CARGO_TARGET_DIR/cross-sysroot/$t"
    mkdir -p "$sysdir"
    ln -sf "$eh" "$sysdir/libunwind.a"
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=arm-linux-musleabihf-gcc \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-C link-self-contained=no -L native=$sysdir" \
    CC_armv7_unknown_linux_musleabihf=arm-linux-musleabihf-gcc \
    AR_armv7_unknown_linux_musleabihf=arm-linux-gnueabihf-ar \
        cargo "+$CROSS_NIGHTLY" build --release --target "$t" \
            -Zbuild-std=std,panic_abort "${select[@]}" ${extra[@]+"${extra[@]}"}
}

mkdir -p "$DIST_DIR"
summary=()
status=0
for t in "${targets[@]}"; do
    mode="$CROSS_MODE"
    if [ "$mode" = auto ]; then
        if has_rust_std "$t"; then
            mode=plain
        elif [ "$t" = armv7-unknown-linux-musleabihf ]; then
            say "no downloadable rust-std for $t: falling back to build-std with $CROSS_NIGHTLY"
            mode=build-std
        else
            die "no rust-std for $t and no fallback for it: run 'make cross-setup'"
        fi
    fi
    say "building $name for $t ($mode path, opt-level ${CARGO_PROFILE_RELEASE_OPT_LEVEL:-from Cargo.toml})"
    start=$(date +%s)
    case "$mode" in
        plain) build_plain "$t" ;;
        build-std)
            [ "$t" = armv7-unknown-linux-musleabihf ] || die "build-std path is set up for armv7 only"
            build_std_armv7 ;;
        *) die "CROSS_MODE must be auto, plain or build-std" ;;
    esac
    secs=$(( $(date +%s) - start ))
    out="$CARGO_TARGET_DIR/$t/release/$subdir$name"
    [ -f "$out" ] || die "expected $out after the build"
    cp -f "$out" "$DIST_DIR/$name-$t"
    size=$(stat -c %s "$DIST_DIR/$name-$t")
    mib=$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')
    line="$t: $mode path, $size bytes ($mib MiB), ${secs}s -> dist/$name-$t"
    budget=$(budget_for "$t")
    if [ "$size" -gt "$budget" ]; then
        line="$line  OVER BUDGET ($budget bytes)"
        [ "${SIZE_STRICT:-0}" = 1 ] && status=1
    fi
    summary+=("$line")
done
for l in "${summary[@]}"; do say "$l"; done
exit "$status"
