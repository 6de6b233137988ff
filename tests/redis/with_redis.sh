#!/usr/bin/env bash
# Run one chat server with --redis on a private redis-server, for the
# contract suite (tests/integration) in Redis mode: ctest redis-contract-*.
#
#   C10K_REAL_SERVER=path/to/chat-MODEL with_redis.sh SERVER-ARGS...
#
# The harness starts this script as "the server". It starts redis-server on
# a free loopback port (no RDB, no AOF, an empty temp --dir, removed after),
# then the real server with --redis. No waiting for Redis: the server
# reconnects with back-off until it is up, and a WebSocket's welcome waits
# for the room. SIGTERM/SIGINT go to the server; its exit status is ours.
set -u
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d "${TMPDIR:-/tmp}/c10k-redis-XXXXXX")
# Both die with this script, even when the harness SIGKILLs it (a failed
# test's teardown): nothing may outlive a test.
setpriv --pdeathsig KILL redis-server --port "$port" --bind 127.0.0.1 --save '' \
  --appendonly no --dir "$dir" --logfile '' >/dev/null 2>&1 &
redis=$!
setpriv --pdeathsig KILL "$C10K_REAL_SERVER" "$@" --redis "redis://127.0.0.1:$port/0" &
server=$!
trap 'kill -TERM $server 2>/dev/null' TERM
trap 'kill -INT $server 2>/dev/null' INT
# A trapped signal interrupts wait: wait again until the server is gone,
# then once more for its real status (bash keeps it for a reaped child).
while :; do
  wait $server
  kill -0 $server 2>/dev/null || break
done
wait $server
rc=$?
kill $redis 2>/dev/null
wait $redis 2>/dev/null
rmdir "$dir" || rc=1   # Redis must have left nothing behind
exit $rc
