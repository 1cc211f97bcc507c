#!/usr/bin/env bash
# Throwaway single-node Ceph (mon + memstore OSD, no mgr) + RADOS Gateway on 127.0.0.1, for tests.
# Debian 12: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common
# Usage: [RGW_DIR=/path] [RGW_PORT=7480] [MON_PORT=16789] [ACCESS_KEY=AK] [SECRET_KEY=SK] scripts/rgw/start.sh
# Prints the cluster dir on the last line; stop with scripts/rgw/stop.sh <dir>.
# Several clusters may run side by side if each gets its own RGW_PORT and MON_PORT (the OSD picks
# free ports in 6800-7300 itself); everything else lives in the cluster dir.
# On failure the daemons started so far are killed and the dir is kept (logs in <dir>/log).
# RGW quirks that matter to rewrap: scripts/rgw/README.md.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool uuidgen curl; do
  command -v "$bin" >/dev/null || {
    echo "$bin not found. Install Ceph RGW: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common" >&2
    exit 127
  }
done

RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-16789}          # msgr v1 only; avoids clashing with a real ceph on 6789/3300
ACCESS_KEY=${ACCESS_KEY:-AK}
SECRET_KEY=${SECRET_KEY:-SK}
OBJSTORE=${OBJSTORE:-memstore}       # memstore (RAM) or bluestore (file-backed)
MEM_BYTES=${MEM_BYTES:-2147483648}   # memstore "device" size (RAM is only used as data is written)
DIR=${RGW_DIR:-$(mktemp -d -t ceph-rgw.XXXXXX)}
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/ceph.conf
export CEPH_CONF=$CONF
T0=$(date +%s%3N)
log() { local ms=$(( $(date +%s%3N) - T0 )); printf '[%d.%03ds] %s\n' $((ms/1000)) $((ms%1000)) "$*" >&2; }

mkdir -p "$DIR"/{run,log,mon.a,osd.0}
trap 'rc=$?; [ $rc = 0 ] || { echo "start.sh failed (exit $rc); logs kept in $DIR/log" >&2; bash "$HERE/stop.sh" "$DIR" --keep; }' EXIT
FSID=$(uuidgen)

# Every debug subsystem off, even the in-memory ring (Ceph's default "1/5" formats each message
# of level <= 5 into memory): measured here, ~20 % of the daemons' CPU per S3 request.
DEBUG_OFF=$(ceph-conf -D 2>/dev/null | sed -n 's|^\(debug_[a-z_]*\) = [0-9]*/[0-9]*$|\1 = 0/0|p')
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
# no dmesg/syslog spam, no crash dumps in /var/lib/ceph
log to stderr = false
err to stderr = true
crash dir = $DIR/crash
$DEBUG_OFF
osd enable op tracker = false
# single replica, tiny PG counts
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail warn = 2
mon data avail crit = 1
osd failsafe full ratio = .99
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
mon warn on insecure global id reclaim allowed = false
# every mon command otherwise costs ~1 s (paxos propose interval)
paxos propose interval = 0.01
paxos min wait = 0.01
# keep memstore/pglog memory small
osd min pg log entries = 10
osd max pg log entries = 10
osd pg log dups tracked = 10
osd pg log trim min = 10

[mon]
admin socket = $DIR/run/\$name.asok
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log

[osd]
admin socket = $DIR/run/\$name.asok
osd data = $DIR/osd.\$id
osd objectstore = $OBJSTORE
memstore device bytes = $MEM_BYTES
bluestore block path = $DIR/osd.\$id/block.file
bluestore block size = 10737418240
bluestore block create = true
bluestore fsck on mount = false
osd memory target = 939524096
# with auth=none the OSD can send its boot-time crush commands before it has the monmap
# (fsid 0000 -> mon replies 'wrong fsid' -> OSD exits, ~1 run in 3). Place it in crush ourselves.
osd crush update on start = false
osd class update on start = false
osd op num shards = 1
osd op num threads per shard = 2

[client]
# radosgw-admin and radosgw
rgw zone = default
log file = $DIR/log/\$name.log

