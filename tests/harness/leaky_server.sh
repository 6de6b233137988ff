#!/bin/sh
# A fake "server" for the harness's own test: it prints the listening line
# the harness waits for, and on SIGTERM exits 0 leaving a child behind —
# what a server that does not reap its tree looks like from outside.
sleep 3141 &
# The listening line only once the child has become `sleep` (until its exec
# it is a copy of this shell), so the survivor the test names is the sleep.
until [ "$(cat /proc/$!/comm 2>/dev/null)" = sleep ]; do :; done
trap 'exit 0' TERM
echo "listening on http://127.0.0.1:9"
wait
