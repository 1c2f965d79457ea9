#!/usr/bin/env bash
# Bounded fuzzing run of every cargo-fuzz target (issue #9; SECURITY.md "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS]      # each target for SECONDS (default 30)
#
# Installs cargo-fuzz (crates.io, --locked) when missing. cargo-fuzz passes nightly
# `-Z` flags to rustc; on the stable toolchain RUSTC_BOOTSTRAP=1 allows them (set
# only for this script). Each target starts from the committed seeds in
# fuzz/corpus/<target>/ and writes what it discovers to fuzz/target/corpus/<target>/
# (never into the committed seeds). A crash leaves its input in fuzz/artifacts/<target>/,
# the log is printed and the script exits 1: add the input to fuzz/corpus/<target>/
# and a unit test for it.
#
# FUZZ_SANITIZER (default `none`): the code under test forbids `unsafe`, so the short
# run skips AddressSanitizer for speed; overflow checks and debug assertions stay on.
# Long runs: FUZZ_SANITIZER=address scripts/fuzz.sh 3600
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
targets=(path_normalize token_verify config_parse header_strip host_parse guard_multi)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

cd fuzz
echo "== cargo fuzz build (sanitizer: $sanitizer)" >&2
mkdir -p target
if ! cargo fuzz build -s "$sanitizer" >target/fuzz-build.log 2>&1; then
  tail -60 target/fuzz-build.log
  exit 1
fi
status=0
for t in "${targets[@]}"; do
  work="target/corpus/$t"
  log="target/fuzz-$t.log"
  mkdir -p "$work"
  if cargo fuzz run -s "$sanitizer" "$t" "$work" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
    echo "fuzz $t: ${execs:-?} executions in ${secs}s (${cov:-cov: ?}), no crash"
  else
    status=1
    echo "fuzz $t: FAILED (input in fuzz/artifacts/$t/)"
    tail -60 "$log"
  fi
done
exit "$status"
