#!/usr/bin/env bash
# Every benchmark in one go, side by side with the OpenHands peer where one exists (install it
# first with ../shared/peer/setup.sh, as root; without it only sandcrab's figures print):
#   per-step overhead (50 scripted steps), agent-server start / idle RSS / exec round trip,
#   20 concurrent conversations (throughput, p50/p99 step latency, peak RSS), Docker sandbox
#   ready time, binary sizes (glibc and musl) and the action image size.
# Prints the machine, the date and the load before each bench; figures go to BENCHMARKS.md by
# hand. Usage: bench/run.sh [bench...]   (default: steps server concurrent sandbox)
set -euo pipefail
cd "$(dirname "$0")/.."
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(steps server concurrent sandbox)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1e6}' /proc/meminfo), $(uname -m), $(uname -r)"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
cargo build --release --quiet --bin sandcrab
cargo build --release --quiet --bin sandcrab --target x86_64-unknown-linux-musl
for bench in "${benches[@]}"; do
  echo
  echo "== $bench   (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  cargo bench --quiet --bench "$bench"
done
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
