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
# etcd with TLS, client certificates and users (sandbox.sh etcd-up --secure). A host name, not
# 127.0.0.1: Node warns when a TLS server name is an IP address.
ETCD=https://localhost:2379
ETCD_PKI=$ROOT/etcd/pki
CONF=$ROOT/ceph/ceph.conf
TOKEN=$ROOT/token            # the bootstrap admin token: volmaster --token-file, and volcli's
HOST_TOKEN=$ROOT/host-token  # this host's token (role host): volplugin's
METRICS_TOKEN=$ROOT/metrics-token  # a read-only token that scrapes volmaster's metrics
TLS=$ROOT/tls                # a CA and the certificate volmaster serves HTTPS with
DOCKER_SOCK=/var/run/docker.sock

"$SANDBOX" ceph-up "$ROOT" 3300 6789
"$SANDBOX" etcd-up "$ROOT" 2379 2380 --secure
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
# etcd's TLS and the volplugin user (volcli --etcd \$VOLPLUGIN_ETCD ...); etcdctl needs --user too
export VOLPLUGIN_ETCD_CA=$ETCD_PKI/ca.pem VOLPLUGIN_ETCD_CERT=$ETCD_PKI/client.pem VOLPLUGIN_ETCD_KEY=$ETCD_PKI/client-key.pem
export VOLPLUGIN_ETCD_USER=volplugin VOLPLUGIN_ETCD_PASSWORD_FILE=$ETCD_PKI/volplugin.password
export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$ETCD ETCDCTL_CACERT=$ETCD_PKI/ca.pem ETCDCTL_CERT=$ETCD_PKI/client.pem ETCDCTL_KEY=$ETCD_PKI/client-key.pem
export VOLPLUGIN_MASTER=$MASTER
export VOLPLUGIN_TLS_CA=$TLS/ca.pem
export VOLPLUGIN_TOKEN_FILE=$TOKEN
# the directory the sandbox's volmaster and volsupervisor allow backup targets in (README "Backups")
export VOLPLUGIN_SANDBOX_BACKUPS=$ROOT/backups
export PATH=$ROOT/bin:\$PATH
ENV

