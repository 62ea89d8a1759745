#!/bin/sh
# The image's entrypoint: `docker run volplugin:latest ROLE [ARGS...]` runs one component.
#   ROLE: volmaster | volplugin | volsupervisor | volcli (also master, plugin, supervisor, cli)
# Anything else runs as a command (e.g. `sh`, `node -e ...`, `rbd ...`).
set -e
APP=/opt/volplugin

usage() {
  cat <<'EOF'
volplugin image: one component per container.

  docker run ... volplugin:latest volmaster     [flags]   the API server (host network)
  docker run ... volplugin:latest volsupervisor [flags]   scheduled snapshots (host network)
  docker run ... volplugin:latest volplugin     [flags]   the Docker volume plugin (--user 0 --privileged)
  docker run ... volplugin:latest volcli        [args]    the command-line client

Each takes --help. See docs/image.md for the full docker run lines.
EOF
}

role=${1:-help}
case $role in
volmaster | master) main=master ;;
volplugin | plugin) main=plugin ;;
volsupervisor | supervisor) main=supervisor ;;
volcli | cli) main=cli ;;
help | --help | -h)
  usage
  exit 0
  ;;
*) exec "$@" ;;
esac
shift
# Each native librbd call holds a libuv pool thread (bin/launch.cjs says why 16).
export UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-16}
exec node "$APP/dist/$main/main.js" "$@"
