#!/usr/bin/env bash
# Release packages from the static binaries (no debhelper, no OpenWrt SDK).
#
#   packaging/build.sh STEP...     STEP: deb ipk sums
#
#   deb    OUT/latency-logger_VERSION-1_{amd64,arm64,armhf}.deb with dpkg-deb
#          --build from a staging tree: binary, systemd unit, conffiles
#          /etc/latency-logger/targets.csv and /etc/default/latency-logger (0600),
#          man page (from the binary's -h), copyright, changelog.Debian.gz.
#   ipk    OUT/latency-logger_VERSION-1_ARCH.ipk for OpenWrt (opkg), one per
#          OpenWrt architecture name the aarch64 and armv7 binaries run on
#          (opkg installs only packages whose Architecture it lists); built
#          the way OpenWrt's ipkg-build does: a gzipped tar of debian-binary,
#          control.tar.gz and data.tar.gz.
#   sums   OUT/SHA256SUMS over the binaries and this version's packages in OUT.
#
# Environment:
#   BIN_DIR            where the binaries are, as latency-logger-TRIPLE (default dist/;
#                      `make static cross-arm` puts them there)
#   OUT_DIR            where packages go (default: BIN_DIR)
#   DEB_REVISION       Debian revision (default 1); IPK_RELEASE likewise (default 1)
#   PKG_MAINTAINER     "Name <email>" for the control files
#   SOURCE_DATE_EPOCH  timestamps in the packages (default: the last commit's time)
#   IPK_ARCHS_AARCH64, IPK_ARCHS_ARMV7   OpenWrt architecture names (defaults below)
set -euo pipefail
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/packaging
NAME=latency-logger
BIN_DIR=${BIN_DIR:-$ROOT/dist}
OUT_DIR=${OUT_DIR:-$BIN_DIR}
DEB_REVISION=${DEB_REVISION:-1}
IPK_RELEASE=${IPK_RELEASE:-1}
PKG_MAINTAINER=${PKG_MAINTAINER:-"latency-logger maintainers <maintainers@users.noreply.r-seed-83dba26d.example>"}
# aarch64: every OpenWrt aarch64 name. armv7: the binary is hard-float ARMv7
# (VFPv3-D16 and up), so the names of cores with an FPU; not arm_cortex-a9
# (e.g. bcm53xx: no FPU), not the ARMv5/v6 ones.
IPK_ARCHS_AARCH64=${IPK_ARCHS_AARCH64:-"aarch64_generic aarch64_cortex-a53 aarch64_cortex-a72 aarch64_cortex-a76"}
IPK_ARCHS_ARMV7=${IPK_ARCHS_ARMV7:-"arm_cortex-a7_neon-vfpv4 arm_cortex-a7_vfpv4 arm_cortex-a8_vfpv3 arm_cortex-a9_neon arm_cortex-a9_vfpv3-d16 arm_cortex-a15_neon-vfpv4 arm_cortex-a5_vfpv4"}

