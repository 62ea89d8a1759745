#!/usr/bin/env bash
# `make image`: builds the volplugin container image (docker/Dockerfile) and tags it volplugin:latest.
# One image runs any of volmaster, volplugin, volsupervisor and volcli (see docs/image.md).
#
#   scripts/image.sh              build the base (cached) and the image
#   scripts/image.sh --base-only  only make sure the base image exists
#
# Which Docker engine: $DOCKER_HOST when set; else the one on /var/run/docker.sock; else it starts the
# sandbox engine there (the one `make up` uses; `make down` stops it).
#
# The base image: $VOLPLUGIN_BASE_IMAGE when set (e.g. node:20-bookworm-slim where a registry is
# reachable). Otherwise, with no registry, an equivalent base is made offline: a debootstrap of Debian
# bookworm (minbase) with this machine's Node binary, headers, npm and corepack under /usr/local like
# the official image, imported with `docker import` as volplugin-base:bookworm-node20. Its root file
# system is cached as a tarball in $VOLPLUGIN_IMAGE_CACHE (/var/cache/volplugin by default, which
# `make clean` keeps), so only the first build anywhere on the machine runs debootstrap.
#
# Other settings: VOLPLUGIN_IMAGE (tag, default volplugin:latest), VOLPLUGIN_DEBIAN_MIRROR,
# VOLPLUGIN_BUILD_CA (a PEM bundle for reaching the npm registry from the build; default: npm's
# `cafile` when set), NPM_CONFIG_REGISTRY / npm's `registry`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

say() { printf '%s\n' "image: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

IMAGE=${VOLPLUGIN_IMAGE:-volplugin:latest}
CACHE=${VOLPLUGIN_IMAGE_CACHE:-/var/cache/volplugin}
MIRROR=${VOLPLUGIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${VOLPLUGIN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Bump when the base's recipe below changes: cached tarballs and imported bases with another
# recipe are rebuilt.
BASE_RECIPE=1

base_only=false
case ${1:-} in
--base-only) base_only=true ;;
'') ;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

started=$SECONDS

# ---------------------------------------------------------------------------------------------
# The engine

if [[ -z ${DOCKER_HOST:-} ]]; then
  if timeout 10 docker -H unix:///var/run/docker.sock info >/dev/null 2>&1; then
    export DOCKER_HOST=unix:///var/run/docker.sock
  else
    say "no Docker engine on /var/run/docker.sock: starting the sandbox engine (make down stops it)"
    scripts/sandbox.sh docker-up "$REPO/.sandbox" /var/run/docker.sock /run/volplugin-sandbox/docker
    export DOCKER_HOST=unix:///var/run/docker.sock
  fi
fi
timeout 20 docker info >/dev/null 2>&1 || die "the Docker engine at $DOCKER_HOST does not answer"
say "engine: $DOCKER_HOST"

# ---------------------------------------------------------------------------------------------
# The base: Node 20 on Debian bookworm slim, made offline

NODE_BIN=$(readlink -f "$(command -v node)")
NODE_VERSION=$(node -p 'process.versions.node')
NODE_PREFIX=$(dirname "$(dirname "$NODE_BIN")")

base_key="bookworm-node${NODE_VERSION}-r${BASE_RECIPE}"
BASE_TAG=volplugin-base:bookworm-node${NODE_VERSION%%.*}

base_in_engine() {
  [[ $(docker image inspect -f '{{index .Config.Labels "io.volplugin.base"}}' "$BASE_TAG" 2>/dev/null) == "$base_key" ]]
}

# make_rootfs DIR: debootstrap bookworm and add Node, like node:20-bookworm-slim.
make_rootfs() {
  local rootfs=$1
  command -v debootstrap >/dev/null || die "debootstrap is missing (make deps installs it)"
  [[ $(id -u) == 0 ]] || die "building the base with debootstrap needs root"
  say "debootstrap of Debian bookworm (minbase) from $MIRROR (a few minutes, once per machine)"
  debootstrap --variant=minbase --components=main --merged-usr bookworm "$rootfs" "$MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 || {
    tail -n 20 "$CACHE/debootstrap.log" >&2
    die "debootstrap failed; log: $CACHE/debootstrap.log"
  }

  # Apt as in Debian's slim images: no docs, man pages or translations; no package cache kept.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/volplugin-slim" <<'EOF'
# Slim: documentation, manuals and translations are not installed (copyright files are kept).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/volplugin-slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/usr/share/locale/*/
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/hostname"

  # Node where the official image has it: /usr/local. Its only libraries are libc and libstdc++.
  local missing
  missing=$(ldd "$NODE_BIN" | awk '/=>/ {print $3}' | while read -r lib; do
    [[ -e $rootfs/$lib || -e $rootfs/usr/$lib ]] || echo "$lib"
  done)
  [[ -z $missing ]] || die "the base lacks libraries $NODE_BIN needs: $missing"
  install -D -m 0755 "$NODE_BIN" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/include" "$rootfs/usr/local/lib/node_modules"
  cp -a "$NODE_PREFIX/include/node" "$rootfs/usr/local/include/node"
  local pkg
  for pkg in npm corepack; do
    [[ -d $NODE_PREFIX/lib/node_modules/$pkg ]] && cp -a "$NODE_PREFIX/lib/node_modules/$pkg" "$rootfs/usr/local/lib/node_modules/"
  done
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  [[ -d $rootfs/usr/local/lib/node_modules/corepack ]] &&
    ln -s ../lib/node_modules/corepack/dist/corepack.js "$rootfs/usr/local/bin/corepack"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$rootfs" /usr/local/bin/node -e 'require("node:crypto"); new Intl.DateTimeFormat("de").format(0)' ||
    die "node does not run in the debootstrapped base"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$rootfs" /usr/local/bin/npm --version >/dev/null || die "npm does not run in the debootstrapped base"
}

