#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 60; SANDCRAB_FUZZ_SECONDS or the first
# argument), growing the corpora under fuzz/corpus/<target>/ that are kept in git. A crash
# leaves its input under fuzz/artifacts/<target>/ and fails the script.
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`) and a C++ compiler; the stable
# toolchain is enough: RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-${SANDCRAB_FUZZ_SECONDS:-60}}
targets=(script_yaml file_editor_args server_bodies webhook_event redactor comment_sanitiser)
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  log=$(mktemp)
  status=0
  cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=20 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Test unit written|thread .* panicked)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"; rm -f "$log"
    echo "fuzz $target failed (a crash leaves its input in fuzz/artifacts/$target/)"; exit 1
  fi
  rm -f "$log"
done
