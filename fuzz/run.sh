#!/usr/bin/env bash
# Fuzzes the framer and the syslog header scanner for a bounded time each:
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the script; replay it with `cargo fuzz run TARGET FILE`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-60}
# cargo fuzz passes nightly-only -Z flags to rustc; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
for target in ${ZEROLOG_FUZZ_TARGETS:-framer syslog_header}; do
  mkdir -p "corpus/$target"
  echo "== fuzz $target for ${secs}s"
  # -s none: the targets are safe Rust, so the sanitizer adds cost and finds nothing more;
  # -a: overflow checks and debug assertions on. A bounded input length keeps runs fast.
  log="$(mktemp)"
  rc=0
  cargo fuzz run -s none -a "$target" "corpus/$target" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^(INFO: Seed|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if [[ $rc -ne 0 ]]; then
    tail -n 60 "$log"
    echo "fuzz $target FAILED (exit $rc); a crashing input is in fuzz/artifacts/$target/"
    exit 1
  fi
  rm -f "$log"
done
echo "== fuzz: no crash"