say() { printf 'packaging: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
[[ -n $VERSION ]] || die "no version in Cargo.toml [package]"
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
DATE_RFC2822=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
DATE_ISO=$(date -u +%Y-%m-%d -d "@$SOURCE_DATE_EPOCH")
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ll-packaging.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT_DIR"

bin_for() { echo "$BIN_DIR/$NAME-$1"; }

runner_for() { # TRIPLE -> command prefix to run that binary here ("" = natively)
    local arch=${1%%-*} q
    [[ $arch == armv7 ]] && arch=arm
    if [[ $arch == "$(uname -m)" ]]; then echo ""; return; fi
    q=$(command -v "qemu-$arch-static" || command -v "qemu-$arch" || true)
    [[ -n $q ]] && echo "$q" || echo "none"
}

# Each binary must exist and say this version: a stale dist/ fails here.
check_bin() { # TRIPLE
    local b r out; b=$(bin_for "$1")
    [[ -x $b ]] || die "$b missing: run 'make static cross-arm' (after 'make cross-setup')"
    r=$(runner_for "$1")
    if [[ $r == none ]]; then say "$1: no qemu to run -V; version not checked"; return; fi
    out=$($r "$b" -V) || die "$b -V failed"
    [[ $out == "$NAME $VERSION"* ]] || die "$b says '$out', Cargo.toml says $VERSION: rebuild it"
}

# --- shared pieces ------------------------------------------------------------
man_page() { # -> $WORK/latency-logger.1.gz, from whichever binary runs here
    [[ -f $WORK/$NAME.1.gz ]] && return 0
    local t r
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf; do
        [[ -x $(bin_for "$t") ]] || continue
        r=$(runner_for "$t")
        [[ $r == none ]] && continue
        python3 "$HERE/man.py" --runner "$r" --date "$DATE_ISO" --files "$(bin_for "$t")" >"$WORK/$NAME.1"
        gzip -9n <"$WORK/$NAME.1" >"$WORK/$NAME.1.gz"
        return 0
    done
    die "no binary in $BIN_DIR runs here (natively or under qemu) to make the man page from"
}

copyright() { # -> $WORK/copyright
    [[ -f $WORK/copyright ]] && return 0
    local meta=$WORK/metadata.json
    (cd "$ROOT" && { cargo metadata --format-version 1 --locked --offline --filter-platform "$1" 2>/dev/null \
        || cargo metadata --format-version 1 --locked --filter-platform "$1"; }) >"$meta" \
        || die "cargo metadata failed"
    python3 "$HERE/copyright.py" "$PKG_MAINTAINER" "${DATE_ISO%%-*}" <"$meta" >"$WORK/copyright"
}

changelog() { # -> $WORK/changelog.Debian.gz
    [[ -f $WORK/changelog.Debian.gz ]] && return 0
    {
        printf '%s (%s-%s) unstable; urgency=medium\n\n' "$NAME" "$VERSION" "$DEB_REVISION"
        printf '  * Upstream release %s (git %s), packaged from the static musl binary.\n\n' "$VERSION" "$COMMIT"
        printf ' -- %s  %s\n' "$PKG_MAINTAINER" "$DATE_RFC2822"
    } | gzip -9n >"$WORK/changelog.Debian.gz"
}

stamp() { find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

# --- Debian -------------------------------------------------------------------
build_deb() { # TRIPLE DEBIAN_ARCH
    local triple=$1 arch=$2 s=$WORK/deb-$2 deb
    check_bin "$triple"
    man_page; copyright "$triple"; changelog
    install -D -m 0755 "$(bin_for "$triple")" "$s/usr/bin/$NAME"
    install -D -m 0644 "$HERE/debian/$NAME.service" "$s/usr/lib/systemd/system/$NAME.service"
    install -D -m 0644 "$HERE/common/targets.csv" "$s/etc/$NAME/targets.csv"
    install -D -m 0600 "$HERE/debian/$NAME.default" "$s/etc/default/$NAME"
    install -D -m 0644 "$WORK/$NAME.1.gz" "$s/usr/share/man/man1/$NAME.1.gz"
    install -D -m 0644 "$WORK/copyright" "$s/usr/share/doc/$NAME/copyright"
    install -D -m 0644 "$WORK/changelog.Debian.gz" "$s/usr/share/doc/$NAME/changelog.Debian.gz"
    if [[ -f $HERE/debian/lintian-overrides ]]; then
        install -D -m 0644 "$HERE/debian/lintian-overrides" "$s/usr/share/lintian/overrides/$NAME"
    fi
    install -d -m 0755 "$s/DEBIAN"
    install -m 0755 "$HERE/debian/postinst" "$HERE/debian/prerm" "$HERE/debian/postrm" "$s/DEBIAN/"
    install -m 0644 "$HERE/debian/conffiles" "$s/DEBIAN/conffiles"
    # md5sums of everything but the conffiles (dpkg tracks those itself)
    (cd "$s" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$s/DEBIAN/md5sums"
    chmod 0644 "$s/DEBIAN/md5sums"
    local size; size=$(du -sk --apparent-size "$s/usr" "$s/etc" | awk '{ t += $1 } END { print t }')
    cat >"$s/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION-$DEB_REVISION
Architecture: $arch
Maintainer: $PKG_MAINTAINER
Installed-Size: $size
Section: net
Priority: optional
Description: timed HTTP(S) probes, as JSON lines or Avro records to Kafka
 latency-logger probes HTTP(S) URLs on their own schedules, times every
 phase of each request the way curl does (DNS, TCP connect, TLS, first
 byte, total) and writes one record per probe: JSON lines to the journal,
 or Avro records to Apache Kafka.
 .
 The package runs it as a hardened systemd service (dynamic user) that
 reads its targets from /etc/latency-logger/targets.csv and its flags from
 /etc/default/latency-logger. The binary is static: no dependencies.
EOF
    stamp "$s"
    deb=$OUT_DIR/${NAME}_${VERSION}-${DEB_REVISION}_${arch}.deb
    dpkg-deb --root-owner-group -Zxz --build "$s" "$deb" >/dev/null
    say "$(basename "$deb"): $(stat -c %s "$deb") bytes"
}

# --- OpenWrt ------------------------------------------------------------------
targz() { # DIR FILES... -> stdout: what ipkg-build writes (GNU tar, root, sorted, fixed mtime)
    local d=$1; shift
    tar -C "$d" --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
        --mtime="@$SOURCE_DATE_EPOCH" -cf - "$@" | gzip -9n
}

build_ipk() { # TRIPLE OPENWRT_ARCH
    local triple=$1 arch=$2 s=$WORK/ipk-$2 ipk
    local data=$WORK/data-$triple
    if [[ ! -f $data.tar.gz ]]; then # the same files for every OpenWrt name of one binary
        install -D -m 0755 "$(bin_for "$triple")" "$data/usr/bin/$NAME"
        install -D -m 0755 "$HERE/openwrt/$NAME.init" "$data/etc/init.d/$NAME"
        install -D -m 0600 "$HERE/openwrt/$NAME.config" "$data/etc/config/$NAME"
        install -D -m 0644 "$HERE/common/targets.csv" "$data/etc/$NAME/targets.csv"
        stamp "$data"
        targz "$data" . >"$data.tar.gz"
    fi
    install -d -m 0755 "$s/CONTROL" "$s/pkg"
    install -m 0755 "$HERE/openwrt/postinst" "$HERE/openwrt/prerm" "$s/CONTROL/"
    install -m 0644 "$HERE/openwrt/conffiles" "$s/CONTROL/conffiles"
    cp "$data.tar.gz" "$s/pkg/data.tar.gz"
    local size; size=$(gzip -dc <"$s/pkg/data.tar.gz" | wc -c)
    local license; license=$(sed -n '/^\[package\]/,/^\[/s/^license *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
    {
        echo "Package: $NAME"
        echo "Version: $VERSION-$IPK_RELEASE"
        [[ -n $license ]] && echo "License: $license"
        echo "Section: net"
        echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
        echo "Maintainer: $PKG_MAINTAINER"
        echo "Architecture: $arch"
        echo "Installed-Size: $size"
        echo "Description: timed HTTP(S) probes, as JSON lines (logd) or Avro records to Kafka;"
        echo " a procd service reading /etc/config/latency-logger and /etc/latency-logger/targets.csv."
        echo " Static binary ($triple): no dependencies."
    } >"$s/CONTROL/control"
    stamp "$s/CONTROL"
    targz "$s/CONTROL" . >"$s/pkg/control.tar.gz"
    echo "2.0" >"$s/pkg/debian-binary"
    stamp "$s/pkg"
    ipk=$OUT_DIR/${NAME}_${VERSION}-${IPK_RELEASE}_${arch}.ipk
    targz "$s/pkg" ./debian-binary ./data.tar.gz ./control.tar.gz >"$ipk"
    say "$(basename "$ipk"): $(stat -c %s "$ipk") bytes"
}

# --- steps --------------------------------------------------------------------
step_deb() {
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg)"
    rm -f "$OUT_DIR/${NAME}_"*.deb
    build_deb x86_64-unknown-linux-musl amd64
    build_deb aarch64-unknown-linux-musl arm64
    build_deb armv7-unknown-linux-musleabihf armhf
}

step_ipk() {
    local a
    rm -f "$OUT_DIR/${NAME}_"*.ipk
    check_bin aarch64-unknown-linux-musl
    check_bin armv7-unknown-linux-musleabihf
    for a in $IPK_ARCHS_AARCH64; do build_ipk aarch64-unknown-linux-musl "$a"; done
    for a in $IPK_ARCHS_ARMV7; do build_ipk armv7-unknown-linux-musleabihf "$a"; done
}

step_sums() {
    local files=() f
    for f in "$BIN_DIR/$NAME-"*-unknown-linux-musl* "$OUT_DIR/${NAME}_${VERSION}-"*.{deb,ipk}; do
        [[ -f $f ]] && files+=("$f")
    done
    ((${#files[@]})) || die "nothing to sum in $OUT_DIR"
    local rel=()
    for f in "${files[@]}"; do
        [[ $(dirname "$f") == "$OUT_DIR" ]] || cp -f "$f" "$OUT_DIR/"
        rel+=("$(basename "$f")")
    done
    (cd "$OUT_DIR" && sha256sum "${rel[@]}") >"$OUT_DIR/SHA256SUMS"
    say "SHA256SUMS: ${#rel[@]} files"
}

(($#)) || die "usage: $0 deb|ipk|sums ..."
say "version $VERSION (git $COMMIT), binaries from $BIN_DIR, packages to $OUT_DIR"
for s in "$@"; do
    case $s in
        deb | ipk | sums) "step_$s" ;;
        *) die "unknown step $s (deb ipk sums)" ;;
    esac
done
