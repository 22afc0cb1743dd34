#!/usr/bin/env bash
# Builds the stand-in OS the virtual rack test boots (tests/rack.rs): a Debian 12 system that
# behaves like Flatcar's PXE image where caas depends on it, from Debian packages only.
#
#   vmlinuz      Debian's cloud kernel
#   initrd.img   the whole root file system as one initramfs (cpio newc, zstd): systemd, udev,
#                bash, curl, coreutils, iproute2, kmod, etcd-server + etcd-client, and the real
#                Ignition from Debian's `ignition` package
#
# Like Flatcar: systemd-networkd runs DHCP on every en*/eth* NIC and takes the hostname from
# DHCP; a boot whose kernel command line has `flatcar.first_boot` (or `ignition.firstboot`) and
# `ignition.config.url=…` runs Ignition's fetch and files stages (`-platform metal -root /`)
# before the units the config enables start (see rootfs/usr/lib/caas-standin/ignition-firstboot).
# Progress markers (`caas-standin: …`) go to ttyS0, no login needed.
#
# Usage: build.sh [OUT_DIR]
# The result is cached outside the clone, keyed by the hash of this directory's files:
#   ${CAAS_TEST_CACHE:-/var/cache/caas-test}/standin-os/<hash>/{vmlinuz,initrd.img}
# A rerun with the cache present builds nothing. The last line printed is that directory;
# with OUT_DIR, both files are also copied there. Needs root, mmdebstrap, zstd and the
# machine's apt sources (/etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources}).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-}

hash=$(cd "$here" && find . -type f -o -type l | LC_ALL=C sort | while read -r f; do
  if [ -L "$f" ]; then echo "L $f $(readlink "$f")"; else echo "F $f $(stat -c %a "$f") $(sha256sum <"$f" | cut -c1-64)"; fi
done | sha256sum | cut -c1-16)
cache=${CAAS_TEST_CACHE:-/var/cache/caas-test}/standin-os
final=$cache/$hash

publish_out() {
  if [ -n "$out" ]; then
    mkdir -p "$out"
    cp "$final/vmlinuz" "$final/initrd.img" "$out/"
  fi
  echo "$final"
}

# One build at a time (tests run in parallel): the others wait, then find it cached.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

if [ -f "$final/vmlinuz" ] && [ -f "$final/initrd.img" ]; then
  echo "stand-in OS: cached" >&2
  publish_out
  exit 0
fi

for tool in mmdebstrap zstd cpio; do
  command -v "$tool" >/dev/null || { echo "build.sh: needs $tool: run scripts/install-test-deps.sh" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root (mmdebstrap builds the root as root)" >&2; exit 1; }

sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || { echo "build.sh: no apt sources under /etc/apt" >&2; exit 1; }

started=$(date +%s)
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

packages=(
  systemd systemd-sysv udev dbus bash curl ca-certificates coreutils iproute2 kmod procps
  ignition etcd-server etcd-client linux-image-cloud-amd64
)
echo "stand-in OS: mmdebstrap ${packages[*]}" >&2
mmdebstrap --quiet --variant=minbase --aptopt='APT::Install-Recommends "false"' \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$root" "${sources[@]}" >&2

# The kernel goes next to the image; its modules shrink to what a virtio VM needs.
kver=$(ls "$root/lib/modules")
[ "$(echo "$kver" | wc -l)" -eq 1 ] || { echo "build.sh: expected one kernel, got: $kver" >&2; exit 1; }
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
rm -rf "$root"/boot/* "$root"/initrd.img* "$root"/vmlinuz*
mods=$root/lib/modules/$kver
keep=$work/keep
mkdir -p "$keep"
(cd "$mods/kernel" && find drivers/virtio drivers/block/virtio_blk.ko drivers/net/virtio_net.ko \
   drivers/net/net_failover.ko net/core/failover.ko -name '*.ko*' | cpio --quiet -pdm "$keep")
rm -rf "$mods/kernel"
mv "$keep" "$mods/kernel"
depmod -b "$root" "$kver"

# Nothing a diskless VM reads: docs, locales, apt's lists and caches, initramfs tooling.
# Perl beyond perl-base came with usrmerge; udev's hardware database only names devices.
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian} "$root"/var/lib/apt/lists/* \
  "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/etc/initramfs-tools \
  "$root"/usr/share/initramfs-tools "$root"/usr/share/perl "$root"/usr/lib/x86_64-linux-gnu/perl \
  "$root"/usr/bin/perl5.* "$root"/usr/lib/x86_64-linux-gnu/libperl.so* \
  "$root"/usr/lib/udev/hwdb.d "$root"/usr/lib/udev/hwdb.bin "$root"/etc/udev/hwdb.bin \
  "$root"/usr/bin/ignition-validate
# The real Ignition, where the stand-in's first-boot script runs it.
test -x "$root/usr/lib/dracut/modules.d/30ignition/ignition"
rm -rf "$root"/usr/lib/dracut/modules.d/30ignition/*.{sh,service,rules} 2>/dev/null || true

# The overlay: networkd DHCP, the Ignition first-boot unit, the SELinux quirk, console markers.
cp -a "$here/rootfs/." "$root/"
chmod 0755 "$root/usr/lib/caas-standin/"* "$root/usr/local/sbin/setfiles"
# Flatcar takes its hostname from DHCP: no static one, and a fresh machine id per boot.
rm -f "$root/etc/hostname"
: >"$root/etc/machine-id"
ln -sf /dev/null "$root/etc/systemd/system/etcd.service"   # Debian's own etcd: not ours
systemctl --root="$root" enable systemd-networkd.service systemd-networkd.socket \
  systemd-networkd-wait-online.service caas-hostname.service caas-ignition.service \
  caas-standin-up.service >&2
# What a diskless test VM does not need, and what costs seconds of boot under TCG.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer systemd-timesyncd.service systemd-journal-flush.service \
  systemd-pstore.service modprobe@drm.service modprobe@efi_pstore.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/etc/systemd/system-generators"
for generator in systemd-sysv-generator systemd-rc-local-generator systemd-gpt-auto-generator \
  systemd-cryptsetup-generator systemd-veritysetup-generator systemd-integritysetup-generator \
  systemd-hibernate-resume-generator systemd-bless-boot-generator; do
  ln -sf /dev/null "$root/etc/systemd/system-generators/$generator"
done
ln -sf lib/systemd/systemd "$root/init"

du -sh "$root" >&2
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --quiet --null -o -H newc --reproducible \
   | zstd -q -T0 -6 >"$work/initrd.img")
chmod 0644 "$work/vmlinuz" "$work/initrd.img"
rm -rf "$root"
rm -rf "$final"
mv "$work" "$final"
trap - EXIT
# Builds from older inputs are not used again.
for dir in "$cache"/*/; do
  [ "${dir%/}" = "$final" ] || rm -rf "${dir%/}"
done
echo "stand-in OS: built in $(( $(date +%s) - started ))s, kernel $kver, initrd $(du -h "$final/initrd.img" | cut -f1)" >&2
publish_out