[client.rgw.local]
admin socket = $DIR/run/\$name.asok
# tcp_nodelay: without it every response with a body (GET, CopyObject) stalls ~40 ms on loopback
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw thread pool size = 64
rgw dns name = localhost
rgw dynamic resharding = false
rgw enable usage log = false
# reclaim deleted/overwritten tail objects after 60 s instead of 2 h (memstore is RAM)
rgw gc obj min wait = 60
rgw gc processor period = 60
rgw data log num shards = 8
rgw md log max shards = 8
# SSE-C over plain HTTP (tests only: RGW otherwise refuses customer keys without TLS) and SSE-KMS
# from a fixed test key (the 'testing' backend), so the tests can make such objects.
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo=
EOF

# With auth=none a client may send its first mon command before it has received the monmap
# (fsid 0000 -> mon answers EPERM 'wrong fsid'); rare, more likely under load. So: retry.
c() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    ceph -c "$CONF" "$@" 2>>"$DIR/log/ceph-cli.err" && return 0
    sleep 0.3
  done
  echo "ceph $* failed; see $DIR/log/ceph-cli.err" >&2; return 1
}

# --- monitor ---
monmaptool --create --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$DIR/monmap" -c "$CONF" 2>"$DIR/log/mkfs-mon.err"
ceph-mon -i a -c "$CONF"      # daemonizes
log "mon started"
timeout 60 bash -c "until ceph -c '$CONF' --connect-timeout 2 mon stat >/dev/null 2>&1; do sleep 0.2; done"
log "mon answering"

# --- OSD ---
OSD_UUID=$(uuidgen)
OSD_ID=$(c osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || { echo "unexpected osd id $OSD_ID" >&2; exit 1; }
c osd crush add osd.0 1.0 root=default >/dev/null
ceph-osd -i 0 -c "$CONF" --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/mkfs-osd.out" 2>&1
ceph-osd -i 0 -c "$CONF" 2>"$DIR/log/osd.0.stderr"    # daemonizes
log "osd started"
if ! timeout 60 bash -c "until ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.0 up'; do sleep 0.3; done"; then
  echo "OSD did not come up; see $DIR/log/osd.0.log" >&2; tail -5 "$DIR/log/osd.0.log" >&2; exit 1
fi
log "osd up"

# --- pools RGW would otherwise create lazily (first CreateBucket / first multipart would take seconds) ---
pids=()
for p in .rgw.root default.rgw.log default.rgw.control default.rgw.meta \
         default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
  ( c osd pool create "$p" 8 8 && c osd pool application enable "$p" rgw ) >>"$DIR/log/pools.out" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done   # set -e: a failed wait aborts
log "pools created"

# --- RADOS gateway ---
radosgw -n client.rgw.local -c "$CONF"   # daemonizes; creates the default realm/zonegroup/zone
timeout 120 bash -c "until curl -fs -o /dev/null http://127.0.0.1:$RGW_PORT/; do sleep 0.3; done"
log "rgw answering"
# A storage class named GLACIER in the default placement (tests of archived objects). RGW creates
# the default zonegroup on its first start and reads placements only at start: add, then restart.
radosgw-admin -c "$CONF" zonegroup placement add --rgw-zonegroup default --placement-id default-placement \
  --storage-class GLACIER >>"$DIR/log/placement.out" 2>&1
radosgw-admin -c "$CONF" zone placement add --rgw-zone default --placement-id default-placement \
  --storage-class GLACIER --data-pool default.rgw.buckets.data >>"$DIR/log/placement.out" 2>&1
RGW_PID=$(cat "$DIR/run/client.rgw.local.pid")
kill "$RGW_PID"
timeout 30 bash -c "while kill -0 $RGW_PID 2>/dev/null; do sleep 0.1; done"
radosgw -n client.rgw.local -c "$CONF"
timeout 120 bash -c "until curl -fs -o /dev/null http://127.0.0.1:$RGW_PORT/; do sleep 0.3; done"
log "rgw restarted with storage class GLACIER"
for i in 1 2 3 4 5; do
  radosgw-admin -c "$CONF" user create --uid test --display-name test \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >"$DIR/user.json" 2>>"$DIR/log/user-create.err" && break
  radosgw-admin -c "$CONF" user info --uid test >"$DIR/user.json" 2>/dev/null && break
  sleep 0.5
done
grep -q "\"$ACCESS_KEY\"" "$DIR/user.json" || { echo "S3 user creation failed" >&2; exit 1; }
log "S3 user created (access=$ACCESS_KEY)"
trap - EXIT
echo "$DIR"
