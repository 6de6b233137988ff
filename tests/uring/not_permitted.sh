#!/bin/sh
# chat-uring where io_uring is not permitted (deny-uring's seccomp filter):
# it must exit 1 with exactly one line on stderr naming io_uring, and print
# nothing on stdout (no listening line: it never served).
#
#   not_permitted.sh DENY_URING CHAT_URING
#
# An empty users file: without one the server's first stderr line is the
# demo accounts' warning. The address is one no machine has (TEST-NET-1, RFC 5737): if the filter
# did not stop the ring, chat-uring fails to listen and exits at once with a
# message that does not name io_uring, so a broken case fails, never hangs.
set -u
deny=$1 server=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
(umask 077 && : >"$tmp/users")
"$deny" "$server" --users "$tmp/users" --listen 192.0.2.1:9 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 77 ] && { cat "$tmp/out"; exit 77; } # deny-uring: no seccomp here
fail=0
say() { echo "not_permitted: $*"; fail=1; }
[ $rc -eq 1 ] || say "exit status $rc, not 1"
[ -s "$tmp/out" ] && say "stdout not empty"
lines=$(wc -l <"$tmp/err")
[ "$lines" -eq 1 ] || say "$lines lines on stderr, not 1"
grep -q io_uring "$tmp/err" || say "stderr does not name io_uring"
echo "--- stdout:"; cat "$tmp/out"
echo "--- stderr:"; cat "$tmp/err"
exit $fail
