#!/usr/bin/env bash
# `make up`: a throw-away volplugin stack on this machine. Ceph (mon + memstore OSD), etcd, a Docker
# engine when none answers on the default socket, then volmaster, volsupervisor and volplugin. All
# state is under .sandbox/; running it again reuses what is already running.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=$REPO/.sandbox
SANDBOX=$REPO/scripts/sandbox.sh
mkdir -p "$ROOT"/{run,logs,bin,mnt,volplugin}

MASTER=https://127.0.0.1:9005
ETCD=http://127.0.0.1:2379
CONF=$ROOT/ceph/ceph.conf
TOKEN=$ROOT/token            # the bootstrap admin token: volmaster --token-file, and volcli's
HOST_TOKEN=$ROOT/host-token  # this host's token (role host): volplugin's
TLS=$ROOT/tls                # a CA and the certificate volmaster serves HTTPS with
DOCKER_SOCK=/var/run/docker.sock

"$SANDBOX" ceph-up "$ROOT" 3300 6789
"$SANDBOX" etcd-up "$ROOT" 2379 2380
if timeout 5 docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1 && [[ ! -f $ROOT/docker/dockerd.pid ]]; then
  echo "sandbox: using the Docker engine already running on $DOCKER_SOCK" >&2
else
  "$SANDBOX" docker-up "$ROOT" "$DOCKER_SOCK" /run/volplugin-sandbox/docker
fi
"$SANDBOX" busybox-image "$DOCKER_SOCK"

# ---- volmaster: TLS and tokens (issue 13) ----------------------------------------------------
# The API can delete data: it serves HTTPS only, with a certificate of a sandbox CA, and every
# request needs a token. The bootstrap admin token (volcli's) is made here; volplugin gets a host
# token of its own from volcli token create once volmaster runs (below).
if [[ ! -s $TOKEN ]]; then
  (umask 077 && echo "vpt_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >"$TOKEN")
fi
chmod 600 "$TOKEN"
if [[ ! -s $TLS/master.pem || ! -s $TLS/ca.pem ]]; then
  mkdir -p "$TLS"
  (
    cd "$TLS" && umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj '/CN=volplugin sandbox CA' 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout master.key -out master.csr -subj '/CN=volmaster' 2>/dev/null
    echo 'subjectAltName=IP:127.0.0.1,DNS:localhost' >san.ext
    openssl x509 -req -in master.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out master.pem -days 3650 -extfile san.ext 2>/dev/null
    chmod 644 ca.pem master.pem
  )
  echo "sandbox: made a CA and volmaster's TLS certificate in $TLS" >&2
fi

# The four CLIs, on PATH once .sandbox/env is sourced: package.json's bin entries.
for cli in volmaster volplugin volsupervisor volcli; do
  ln -sfn "$REPO/$(node -p "require('./package.json').bin.$cli")" "$ROOT/bin/$cli"
done

cat >"$ROOT/env" <<ENV
# source this file: the sandbox's addresses and the volplugin CLIs on PATH
export CEPH_CONF=$CONF
export VOLPLUGIN_ETCD=$ETCD
export VOLPLUGIN_MASTER=$MASTER
export VOLPLUGIN_TLS_CA=$TLS/ca.pem
export VOLPLUGIN_TOKEN_FILE=$TOKEN
export PATH=$ROOT/bin:\$PATH
ENV

# start_daemon NAME READY-CHECK ARGS...: runs the NAME bin in the background unless its pid is alive.
start_daemon() {
  local name=$1 ready=$2
  shift 2
  local main=$ROOT/bin/$name pidfile=$ROOT/run/$name.pid log=$ROOT/logs/$name.log
  if [[ ! -e $REPO/dist/${name#vol}/main.js ]]; then
    echo "sandbox: $name is not built yet: skipped" >&2
    return 0
  fi
  if "$SANDBOX" pid-alive "$pidfile"; then
    echo "sandbox: $name already running (pid $(cat "$pidfile"))" >&2
    return 0
  fi
  CEPH_CONF=$CONF setsid node "$main" "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + 20))
  until eval "$ready" >/dev/null 2>&1; do
    if ! "$SANDBOX" pid-alive "$pidfile" || ((SECONDS >= deadline)); then
      echo "sandbox: ERROR: $name did not become ready within 20 s; log: $log" >&2
      tail -n 20 "$log" | sed 's/^/    /' >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "sandbox: $name is running (pid $(cat "$pidfile"), log $log)" >&2
}

CEPH_FLAGS=(--ceph-conf "$CONF" --ceph-id admin)
start_daemon volmaster "curl -sf --cacert $TLS/ca.pem $MASTER/v1/health" \
  --listen "${MASTER#https://}" --etcd "$ETCD" --token-file "$TOKEN" --tls-cert "$TLS/master.pem" --tls-key "$TLS/master.key" "${CEPH_FLAGS[@]}"

# This host's token for volplugin (role host: what Docker's protocol needs, nothing that deletes data
# of other volumes). Made again when etcd no longer knows it (a new sandbox etcd).
volcli_admin() { node "$REPO/dist/cli/main.js" --master "$MASTER" --tls-ca "$TLS/ca.pem" --token-file "$TOKEN" "$@"; }
if [[ -e $REPO/dist/cli/main.js ]] && ! volcli_admin --token-file "$HOST_TOKEN" token whoami >/dev/null 2>&1; then
  rm -f "$HOST_TOKEN"
  volcli_admin token revoke "$(hostname)" >/dev/null 2>&1 || true
  volcli_admin token create --role host --name "$(hostname)" --file "$HOST_TOKEN" >&2
fi
start_daemon volsupervisor "true" \
  --etcd "$ETCD" "${CEPH_FLAGS[@]}"
start_daemon volplugin "test -S /run/docker/plugins/volplugin.sock" \
  --master "$MASTER" --tls-ca "$TLS/ca.pem" --etcd "$ETCD" --token-file "$HOST_TOKEN" "${CEPH_FLAGS[@]}" \
  --mount-root "$ROOT/mnt" --state-dir "$ROOT/volplugin"

cat <<EOT

volplugin sandbox is up. Next:

  source .sandbox/env
  ceph -s                                   # HEALTH_OK
  volcli tenant upload tenant1 < examples/tenant1.json
  docker volume create -d volplugin --name tenant1/foo
  docker run --rm --network none -v tenant1/foo:/mnt busybox sh -c 'echo hello > /mnt/hello'
  docker run --rm --network none -v tenant1/foo:/mnt busybox cat /mnt/hello
  volcli volume list-all
  make down                                 # stop everything

Logs: .sandbox/logs/   Ceph: .sandbox/ceph/log/   etcd: .sandbox/etcd/etcd.log
EOT
