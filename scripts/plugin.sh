#!/usr/bin/env bash
# `make plugin`: builds volplugin as a Docker managed plugin (v2) from the project's image and
# creates it in the engine. See docs/managed-plugin.md.
#
#   scripts/plugin.sh              build the image (scripts/image.sh), the plugin's directory and
#                                  `docker plugin create` it (disabled; configure, then enable)
#   scripts/plugin.sh --dir-only   only the directory: config.json and rootfs/
#
# The directory ($VOLPLUGIN_PLUGIN_DIR, default build/plugin) holds docker/plugin/config.json and
# rootfs/, the image's file system (`docker export` of a container made from it) without what only
# builds use (Node's headers, npm, corepack). It is made again
# only when the image's layers changed (a hash of their digests is kept in build/plugin/layers).
#
# Settings: VOLPLUGIN_IMAGE (the image, default volplugin:latest), VOLPLUGIN_PLUGIN (the plugin's
# name, default volplugin:latest; give registry.example.com/volplugin:0.1.0 to push it later),
# VOLPLUGIN_SKIP_IMAGE=1 (use the image as it is, do not run scripts/image.sh), DOCKER_HOST (which
# engine; as in scripts/image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

say() { printf '%s\n' "plugin: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

IMAGE=${VOLPLUGIN_IMAGE:-volplugin:latest}
PLUGIN=${VOLPLUGIN_PLUGIN:-volplugin:latest}
DIR=${VOLPLUGIN_PLUGIN_DIR:-$REPO/build/plugin}

dir_only=false
case ${1:-} in
--dir-only) dir_only=true ;;
'') ;;
*) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

started=$SECONDS
[[ $(id -u) == 0 ]] || die "the plugin's root file system keeps the image's owners and device nodes: run as root"

if [[ ${VOLPLUGIN_SKIP_IMAGE:-} != 1 ]]; then
  # It picks the engine (and starts the sandbox one when none answers) and builds what changed.
  VOLPLUGIN_IMAGE=$IMAGE scripts/image.sh
fi
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
timeout 20 docker info >/dev/null 2>&1 || die "the Docker engine at $DOCKER_HOST does not answer"

# The file system is what the layers hold: their digests are the cache key (the image id also
# changes with labels such as the git revision, which do not change a file).
layers=$(docker image inspect -f '{{json .RootFS.Layers}}' "$IMAGE" 2>/dev/null) ||
  die "no image $IMAGE in the engine at $DOCKER_HOST: build it with make image (or scripts/image.sh)"
# Bump when what is taken out of the file system below changes: cached directories are made again.
ROOTFS_RECIPE=1
layers_key=$(sha256sum <<<"$layers r$ROOTFS_RECIPE" | cut -c1-64)

# ---------------------------------------------------------------------------------------------
# The directory: config.json and the image's file system

if [[ -d $DIR/rootfs && $(cat "$DIR/layers" 2>/dev/null) == "$layers_key" ]]; then
  say "$DIR has the file system of $IMAGE already"
else
  # The directory is replaced whole: only one this script made (or none) may be.
  if [[ -e $DIR && ! -e $DIR/layers && -n $(ls -A "$DIR" 2>/dev/null) ]]; then
    die "$DIR exists and was not made by this script (no $DIR/layers): remove it or set VOLPLUGIN_PLUGIN_DIR"
  fi
  say "exporting the file system of $IMAGE to $DIR/rootfs"
  rm -rf "$DIR"
  mkdir -p "$DIR.tmp"
  rm -rf "$DIR.tmp/rootfs"
  mkdir "$DIR.tmp/rootfs"
  container=$(docker create --network none "$IMAGE" help)
  # The container is only a source for export (it never runs): removed whatever happens below.
  trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
  docker export "$container" | tar -x -C "$DIR.tmp/rootfs" --numeric-owner
  # What only builds use (Node's headers, npm, corepack: 74 MB, a quarter of the files) is left
  # out: the plugin runs node and the app, never a package manager or a compiler.
  rm -rf "$DIR.tmp/rootfs/usr/local/include/node" "$DIR.tmp/rootfs/usr/local/lib/node_modules/npm" \
    "$DIR.tmp/rootfs/usr/local/lib/node_modules/corepack" \
    "$DIR.tmp/rootfs/usr/local/bin/"{npm,npx,corepack}
  docker rm -f "$container" >/dev/null
  trap - EXIT
  echo "$layers_key" >"$DIR.tmp/layers"
  mv "$DIR.tmp" "$DIR"
  say "exported in $((SECONDS - started)) s"
fi
cp docker/plugin/config.json "$DIR/config.json"
# Nothing the plugin does not run goes in: no sense in shipping a half-made directory.
for f in usr/bin/tini usr/local/bin/volplugin-entrypoint opt/volplugin/dist/plugin/main.js usr/local/bin/node; do
  [[ -e $DIR/rootfs/$f ]] || die "$IMAGE lacks /$f: is it the volplugin image?"
done
say "directory: $DIR ($(du -sm "$DIR/rootfs" | cut -f1) MiB)"
if $dir_only; then
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The plugin in the engine

if docker plugin inspect "$PLUGIN" >/dev/null 2>&1; then
  if [[ $(docker plugin inspect -f '{{.Enabled}}' "$PLUGIN") == true ]]; then
    die "plugin $PLUGIN is enabled in the engine: docker plugin disable $PLUGIN (stop the containers using its volumes first), then run this again"
  fi
  say "replacing the disabled plugin $PLUGIN (its settings go with it: set them again)"
  docker plugin rm "$PLUGIN" >/dev/null
fi
t0=$SECONDS
docker plugin create "$PLUGIN" "$DIR" >/dev/null
say "created $PLUGIN (disabled) in $((SECONDS - t0)) s (total $((SECONDS - started)) s); configure and enable it:"
cat >&2 <<EOF
  docker plugin set $PLUGIN VOLPLUGIN_MASTER=<master host:port> VOLPLUGIN_ETCD=<etcd URLs>
  docker plugin enable $PLUGIN
  (docs/managed-plugin.md lists every setting; docker plugin push $PLUGIN publishes it)
EOF
