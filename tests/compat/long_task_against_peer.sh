#!/usr/bin/env bash
# Wire compatibility of condensation, direction (b): `sandcrab run --workspace remote` drives
# OpenHands' agent-server (the peer chroot of ../shared/peer/setup.sh) with sandcrab's
# condenser in the agent JSON, on a long task whose context overflows (long_task_llm.py with a
# 20k-token window). OpenHands condenses; sandcrab's client must parse its
# CondensationRequest / Condensation events and the run must finish every step.
#   SANDCRAB_BIN=target/debug/sandcrab tests/compat/long_task_against_peer.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${SHARED_DIR:-$repo/../shared}
peer_root=${PEER_ROOT:-/var/tmp/openhands-peer}
steps=${STEPS:-60}
[ -x "$peer_root/opt/oh/bin/python" ] || "$shared/peer/setup.sh"
if [ -z "${SANDCRAB_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
fi
bin=${SANDCRAB_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/sandcrab}

work=$(mktemp -d /tmp/sandcrab-peer-long-XXXXXX)
inside=/tmp/$(basename "$work")   # the server's working dir, inside the chroot
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$peer_root$inside"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
llm_port=$(free_port); peer_port=$(free_port); key=peer-long-$$
python3 "$shared/bench/long_task_llm.py" --port "$llm_port" --steps "$steps" --context-limit 20000 \
  > "$work/llm.log" 2>&1 & pids+=($!)
SESSION_API_KEY=$key "$shared/peer/run.sh" /opt/oh/bin/python -m openhands.agent_server \
  --host 127.0.0.1 --port "$peer_port" > "$work/peer.log" 2>&1 & pids+=($!)
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$peer_port/alive" >/dev/null && break; sleep 1; done
server_pid=$(ss -ltnpH "sport = :$peer_port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
[ -n "$server_pid" ] && pids+=("$server_pid")

mkdir -p "$peer_root$inside" "$work/repo"
for d in "$peer_root$inside" "$work/repo"; do
  git -C "$d" init -q -b main
  git -C "$d" -c user.name=c -c user.email=c@c.invalid commit -q --allow-empty -m init
done
rc=0
"$bin" run --workspace remote --server-url "http://127.0.0.1:$peer_port" --session-api-key "$key" \
  --sandbox-workdir "$inside" --repo-dir "$work/repo" --model openai/gpt-4o \
  --llm-base-url "http://127.0.0.1:$llm_port/v1" --llm-api-key x --max-iterations 400 \
  --prompt "Long scripted task $$: run each command you are given in the terminal, one at a time, until told to finish." \
  --out "$work/out" > "$work/run.out" 2> "$work/run.err" || rc=$?
stats=$(curl -s "http://127.0.0.1:$llm_port/stats")
done_steps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["steps_done"])' "$stats")
requests=$(grep -c '"kind":"CondensationRequest"' "$work/out/trajectory.jsonl" || true)
condensations=$(grep -c '"kind":"Condensation"' "$work/out/trajectory.jsonl" || true)
status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$work/out/result.json")
echo "rc=$rc status=$status steps=$done_steps/$steps condensation requests=$requests condensations=$condensations (logs: $work)"
[ "$rc" = 0 ] && [ "$status" = finished ] && [ "$done_steps" = "$steps" ] && [ "$condensations" -gt 0 ] \
  && echo "PASS sandcrab->openhands condensation events parsed, every step done" \
  || { echo "FAIL sandcrab->openhands condensation"; tail -5 "$work/run.err"; exit 1; }
