#!/usr/bin/env bash
# The first figures of each model, with wrk (Debian), until chatbench and
# `./lab bench` (issue 5) replace this. Every run is bounded; the server is
# pinned to CPU 0 and wrk to CPU 1 unless a case says "unpinned".
#
# usage: bench/quick-figures.sh [BUILD_DIR]   (default: build)
# Prints one line per case: the median of RUNS runs and all runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
PORT=18400

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"

start() { # MODEL PIN FLAGS...
  local model=$1 pin=$2; shift 2
  PORT=$((PORT + 1))
  if [ "$pin" = pinned ]; then
    taskset -c 0 "$BUILD/models/$model/chat-$model" --listen 127.0.0.1:$PORT "$@" >/dev/null 2>&1 &
  else
    "$BUILD/models/$model/chat-$model" --listen 127.0.0.1:$PORT "$@" >/dev/null 2>&1 &
  fi
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/hello" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start" >&2; exit 1
}
stop() { kill -TERM "$SERVER"; wait "$SERVER" || true; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# wrkcase LABEL PIN CONC PATH [wrk args...]
wrkcase() {
  local label=$1 pin=$2 conc=$3 path=$4; shift 4
  local runs=() r
  for _ in $(seq "$RUNS"); do
    if [ "$pin" = pinned ]; then
      r=$(taskset -c 1 wrk -t1 -c"$conc" -d"$DUR" "$@" "http://127.0.0.1:$PORT$path" | awk '/Requests\/sec/ {print $2}')
    else
      r=$(wrk -t1 -c"$conc" -d"$DUR" "$@" "http://127.0.0.1:$PORT$path" | awk '/Requests\/sec/ {print $2}')
    fi
    runs+=("$r")
  done
  printf '%-58s median %10s req/s   runs: %s\n' "$label" "$(printf '%s\n' "${runs[@]}" | median)" "${runs[*]}"
}

case ${CASES:-all} in
all|async)
  start async pinned
  wrkcase "async    /hello keep-alive c=50" pinned 50 /hello
  wrkcase "async    /hello no keep-alive c=50" pinned 50 /hello -H "Connection: close"
  wrkcase "async    /sleep?ms=100 c=200" pinned 200 "/sleep?ms=100"
  stop
  start async unpinned
  wrkcase "async    /cpu?n=100000 c=2 unpinned (on the loop)" unpinned 2 "/cpu?n=100000"
  stop
  start async unpinned --cpu-pool
  wrkcase "async    /cpu?n=100000 c=2 unpinned --cpu-pool" unpinned 2 "/cpu?n=100000"
  stop
  ;;&
all|threaded)
  start threaded pinned
  wrkcase "threaded /hello keep-alive c=50" pinned 50 /hello
  wrkcase "threaded /hello no keep-alive c=50" pinned 50 /hello -H "Connection: close"
  wrkcase "threaded /sleep?ms=100 c=200 (pool 64)" pinned 200 "/sleep?ms=100"
  stop
  start threaded unpinned
  wrkcase "threaded /cpu?n=100000 c=2 unpinned" unpinned 2 "/cpu?n=100000"
  stop
  start threaded unpinned --gil
  wrkcase "threaded /cpu?n=100000 c=2 unpinned --gil" unpinned 2 "/cpu?n=100000"
  stop
  ;;&
all|forked)
  start forked pinned
  wrkcase "forked   /hello keep-alive c=50" pinned 50 /hello
  wrkcase "forked   /hello no keep-alive c=50" pinned 50 /hello -H "Connection: close"
  wrkcase "forked   /sleep?ms=100 c=200" pinned 200 "/sleep?ms=100"
  stop
  start forked unpinned
  wrkcase "forked   /cpu?n=100000 c=2 unpinned" unpinned 2 "/cpu?n=100000"
  stop
  ;;&
all|seat)
  for m in async threaded forked; do
    flags=()
    [ "$m" = threaded ] && flags=(--threads 0)
    start "$m" unpinned "${flags[@]}"
    printf '%-10s 1000 WebSockets seated in the room: %s\n' "$m" "$(python3 bench/ws_hold.py "$PORT" 1000 2)"
    stop
  done
  ;;
esac
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
