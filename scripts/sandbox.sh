#!/usr/bin/env bash
# Throw-away local services for volplugin: a one-node Ceph cluster (mon + memstore OSD, cephx, an
# `rbd` pool, a least-privilege key per component), an etcd (plain, or with TLS and users) and a
# Docker engine, all bound to loopback, all state under one directory. `make up` uses it with
# .sandbox/ and the default ports; the test setup uses .sandbox-test/ and other ports, so both can
# run on one machine at once.
#
#   scripts/sandbox.sh ceph-up   DIR MON_V2_PORT MON_V1_PORT
#   scripts/sandbox.sh etcd-up   DIR CLIENT_PORT PEER_PORT [--secure]
#   scripts/sandbox.sh docker-up DIR SOCKET EXEC_ROOT
#   scripts/sandbox.sh busybox-image DOCKER_SOCKET
#   scripts/sandbox.sh stop-pid  PIDFILE [NAME]
#   scripts/sandbox.sh down      DIR
#
# Every wait has a timeout; a daemon that does not come up is named with its log path and the last
# lines of its log, and the script exits non-zero.
set -euo pipefail

say() { printf '%s\n' "sandbox: $*" >&2; }

die_with_log() { # NAME LOGFILE MESSAGE
  say "ERROR: $1 $3"
  say "log: $2"
  if [[ -f $2 ]]; then
    tail -n 25 "$2" | sed 's/^/    /' >&2
  fi
  exit 1
}

# A pid is alive when /proc says so and it is not a zombie (PID 1 here reaps late).
pid_alive() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/status ]] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

pidfile_alive() { [[ -f $1 ]] && pid_alive "$(cat "$1")"; }

pid_gone() { ! pid_alive "$1"; }

# port_free PORT NAME: fails loudly when something already listens on 127.0.0.1:PORT.
port_free() {
  local holder
  holder=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n 1 | sed 's/users:(("//; s/",pid=/ pid /' || true)
  if [[ -n $holder || -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; then
    say "ERROR: port $1, needed by $2, is already in use${holder:+ by $holder}: stop that process or choose other ports"
    exit 1
  fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.1
  done
}

stop_pid() { # PIDFILE [NAME]: SIGTERM, wait up to 15 s, then SIGKILL.
  local pidfile=$1 name=${2:-$(basename "$1" .pid)} pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 "$name to stop" pid_gone "$pid"; then
      say "$name (pid $pid) ignored SIGTERM for 15 s: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 5 "$name to die" pid_gone "$pid" || true
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------------------------------------
# Ceph

ceph_conf_text() { # DIR FSID V2 V1
  local dir=$1 fsid=$2 v2=$3 v1=$4
  cat <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $dir/ceph.client.admin.keyring
run dir = $dir/run
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# No mgr runs here: without this the mon reports MGR_DOWN after two minutes.
mon mgr mkfs grace = 31536000
# Ceph's default (1 s) makes every mon-committed operation (snapshot create/remove, pool create)
# wait a second; real clusters keep the default, benchmarks report which one ran.
paxos propose interval = ${CEPH_PAXOS_PROPOSE_INTERVAL:-0.01}
paxos min wait = 0.001
osd objectstore = memstore
# The OSD keeps everything in memory (used, not reserved); benchmarks that snapshot and rewrite
# whole images ask for more room (CEPH_MEMSTORE_BYTES).
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-4294967296}
osd data = $dir/osd
osd max object name len = 256
osd max object namespace len = 64

[mon]
mon data = $dir/mon
keyring = $dir/mon.keyring
admin socket = $dir/run/\$name.asok

[osd]
keyring = $dir/osd/keyring
admin socket = $dir/run/\$name.asok
EOF
}

ceph_healthy() { timeout 10 ceph -c "$1" --connect-timeout 5 health 2>/dev/null | grep -q HEALTH_OK; }

# The cephx key of each volplugin component, with the least caps it works with (found by trying,
# docs/security.md lists them): every component `profile rbd` on the pools it serves (here `rbd`);
# on the monitors volplugin needs `profile rbd`, which includes `osd blocklist add` of a client
# address with its nonce (fencing) and nothing else that writes; volmaster and volsupervisor only
# read the maps. Neither can create or delete pools, change caps or read other pools.
CEPH_POOLS=rbd
ceph_component_caps() { # COMPONENT -> ceph-authtool --cap arguments
  local osd="profile rbd pool=$CEPH_POOLS"
  case $1 in
  volplugin) printf '%s\0' --cap mon 'profile rbd' --cap osd "$osd" ;;
  volmaster | volsupervisor) printf '%s\0' --cap mon 'allow r' --cap osd "$osd" ;;
  esac
}
CEPH_COMPONENTS=(volplugin volmaster volsupervisor)

