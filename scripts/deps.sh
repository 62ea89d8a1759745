#!/usr/bin/env bash
# Installs what volplugin needs and is missing: Debian packages, pnpm 10, node modules. Quick when
# everything is there already (it only asks dpkg and looks at files).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  ceph-mon ceph-osd ceph-common librbd-dev librados-dev rbd-fuse # Ceph: daemons, CLI, librbd headers, fuse mapper
  etcd-server etcd-client                                         # state
  docker.io busybox-static iptables                               # a Docker engine and an offline busybox image
  e2fsprogs xfsprogs btrfs-progs util-linux fuse                 # mkfs, losetup, blkid, fusermount
  uuid-runtime debootstrap                                        # make image builds its base offline
  prometheus                                                      # promtool and a Prometheus server for the metrics tests
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  if [[ $(id -u) != 0 ]]; then
    echo "deps: ERROR: installing packages needs root; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null || [[ $(pnpm --version) != 10.* ]]; then
  echo "deps: installing pnpm 10" >&2
  npm install -g pnpm@10 >/dev/null
fi

# pnpm install is a no-op when node_modules matches the lockfile; --frozen-lockfile keeps CI honest.
if [[ ! -f node_modules/.modules.yaml || pnpm-lock.yaml -nt node_modules/.modules.yaml || package.json -nt node_modules/.modules.yaml ]]; then
  echo "deps: installing node modules" >&2
  pnpm install --frozen-lockfile --reporter=silent
fi
