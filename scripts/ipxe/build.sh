#!/usr/bin/env bash
# Prepares the iPXE source the tests build with `caas chain build --ipxe-src`: unpacks the
# offline iPXE archive next to the repository (../shared/thirdparty) into
# ${CAAS_TEST_CACHE:-/var/cache/caas-test}/ipxe/<hash of inputs>/, and builds undionly.kpxe and
# ipxe.efi in it once without a script, so that later builds with EMBED= only compile the
# embedded image and link. Prints the source directory; idempotent and cheap once done.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CAAS_TEST_CACHE:-/var/cache/caas-test}
thirdparty=$repo/../shared/thirdparty
archive=$(ls "$thirdparty"/ipxe-*.tar.gz 2>/dev/null | head -n1 || true)
if [ -z "$archive" ]; then
  echo "error: no iPXE source archive (ipxe-*.tar.gz) in $thirdparty" >&2
  exit 1
fi
targets=(bin/undionly.kpxe bin-x86_64-efi/ipxe.efi)
# The inputs: the archive, the targets and the compiler (bump the recipe when the steps change).
recipe=1
key=$( (cat "$archive"; echo "$recipe ${targets[*]}"; gcc --version | head -n1) | sha256sum | cut -c1-16)
out=$cache/ipxe/$key
src=$out/$(basename "$archive" .tar.gz)/src
mkdir -p "$cache/ipxe"
# One build at a time: test binaries may call this script concurrently.
exec 9>"$cache/ipxe/.lock"
flock 9
if [ ! -f "$out/ready" ]; then
  echo "building iPXE $(basename "$archive") into $out (a few minutes, once)" >&2
  tmp=$(mktemp -d "$cache/ipxe/.build.XXXXXX")
  chmod 755 "$tmp"
  tar -xzf "$archive" -C "$tmp"
  rm -rf "$out"
  mv "$tmp" "$out"
  SOURCE_DATE_EPOCH=315532800 make -C "$src" -j"$(nproc)" "${targets[@]}" >"$out/build.log" 2>&1 \
    || { echo "error: the iPXE build failed, see $out/build.log" >&2; exit 1; }
  touch "$out/ready"
fi
echo "$src"