ceph_keys_present() { # DIR
  local c
  for c in "${CEPH_COMPONENTS[@]}"; do [[ -s $1/ceph.client.$c.keyring ]] || return 1; done
}

ceph_up() { # DIR V2 V1
  local root=$1 v2=$2 v1=$3
  local dir=$root/ceph conf=$root/ceph/ceph.conf
  if pidfile_alive "$dir/run/mon.a.pid" && pidfile_alive "$dir/run/osd.0.pid" && ceph_keys_present "$dir" && ceph_healthy "$conf"; then
    say "ceph already running ($conf)"
    return 0
  fi
  # Something half-alive from an earlier run: stop it and start clean (the data was in RAM anyway).
  stop_pid "$dir/run/osd.0.pid" ceph-osd
  stop_pid "$dir/run/mon.a.pid" ceph-mon
  rm -rf "$dir"
  port_free "$v2" ceph-mon
  port_free "$v1" ceph-mon
  mkdir -p "$dir"/{osd,run,log}

  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph_conf_text "$dir" "$fsid" "$v2" "$v1" >"$conf"

  say "starting ceph-mon on 127.0.0.1:$v2 (v2) / :$v1 (v1)"
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/ceph.client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/osd/keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/ceph.client.admin.keyring" >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/osd/keyring" >/dev/null
  local component caps
  for component in "${CEPH_COMPONENTS[@]}"; do
    mapfile -d '' caps < <(ceph_component_caps "$component")
    ceph-authtool --create-keyring "$dir/ceph.client.$component.keyring" --gen-key -n "client.$component" "${caps[@]}" >/dev/null
    ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/ceph.client.$component.keyring" >/dev/null
  done
  # Keyrings are secrets: the admin's and volplugin's (root) only for their owner. volmaster and
  # volsupervisor run as uid/gid 10001 in the image: their keyrings are readable by that group.
  chmod 0600 "$dir/ceph.client.admin.keyring" "$dir/ceph.client.volplugin.keyring"
  chgrp 10001 "$dir/ceph.client.volmaster.keyring" "$dir/ceph.client.volsupervisor.keyring"
  chmod 0640 "$dir/ceph.client.volmaster.keyring" "$dir/ceph.client.volsupervisor.keyring"
  monmaptool --create --addv a "[v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" \
    >"$dir/log/mon-mkfs.log" 2>&1 || die_with_log ceph-mon "$dir/log/mon-mkfs.log" "mkfs failed"
  ceph-mon -c "$conf" -i a >>"$dir/log/mon.a.log" 2>&1 || die_with_log ceph-mon "$dir/log/mon.a.log" "did not start"
  wait_for 20 "ceph-mon" timeout 5 ceph -c "$conf" --connect-timeout 3 mon stat ||
    die_with_log ceph-mon "$dir/log/mon.a.log" "did not answer within 20 s"

  # One ceph process for both commands saves a Python start-up; the OSD's mkfs runs meanwhile.
  say "creating osd.0 (memstore) and the rbd pool"
  printf 'osd new %s 0\nosd pool create rbd 8 8\n' "$osd_uuid" |
    timeout 30 ceph -c "$conf" --connect-timeout 10 >"$dir/log/ceph-setup.log" 2>&1 &
  local setup=$!
  timeout 30 ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.log" 2>&1 ||
    die_with_log ceph-osd "$dir/log/osd-mkfs.log" "mkfs failed"
  wait "$setup" || die_with_log ceph "$dir/log/ceph-setup.log" "could not create osd.0 or the rbd pool"
  ceph-osd -c "$conf" -i 0 >>"$dir/log/osd.0.log" 2>&1 || die_with_log ceph-osd "$dir/log/osd.0.log" "did not start"
  timeout 60 rbd -c "$conf" pool init rbd >"$dir/log/pool-init.log" 2>&1 ||
    die_with_log ceph-osd "$dir/log/osd.0.log" "did not make the rbd pool active within 60 s (rbd pool init: $(tail -n 3 "$dir/log/pool-init.log" | tr '\n' ' '))"
  wait_for 30 "HEALTH_OK" ceph_healthy "$conf" ||
    die_with_log ceph "$dir/log/mon.a.log" "is up but not HEALTH_OK after 30 s: $(timeout 10 ceph -c "$conf" health detail 2>&1 | head -n 5 | tr '\n' ' ')"
  say "ceph is HEALTH_OK (conf: $conf)"
}

