#!/usr/bin/env bash
# `make demo`: caas's main job on its built-in example lab, on any machine.
#
# The example's etcd roles run an etcd release that caas publishes in the data dir (their
# Ignition downloads it from matchbox and checks its digest), so the demo publishes one first:
# the upstream release (github.com/etcd-io/etcd) where it is reachable, otherwise the etcd of
# Debian's etcd-server package, packed the way upstream ships it and served from 127.0.0.1, so
# caas's own fetch and verification path publishes it either way.
set -euo pipefail
cd "$(dirname "$0")/.."
caas=${CAAS:-./target/release/caas}
etcd_version=${ETCD_VERSION:-v3.5.21}
data_dir=${CAAS_DATA_DIR:-./bootcfg}

if [ ! -e "$data_dir/assets/etcd/current" ]; then
  if ! timeout 60 "$caas" --data-dir "$data_dir" assets fetch etcd --version "$etcd_version"; then
    echo "demo: upstream etcd $etcd_version is out of reach; publishing Debian's etcd instead" >&2
    mirror=$(mktemp -d)
    server=
    trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$mirror"' EXIT
    if [ ! -x /usr/bin/etcd ] || [ ! -x /usr/bin/etcdctl ]; then
      (cd "$mirror" && apt-get download -q etcd-server etcd-client >/dev/null)
      for deb in "$mirror"/*.deb; do dpkg-deb -x "$deb" "$mirror/root"; done
      bin="$mirror/root/usr/bin"
    else
      bin=/usr/bin
    fi
    version=v$("$bin/etcd" --version | sed -n 's/^etcd Version: \([0-9.]*\).*/\1/p')
    name="etcd-$version-linux-amd64"
    mkdir "$mirror/$name"
    cp "$bin/etcd" "$bin/etcdctl" "$mirror/$name/"
    tar -C "$mirror" -czf "$mirror/$name.tar.gz" "$name"
    (cd "$mirror" && sha256sum "$name.tar.gz" >SHA256SUMS)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$mirror" "$port" >/dev/null 2>&1 &
    server=$!
    # caas retries a refused connection, which covers the server's start-up.
    "$caas" --data-dir "$data_dir" assets fetch etcd --version "$version" --base-url "http://127.0.0.1:$port/"
  fi
fi
"$caas" --data-dir "$data_dir" gen cluster
