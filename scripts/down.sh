#!/usr/bin/env bash
# `make down`: stops everything `make up` started (by pid), then removes what a crash could leave:
# mounts and loop devices below .sandbox/, rbd-fuse mounts, the plugin socket and the cgroups.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)/.sandbox
[[ -d $ROOT ]] || { echo "sandbox: nothing to stop" >&2; exit 0; }
scripts/sandbox.sh down "$ROOT"
rm -f /run/docker/plugins/volplugin.sock
rm -rf /run/volplugin-sandbox
echo "sandbox: down (state kept in .sandbox/ until 'make clean')" >&2