# ---------------------------------------------------------------------------------------------
# etcd

# With --secure: TLS and users. A CA, etcd's server certificate (127.0.0.1 and localhost), one
# client certificate with the CN volplugin-client, which names no etcd user (etcd takes a
# certificate's CN as the user only when no password is given, so the certificate alone gets
# nothing), and three users with random passwords: root (etcd's own admin), volplugin (volmaster,
# volsupervisor, volcli --etcd: read and write under /volplugin/) and volplugin-host (volplugin on
# the Docker hosts: its mount locks and their acquisition records, the format marks, its host report
# and host-alive record, answers to host requests, and reading volume records and mount exclusions;
# it cannot change
# a volume, a tenant or a token). Everything under DIR/etcd/pki/; keys and passwords mode 0600.
ETCD_PREFIX=/volplugin
ETCD_USERS=(root volplugin volplugin-host)

etcd_pki() { # PKI_DIR: made once, kept across restarts
  local pki=$1 user
  [[ -s $pki/client-key.pem && -s $pki/volplugin-host.password ]] && return 0
  mkdir -p "$pki"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$pki/ca-key.pem" -out "$pki/ca.pem" -days 3650 -subj "/CN=volplugin sandbox etcd CA" 2>/dev/null
  issue() { # NAME CN EXTENSIONS
    openssl req "${ec[@]}" -keyout "$pki/$1-key.pem" -subj "/CN=$2" 2>/dev/null |
      openssl x509 -req -CA "$pki/ca.pem" -CAkey "$pki/ca-key.pem" -CAcreateserial -days 3650 -out "$pki/$1.pem" -extfile <(printf '%b\n' "$3") 2>/dev/null
  }
  issue server etcd 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
  issue client volplugin-client 'extendedKeyUsage=clientAuth'
  # etcdctl reads a password from stdin up to the first blank: letters and digits only.
  for user in "${ETCD_USERS[@]}"; do
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$pki/$user.password")
  done
  chmod 0600 "$pki"/*-key.pem
}

# etcd_users URL PKI_DIR LOG: roles, users and auth enable on a fresh etcd. Every step is checked
# (errexit does not apply in a function called with ||).
etcd_users() {
  local url=$1 pki=$2 log=$3 user
  local e=(etcdctl --endpoints "$url" --cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client-key.pem" --dial-timeout 5s)
  : >"$log"
  step() { "${e[@]}" "$@" >>"$log" 2>&1; }
  step user add root --interactive=false <"$pki/root.password" || return 1
  step user grant-role root root || return 1
  step role add volplugin || return 1
  step role grant-permission volplugin readwrite "$ETCD_PREFIX/" --prefix=true || return 1
  step role add volplugin-host || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/mounts/" --prefix=true || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/hosts/" --prefix=true || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/host-requests/" --prefix=true || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/acquired/" --prefix=true || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/host-mounts/" --prefix=true || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/formats/" --prefix=true || return 1
  step role grant-permission volplugin-host readwrite "$ETCD_PREFIX/host-alive/" --prefix=true || return 1
  step role grant-permission volplugin-host read "$ETCD_PREFIX/exclusive/" --prefix=true || return 1
  step role grant-permission volplugin-host read "$ETCD_PREFIX/volumes/" --prefix=true || return 1
  step role grant-permission volplugin-host read "$ETCD_PREFIX/attachments/" --prefix=true || return 1
  for user in volplugin volplugin-host; do
    step user add "$user" --interactive=false <"$pki/$user.password" || return 1
    step user grant-role "$user" "$user" || return 1
  done
  step auth enable || return 1
}

etcd_up() { # DIR CLIENT_PORT PEER_PORT [--secure]
  local root=$1 port=$2 peer=$3 secure=${4:-}
  local dir=$root/etcd
  local pki=$dir/pki scheme=http tls=() health
  if [[ $secure == --secure ]]; then
    scheme=https
    tls=(--cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client-key.pem")
  elif [[ -n $secure ]]; then
    say "ERROR: etcd-up: unknown option $secure (only --secure)"
    exit 2
  fi
  local url=$scheme://127.0.0.1:$port
  health=(etcdctl --endpoints "$url" "${tls[@]}" --dial-timeout 2s endpoint health)
  mkdir -p "$dir"
  # A secure etcd counts as running only once its users were made (users.done). A running one is
  # never wiped because one health check failed (a busy machine): it gets the usual wait, and if it
  # stays unhealthy the script stops and says so; its data (and every daemon using it) stays.
  if pidfile_alive "$dir/etcd.pid" && { [[ -z $secure ]] || [[ -f $dir/users.done ]]; }; then
    wait_for 20 etcd "${health[@]}" ||
      die_with_log etcd "$dir/etcd.log" "is running (pid $(cat "$dir/etcd.pid")) but not healthy within 20 s; look at its log, or start over with make down"
    say "etcd already running ($url)"
    return 0
  fi
  stop_pid "$dir/etcd.pid" etcd
  rm -rf "$dir/data" "$dir/users.done"
  port_free "$port" etcd
  port_free "$peer" etcd
  local server_tls=()
  if [[ -n $secure ]]; then
    etcd_pki "$pki"
    server_tls=(--cert-file "$pki/server.pem" --key-file "$pki/server-key.pem" --trusted-ca-file "$pki/ca.pem" --client-cert-auth)
  fi
  say "starting etcd on $url${secure:+ (TLS, client certificates, users)}"
  setsid etcd --name sandbox --data-dir "$dir/data" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "sandbox=http://127.0.0.1:$peer" "${server_tls[@]}" >"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"
  wait_for 20 etcd "${health[@]}" ||
    die_with_log etcd "$dir/etcd.log" "did not become healthy within 20 s"
  if [[ -n $secure ]]; then
    etcd_users "$url" "$pki" "$dir/users.log" || die_with_log etcd "$dir/users.log" "could not set up its users and roles"
    touch "$dir/users.done"
  fi
  say "etcd is healthy ($url)"
}

# ---------------------------------------------------------------------------------------------
# Docker

docker_up() { # DIR SOCKET EXEC_ROOT
  local root=$1 sock=$2 exec_root=$3
  local dir=$root/docker
  mkdir -p "$dir" "$exec_root" /run/docker/plugins
  if pidfile_alive "$dir/dockerd.pid" && timeout 10 docker -H "unix://$sock" info >/dev/null 2>&1; then
    say "dockerd already running (unix://$sock)"
    return 0
  fi
  stop_pid "$dir/dockerd.pid" dockerd
  say "starting dockerd on unix://$sock"
  # The three network flags keep dockerd from rewriting the host's iptables and adding docker0.
  setsid dockerd --data-root "$dir/data" --exec-root "$exec_root" --pidfile "$dir/dockerd.pid.own" \
    -H "unix://$sock" --storage-driver overlay2 --iptables=false --ip-forward=false --bridge=none \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  echo $! >"$dir/dockerd.pid"
  echo "$exec_root" >"$dir/exec-root"
  wait_for 30 dockerd docker -H "unix://$sock" info ||
    die_with_log dockerd "$dir/dockerd.log" "did not answer within 30 s"
  say "dockerd is up (unix://$sock)"
}

# A tiny image built offline from Debian's busybox-static, so `docker run busybox ...` works with no
# registry. Tagged busybox:latest and local/busybox.
busybox_image() { # SOCKET
  local sock=$1
  if docker -H "unix://$sock" image inspect busybox:latest >/dev/null 2>&1; then
    return 0
  fi
  say "building the busybox image offline"
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,tmp,mnt,proc,sys,dev,etc}
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in $("$rootfs/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker -H "unix://$sock" import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - busybox:latest >/dev/null
  docker -H "unix://$sock" tag busybox:latest local/busybox:latest
  rm -rf "$rootfs"
}

# ---------------------------------------------------------------------------------------------
# Tear-down: everything below DIR, by pid, then whatever a crash may have left.

cleanup_mounts_under() { # DIR: unmount (deepest first) every mount below DIR, detach loops on rbd-fuse files.
  local root
  root=$(realpath -m "$1")
  local mp
  # Loop devices whose backing file lives below DIR (rbd-fuse images).
  while read -r loopdev backing; do
    [[ $backing == "$root"/* ]] || continue
    while read -r mp; do umount -l "$mp" 2>/dev/null || true; done < <(awk -v d="$loopdev" '$1 == d {print $2}' /proc/mounts)
    timeout 10 losetup -d "$loopdev" 2>/dev/null || true
  done < <(losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null || true)
  # A plain umount of a FUSE mount whose daemon is hung (a fenced rbd-fuse) never returns: bound it.
  while read -r mp; do
    timeout 10 umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || fusermount -u -z "$mp" 2>/dev/null || true
  done < <(awk '{print $2}' /proc/mounts | grep -F "$root/" | sort -r || true)
}

down() { # DIR
  local root=$1
  [[ -d $root ]] || return 0
  # dockerd first: stopping it stops the containers, whose Unmounts volplugin must still answer.
  stop_pid "$root/docker/dockerd.pid" dockerd
  local pidfile
  for pidfile in "$root"/run/*.pid; do
    [[ -f $pidfile ]] && stop_pid "$pidfile"
  done
  # dockerd leaves its exec root's netns/default mounted: without this the directory cannot go.
  if [[ -f $root/docker/exec-root ]]; then
    cleanup_mounts_under "$(cat "$root/docker/exec-root")"
    rm -rf "$(cat "$root/docker/exec-root")"
    rm -f "$root/docker/exec-root"
  fi
  cleanup_mounts_under "$root"
  stop_pid "$root/ceph/run/osd.0.pid" ceph-osd
  stop_pid "$root/ceph/run/mon.a.pid" ceph-mon
  local etcd_pid
  # The plain etcd and any other beside it (the tests' secure one under DIR/secure/).
  for etcd_pid in "$root"/etcd/etcd.pid "$root"/*/etcd/etcd.pid; do
    if [[ -f $etcd_pid ]]; then stop_pid "$etcd_pid" etcd; fi
  done
}

case ${1:-} in
ceph-up) ceph_up "$2" "$3" "$4" ;;
etcd-up) etcd_up "$2" "$3" "$4" "${5:-}" ;;
docker-up) docker_up "$2" "$3" "$4" ;;
busybox-image) busybox_image "$2" ;;
stop-pid) stop_pid "$2" "${3:-}" ;;
cleanup-mounts) cleanup_mounts_under "$2" ;;
pid-alive) pidfile_alive "$2" ;;
down) down "$2" ;;
*)
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
