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
  # discovery: a real kernel under QEMU runs `caas discover` (tests/discovery_qemu.rs)
  "/bin/busybox busybox-static"
  "/usr/share/doc/linux-image-cloud-amd64 linux-image-cloud-amd64"
  "strip binutils"
  # discovery: the POST /discovery load generator of benches/api.rs
  "wrk wrk"
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

if [ ${#missing[@]} -eq 0 ] && [ ${#backports[@]} -eq 0 ]; then
  exit 0
fi

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
