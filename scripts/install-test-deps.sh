#!/usr/bin/env bash
# Installs what the test suite runs for real (Debian packages), when it is missing.
#
# Each line of NEEDS is "<command or file> <package> [apt release]": when the command (or file)
# is absent, the package is installed. Tests never skip because a tool is absent: if this
# script cannot install something (not root, no apt), it stops with the list of packages.
set -euo pipefail

NEEDS=(
  # caas chain: boot media built and booted under QEMU (tests/chain_*.rs)
  "qemu-system-x86_64 qemu-system-x86 bookworm-backports"
  "/usr/share/ovmf/OVMF.fd ovmf"
  "/usr/lib/ipxe/ipxe.lkrn ipxe"
  "/usr/lib/ipxe/ipxe.efi ipxe"
  "xorriso xorriso"
  "/usr/lib/ISOLINUX/isolinux.bin isolinux"
  "/usr/lib/syslinux/modules/bios/ldlinux.c32 syslinux-common"
  "mformat mtools"
  "/usr/sbin/dnsmasq dnsmasq-base"
  # caas chain build --ipxe-src: iPXE built from source (scripts/ipxe/build.sh), PXE-booted by
  # QEMU's own PXE ROM (tests/chain_boot.rs)
  "gcc gcc"
  "make make"
  "perl perl"
  "/usr/include/lzma.h liblzma-dev"
  "/usr/lib/ipxe/qemu/pxe-e1000.rom ipxe-qemu"
  # discovery: a real kernel under QEMU runs `caas discover` (tests/discovery_qemu.rs)
  "/bin/busybox busybox-static"
  "/usr/share/doc/linux-image-cloud-amd64 linux-image-cloud-amd64"
  "strip binutils"
  # discovery: the POST /discovery load generator of benches/api.rs
  "wrk wrk"
  # the discovery store on PostgreSQL: a private cluster per test (tests/store.rs,
  # tests/api_postgres.rs; initdb and pg_ctl from /usr/lib/postgresql/<version>/bin)
  "/usr/share/postgresql-common/pg_wrapper postgresql"
  # the whole boot path served by a stock HTTP server (tests/boot_e2e.rs)
  "/usr/sbin/nginx nginx-light"
  # caas assets: an independent OpenPGP oracle (tests/assets.rs)
  "sqv sqv"
  # caas gen ignition / gen cluster: every generated .ign through the real validator
  "ignition-validate ignition"
  # caas assets fetch etcd: a real etcd binary in the test release (tests/assets_etcd.rs)
  "/usr/bin/etcd etcd-server"
  # make static: the musl C toolchain for the C parts (SQLite, ring) of the static caas
  "musl-gcc musl-tools"
  # the virtual rack (tests/rack.rs): the stand-in OS built from Debian packages
  # (scripts/standin-os/build.sh), etcdctl to query the cluster from the host, matchbox
  # built from source, curl to poll the servers
  "mmdebstrap mmdebstrap"
  "zstd zstd"
  "cpio cpio"
  "etcdctl etcd-client"
  "go golang-go"
  "ip iproute2"
  "curl curl"
)

# make static: Rust's standard library for the musl target comes from rustup, not from Debian.
if command -v rustup >/dev/null 2>&1 \
  && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi

missing=()
backports=()
for need in "${NEEDS[@]}"; do
  read -r what package release <<<"$need"
  if [[ "$what" == /* ]]; then present() { [ -e "$what" ]; }; else present() { command -v "$what" >/dev/null 2>&1; }; fi
  if ! present; then
    if [ "${release:-}" = bookworm-backports ]; then backports+=("$package"); else missing+=("$package"); fi
  fi
done

install_packages() {
  echo "installing test dependencies: ${missing[*]} ${backports[*]}" >&2
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the tests need these Debian packages: ${missing[*]} ${backports[*]} (run as root on Debian, or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ ${#backports[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The machine image ships qemu-utils from backports; qemu-system-x86 must come from there too.
    echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/caas-backports.list
  fi
  apt-get update -q
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  if [ ${#backports[@]} -gt 0 ]; then
    apt-get install -y -q --no-install-recommends -t bookworm-backports "${backports[@]}"
  fi
}

if [ ${#missing[@]} -gt 0 ] || [ ${#backports[@]} -gt 0 ]; then
  install_packages
fi

# Stock matchbox v0.8.3 for the virtual rack, built offline from the source tarball next to the
# repository (../shared/thirdparty) into a cache keyed by the tarball's hash. tests/rack.rs reads
# the binary's path from $cache/matchbox/current.
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${CAAS_TEST_CACHE:-/var/cache/caas-test}
thirdparty=$repo/../shared/thirdparty
if [ -x "$thirdparty/build.sh" ] && [ -f "$thirdparty/matchbox-0.8.3.tar.gz" ]; then
  key=$(cat "$thirdparty/matchbox-0.8.3.tar.gz" "$thirdparty/build.sh" | sha256sum | cut -c1-16)
  out=$cache/matchbox/$key
  if [ ! -x "$out/matchbox" ]; then
    echo "building matchbox v0.8.3 into $out" >&2
    mkdir -p "$cache/matchbox"
    tmp=$(mktemp -d "$cache/matchbox/.build.XXXXXX")
    "$thirdparty/build.sh" "$tmp" >&2
    rm -rf "$out"
    mv "$tmp" "$out"
  fi
  echo "$out/matchbox" >"$cache/matchbox/current.tmp"
  mv "$cache/matchbox/current.tmp" "$cache/matchbox/current"
elif [ ! -s "$cache/matchbox/current" ]; then
  echo "note: tests/rack.rs needs stock matchbox v0.8.3: build it from github.com/poseidon/matchbox" >&2
  echo "      (tag v0.8.3: go build -o matchbox ./cmd/matchbox) and write its path to $cache/matchbox/current" >&2
fi

# The spec 2.x oracle (tests/oracle/ignition2/main.go): Ignition's own 2.x config parser as
# vendored in matchbox v0.8.3's source, built offline inside that tree into a cache keyed by the
# tarball and the program. Tests read the binary's path from $cache/ignition2/current.
oracle_src=$repo/tests/oracle/ignition2/main.go
if [ -f "$thirdparty/matchbox-0.8.3.tar.gz" ]; then
  key=$(cat "$thirdparty/matchbox-0.8.3.tar.gz" "$oracle_src" | sha256sum | cut -c1-16)
  out=$cache/ignition2/$key
  if [ ! -x "$out/ignition2-check" ]; then
    echo "building the Ignition spec 2.x oracle into $out" >&2
    mkdir -p "$cache/ignition2"
    tmp=$(mktemp -d "$cache/ignition2/.build.XXXXXX")
    tar xzf "$thirdparty/matchbox-0.8.3.tar.gz" -C "$tmp"
    mkdir "$tmp/matchbox-0.8.3/caas-ignition2-check"
    cp "$oracle_src" "$tmp/matchbox-0.8.3/caas-ignition2-check/main.go"
    (cd "$tmp/matchbox-0.8.3" && GOFLAGS=-mod=vendor CGO_ENABLED=0 GOPROXY=off GOCACHE="$tmp/cache" \
       go build -o "$tmp/ignition2-check" ./caas-ignition2-check)
    mkdir "$tmp/out"
    mv "$tmp/ignition2-check" "$tmp/out/"
    rm -rf "$out"
    mv "$tmp/out" "$out"
    rm -rf "$tmp"
  fi
  echo "$out/ignition2-check" >"$cache/ignition2/current.tmp"
  mv "$cache/ignition2/current.tmp" "$cache/ignition2/current"
elif [ ! -s "$cache/ignition2/current" ]; then
  echo "error: the spec 2.x tests need matchbox-0.8.3.tar.gz (its vendored Ignition parser) in $thirdparty" >&2
  exit 1
fi

# iPXE from the offline source archive next to the repository, unpacked and built once into
# $cache/ipxe/<hash> (tests/chain_boot.rs builds it again with a script embedded).
if ls "$repo/../shared/thirdparty"/ipxe-*.tar.gz >/dev/null 2>&1; then
  "$repo/scripts/ipxe/build.sh" >/dev/null
fi