# debootstrap mounts /proc and /sys inside its target: a failure must not leave them mounted.
BUILDING_ROOTFS=
remove_rootfs() {
  [[ -n $BUILDING_ROOTFS && -d $BUILDING_ROOTFS ]] || return 0
  local m
  for m in $(awk -v r="$BUILDING_ROOTFS/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$BUILDING_ROOTFS"
  BUILDING_ROOTFS=
}

ensure_base() {
  if [[ -n ${VOLPLUGIN_BASE_IMAGE:-} ]]; then
    BASE_TAG=$VOLPLUGIN_BASE_IMAGE
    docker image inspect "$BASE_TAG" >/dev/null 2>&1 || docker pull "$BASE_TAG" >&2 ||
      die "base image $BASE_TAG is neither present nor pullable"
    say "base: $BASE_TAG (given)"
    return 0
  fi
  if base_in_engine; then
    say "base: $BASE_TAG ($base_key) already in the engine"
    return 0
  fi
  mkdir -p "$CACHE/image-base"
  local tarball=$CACHE/image-base/$base_key.tar
  # One builder at a time per cache (make image and the tests may run at once).
  exec 9>"$CACHE/image-base/.lock"
  flock 9
  if [[ ! -s $tarball ]]; then
    local t0=$SECONDS rootfs
    rootfs=$(mktemp -d /var/tmp/volplugin-base.XXXXXX)
    BUILDING_ROOTFS=$rootfs
    trap remove_rootfs EXIT
    make_rootfs "$rootfs"
    tar -C "$rootfs" --numeric-owner --xattrs -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    remove_rootfs
    trap - EXIT
    rm -f "$CACHE"/image-base/bookworm-node*.tar.tmp
    say "base root file system cached in $tarball ($((SECONDS - t0)) s)"
  fi
  base_in_engine || {
    say "importing the base as $BASE_TAG"
    docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c "ENV NODE_VERSION=$NODE_VERSION" \
      -c "LABEL io.volplugin.base=$base_key" \
      -c 'CMD ["node"]' \
      "$tarball" "$BASE_TAG" >/dev/null
  }
  flock -u 9
  say "base: $BASE_TAG ($base_key)"
}

ensure_base
if $base_only; then
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The image

# The build context is an explicit list (the checkout also holds node_modules, build output and the
# sandboxes' state, Docker's own data root among them), sent as a tar on stdin.
context=(package.json pnpm-lock.yaml binding.gyp native bin src tsconfig.json tsconfig.build.json
  scripts/chmod-bins.mjs scripts/copy-assets.mjs docker)
for optional in .npmrc pnpm-workspace.yaml; do
  [[ -e $optional ]] && context+=("$optional")
done
for f in "${context[@]}"; do
  [[ -e $f ]] || die "$f is missing: the image needs it"
done

npm_config=$(npm config get registry cafile 2>/dev/null || true)
registry=${NPM_CONFIG_REGISTRY:-$(sed -n 's/^registry=//p' <<<"$npm_config")}
[[ $registry == http* ]] || registry=https://registry.npmjs.org/
ca=${VOLPLUGIN_BUILD_CA:-$(sed -n 's/^cafile=//p' <<<"$npm_config")}
ca_args=()
if [[ -n $ca && $ca != null && $ca != undefined && -s $ca ]]; then
  # Only the build stage sees it (npm and pnpm need it where TLS to the registry is intercepted).
  ca_args=(-C "$(dirname "$ca")" --transform "s,^$(basename "$ca")\$,docker/build-ca/ca.pem," "$(basename "$ca")")
fi

pnpm_version=$(pnpm --version 2>/dev/null || echo 10)
[[ $pnpm_version == 10.* ]] || pnpm_version=10

say "building $IMAGE from $BASE_TAG (npm registry $registry${ca_args:+, build CA $ca})"
# The build stage is tagged too (<name>-build), so that the one a rebuild replaces can be removed:
# the classic builder leaves every build stage behind as an untagged image otherwise.
if [[ ${IMAGE##*/} == *:* ]]; then BUILD_TAG=${IMAGE%:*}-build:${IMAGE##*:}; else BUILD_TAG=$IMAGE-build; fi
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
previous=$(image_id "$IMAGE") previous_build=$(image_id "$BUILD_TAG")
build_log=$(mktemp /tmp/volplugin-image-build.XXXXXX.log)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

docker_build() { # EXTRA-ARGS...: the context goes as a tar on stdin.
  # The classic builder: it works offline on dockerd 20.10 (BuildKit would want to pull its
  # frontend). --network host: apt and npm are reached even on an engine started with --bridge=none.
  tar -c --owner=0 --group=0 -f - -C "$REPO" "${context[@]}" "${ca_args[@]}" |
    DOCKER_BUILDKIT=0 docker build --network host -f docker/Dockerfile \
      --build-arg "BASE_IMAGE=$BASE_TAG" \
      --build-arg "NPM_REGISTRY=$registry" \
      --build-arg "PNPM_VERSION=$pnpm_version" \
      "$@" - >>"$build_log" 2>&1
}

t0=$SECONDS
if ! docker_build -t "$IMAGE" --label "io.volplugin.revision=$revision"; then
  tail -n 40 "$build_log" >&2
  die "docker build failed; full log: $build_log"
fi
# The build stage's result is the last image id the log shows before the final stage's FROM.
build_stage=$(awk '/^Step [0-9]+\/[0-9]+ : FROM /{stage=id} /^ ---> [0-9a-f]+$/{id=$2} END{print stage}' "$build_log")
if [[ -n $build_stage ]]; then
  docker tag "$build_stage" "$BUILD_TAG"
else
  say "warning: could not find the build stage in the build's output to tag it $BUILD_TAG"
fi
# What this build replaced is untagged now: drop it unless a container still uses it.
remove_replaced() { # OLD-ID TAG
  [[ -z $1 || $1 == "$(image_id "$2")" ]] || docker image rm "$1" >/dev/null 2>&1 || true
}
remove_replaced "$previous" "$IMAGE"
remove_replaced "$previous_build" "$BUILD_TAG"
rm -f "$build_log"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "built $IMAGE in $((SECONDS - t0)) s (total $((SECONDS - started)) s): $((size / 1000000)) MB ($((size / 1048576)) MiB)"
