#!/usr/bin/env bash
# Run the libFuzzer targets of a C10K_FUZZ build (see tests/fuzz/CMakeLists.txt).
#
#   tests/fuzz/run.sh [--keep] BUILD_DIR SECONDS [TARGET...]
#
# For each target (default: all), one after another so that one core stays
# free: first replay every input in tests/fuzz/regressions/TARGET/ (each a
# crash once found), then fuzz for SECONDS from the seeds in
# tests/fuzz/corpus/TARGET/ and the regressions. New inputs go to a
# temporary corpus, deleted afterwards, or with --keep (./lab fuzz) to
# BUILD_DIR/fuzz-corpus/TARGET/, kept for the next run; never into the
# source tree. A crash is saved in BUILD_DIR/fuzz-crashes/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

keep=0
[ "${1:-}" = --keep ] && { keep=1; shift; }
[ $# -ge 2 ] || { echo "usage: tests/fuzz/run.sh [--keep] BUILD_DIR SECONDS [TARGET...]" >&2; exit 2; }
build=$1 secs=$2
shift 2
[[ $secs =~ ^[0-9]+$ ]] || { echo "run.sh: SECONDS must be a whole number" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http ws cookie urlcode redis)

# The longest input worth trying: past the 8 KiB head limit for http, past
# a 4 KiB message plus its framing for ws; redis makes long strings from
# three bytes, so its programs stay short.
declare -A max_len=([http]=12000 [ws]=5000 [cookie]=300 [urlcode]=1024 [redis]=2048)

crashes=$build/fuzz-crashes logs=$build/fuzz-logs
mkdir -p "$crashes" "$logs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0

for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz-$t
  [ -x "$bin" ] || { echo "run.sh: no $bin (build with -DC10K_FUZZ=ON)" >&2; exit 2; }
  [ -n "${max_len[$t]:-}" ] || { echo "run.sh: unknown target $t" >&2; exit 2; }
  log=$logs/$t.log
  opts=(-max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/$t-")
  [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")

  regs=(tests/fuzz/regressions/"$t"/*)
  [ -e "${regs[0]}" ] || regs=()
  if [ ${#regs[@]} -gt 0 ] && ! "$bin" "${opts[@]}" "${regs[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz-$t: a regression input fails again (log: $log)" >&2
    rc=1
    continue
  fi

  if [ $keep -eq 1 ]; then corpus=$build/fuzz-corpus/$t; else corpus=$tmp/$t; fi
  mkdir -p "$corpus"
  # libFuzzer adds new inputs to the first directory only.
  dirs=("$corpus" "tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  start=$(date +%s)
  if "$bin" "${opts[@]}" -max_total_time="$secs" "${dirs[@]}" >>"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    printf 'fuzz-%s: %s runs in %ss (%s/s), %s, corpus %s inputs, no crash\n' "$t" "${runs:-?}" \
      "$(($(date +%s) - start))" "${speed:-?}" "${cov:-cov: ?}" "$(ls "$corpus" | wc -l)" >&2
  else
    grep -v '^#[0-9]' "$log" | tail -n 60 >&2
    echo "fuzz-$t: CRASH; the input is in $crashes/ (log: $log). Fix it, then add the input" \
         "to tests/fuzz/regressions/$t/" >&2
    rc=1
  fi
done
exit $rc
