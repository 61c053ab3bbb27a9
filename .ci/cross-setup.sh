#!/usr/bin/env bash
# Installs everything the static/cross builds and tests/qemu.sh need on a fresh
# Debian 12 (bookworm) machine. Idempotent; run as root (`make cross-setup`).
#
#   apt:    cross gcc for arm64/armhf (+ their libc headers, for C in ring),
#           musl-tools (musl-gcc for x86_64), musl-dev:armhf (musl for the
#           armv7 build-std fallback; multiarch), qemu-user-static, file,
#           binutils-multiarch (readelf/objdump for every arch), openssl.
#   rustup: rust-std for the three musl targets. Where the armv7 rust-std
#           cannot be downloaded (404 on some mirrors), a pinned nightly with
#           rust-src so .ci/cross-build.sh can build std from source.
#
# Environment: CROSS_NIGHTLY (default below) names the nightly toolchain used
# for the build-std fallback; keep it equal to the one in cross-build.sh.
set -euo pipefail

CROSS_NIGHTLY="${CROSS_NIGHTLY:-nightly-2026-05-19}"
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

log() { printf 'cross-setup: %s\n' "$*" >&2; }

# A mirror mid-sync can fail one index (seen here: bookworm-security
# binary-armhf "File has unexpected size ... Mirror sync in progress?"); the
# packages needed come from bookworm main, so retry, then go on with the
# indexes that did download and let apt-get install be the judge.
apt_update() {
    local i
    for i in 1 2 3; do
        $SUDO apt-get -o Acquire::Retries=3 update -qq && return 0
        log "apt-get update failed (try $i of 3)"
        [ "$i" = 3 ] || sleep 10
    done
    log "warning: apt-get update incomplete; installing from the indexes that did download"
}

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

# --- Debian packages --------------------------------------------------------
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
    log "adding dpkg architecture armhf (for musl-dev:armhf)"
    $SUDO dpkg --add-architecture armhf
fi
PKGS=(
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    musl-tools musl-dev:armhf
    qemu-user-static file binutils-multiarch
    openssl python3 ca-certificates
)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "Debian packages already installed"
fi

# --- Rust targets ------------------------------------------------------------
command -v rustup >/dev/null || { log "rustup not found: install Rust with rustup first"; exit 1; }
installed="$(rustup target list --installed)"
need_nightly=0
for t in "${TARGETS[@]}"; do
    if grep -qx "$t" <<<"$installed"; then
        log "rust-std $t: present"
    elif rustup target add "$t" >/dev/null 2>&1; then
        log "rust-std $t: installed"
    else
        log "rust-std $t: NOT downloadable; will build std from source with $CROSS_NIGHTLY"
        need_nightly=1
    fi
done

# Fallback toolchain for build-std (armv7 musl rust-std is 404 on some mirrors).
if [ "$need_nightly" = 1 ] || [ "${CROSS_SETUP_NIGHTLY:-0}" = 1 ]; then
    if rustup run "$CROSS_NIGHTLY" rustc --version >/dev/null 2>&1 \
        && rustup component list --toolchain "$CROSS_NIGHTLY" --installed 2>/dev/null | grep -q '^rust-src'; then
        log "$CROSS_NIGHTLY with rust-src: present"
    else
        log "installing $CROSS_NIGHTLY (minimal) + rust-src"
        rustup toolchain install "$CROSS_NIGHTLY" --profile minimal --component rust-src
    fi
fi
log "done"
