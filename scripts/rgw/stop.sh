#!/usr/bin/env bash
# Usage: scripts/rgw/stop.sh <cluster dir printed by start.sh> [--keep]
# The cluster is throwaway: SIGKILL the three daemons (a graceful SIGTERM takes 1-2 s each),
# wait until they are gone (ports free), then delete the dir unless --keep.
set -uo pipefail
DIR=${1:?cluster dir}
pids=()
for name in client.rgw.local osd.0 mon.a; do
  f=$DIR/run/$name.pid
  [ -f "$f" ] && pid=$(cat "$f") && kill -9 "$pid" 2>/dev/null && pids+=("$pid")
done
for _ in $(seq 50); do
  alive=0   # a zombie (state Z, waiting for init to reap it) counts as gone
  for p in "${pids[@]}"; do case $(ps -o stat= -p "$p" 2>/dev/null) in ""|Z*) ;; *) alive=1;; esac; done
  [ $alive = 0 ] && break; sleep 0.1
done
[ "${2:-}" = --keep ] || rm -rf "$DIR"
exit 0