# start_daemon NAME READY-CHECK ARGS...: runs the NAME bin in the background unless it runs already
# with the same arguments (one started by an older `make up` with other flags is restarted).
start_daemon() {
  local name=$1 ready=$2
  shift 2
  local main=$ROOT/bin/$name pidfile=$ROOT/run/$name.pid log=$ROOT/logs/$name.log argsfile=$ROOT/run/$name.args
  if [[ ! -e $REPO/dist/${name#vol}/main.js ]]; then
    echo "sandbox: $name is not built yet: skipped" >&2
    return 0
  fi
  if "$SANDBOX" pid-alive "$pidfile"; then
    if [[ -f $argsfile && $(cat "$argsfile") == "$*" ]]; then
      echo "sandbox: $name already running (pid $(cat "$pidfile"))" >&2
      return 0
    fi
    "$SANDBOX" stop-pid "$pidfile" "$name"
  fi
  CEPH_CONF=$CONF setsid node "$main" "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  printf '%s' "$*" >"$argsfile"
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

# Each daemon with its own Ceph key (least caps: docs/security.md) and etcd user: volplugin's
# (volplugin-host) may only write its mount locks, host reports and answers to host requests.
ceph_key() { CEPH_ARGS=(--ceph-conf "$CONF" --ceph-id "$1" --ceph-keyring "$ROOT/ceph/ceph.client.$1.keyring"); }
etcd_user() {
  ETCD_ARGS=(--etcd "$ETCD" --etcd-ca "$ETCD_PKI/ca.pem" --etcd-cert "$ETCD_PKI/client.pem" --etcd-key "$ETCD_PKI/client-key.pem"
    --etcd-user "$1" --etcd-password-file "$ETCD_PKI/$1.password")
}
# Backups (docs/backups.md): targets may only lie under --backup-allow; the sandbox's is .sandbox/backups.
mkdir -p "$ROOT/backups"
BACKUP_ARGS=(--backup-allow "$ROOT/backups" --backup-staging "$ROOT/backup-staging")
etcd_user volplugin && ceph_key volmaster
start_daemon volmaster "curl -sf --cacert $TLS/ca.pem $MASTER/v1/health" \
  --listen "${MASTER#https://}" "${ETCD_ARGS[@]}" --token-file "$TOKEN" --tls-cert "$TLS/master.pem" --tls-key "$TLS/master.key" "${CEPH_ARGS[@]}" "${BACKUP_ARGS[@]}" \
  --metrics-listen 127.0.0.1:9006

# This host's token for volplugin (role host: what Docker's protocol needs, nothing that deletes data
# of other volumes). Made again when etcd no longer knows it (a new sandbox etcd).
volcli_admin() { node "$REPO/dist/cli/main.js" --master "$MASTER" --tls-ca "$TLS/ca.pem" --token-file "$TOKEN" "$@"; }
if [[ -e $REPO/dist/cli/main.js ]] && ! volcli_admin --token-file "$HOST_TOKEN" token whoami >/dev/null 2>&1; then
  rm -f "$HOST_TOKEN"
  volcli_admin token revoke "$(hostname)" >/dev/null 2>&1 || true
  volcli_admin token create --role host --name "$(hostname)" --file "$HOST_TOKEN" >&2
fi
# A read-only token for scraping volmaster's metrics (docs/metrics.md): what a Prometheus server gets.
if [[ -e $REPO/dist/cli/main.js ]] && ! volcli_admin --token-file "$METRICS_TOKEN" token whoami >/dev/null 2>&1; then
  rm -f "$METRICS_TOKEN"
  volcli_admin token revoke prometheus >/dev/null 2>&1 || true
  volcli_admin token create --role read-only --name prometheus --file "$METRICS_TOKEN" >&2
fi
ceph_key volsupervisor
start_daemon volsupervisor "curl -sf http://127.0.0.1:9007/metrics" \
  "${ETCD_ARGS[@]}" "${CEPH_ARGS[@]}" "${BACKUP_ARGS[@]}" --metrics-listen 127.0.0.1:9007
etcd_user volplugin-host && ceph_key volplugin
start_daemon volplugin "test -S /run/docker/plugins/volplugin.sock" \
  --master "$MASTER" --tls-ca "$TLS/ca.pem" "${ETCD_ARGS[@]}" --token-file "$HOST_TOKEN" "${CEPH_ARGS[@]}" \
  --mount-root "$ROOT/mnt" --state-dir "$ROOT/volplugin" --metrics-listen 127.0.0.1:9008

cat <<EOT

volplugin sandbox is up. Next:

  source .sandbox/env
  ceph -s                                   # HEALTH_OK
  volcli tenant upload tenant1 < examples/tenant1.json
  docker volume create -d volplugin --name tenant1/foo
  docker run --rm --network none -v tenant1/foo:/mnt busybox sh -c 'echo hello > /mnt/hello'
  docker run --rm --network none -v tenant1/foo:/mnt busybox cat /mnt/hello
  volcli volume list-all

Prometheus metrics (docs/metrics.md): volmaster on 9006 (HTTPS, a read-only token), volsupervisor
on 9007, volplugin on 9008:

  curl -s --cacert .sandbox/tls/ca.pem -H "Authorization: Bearer \$(cat .sandbox/metrics-token)" https://127.0.0.1:9006/metrics | grep ^volplugin_api
  curl -s http://127.0.0.1:9008/metrics | grep ^volplugin_mount
  curl -s http://127.0.0.1:9007/metrics | grep ^volplugin_snapshot

  make down                                 # stop everything

Logs: .sandbox/logs/   Ceph: .sandbox/ceph/log/   etcd: .sandbox/etcd/etcd.log (TLS and users: .sandbox/etcd/pki/)
EOT
