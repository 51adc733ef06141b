#!/usr/bin/env bash
# Proves OUR remote client against THEIR server: starts OpenHands' agent-server 1.58 (in the
# peer chroot, with a session key) and the scripted model (3 `terminal` steps, then `finish`),
# then runs the `peer_compat` test of tests/remote_client.rs: RemoteWorkspace (commands,
# files, git) and RemoteConversation (run to finish, attach, max iterations). Prints one
# PASS/FAIL line per check; exits non-zero on any failure.
# 
# Needs root (the chroot mounts /proc and /dev). Settings (environment):
#   PEER_RUN       the chroot runner      (default /work/shared/peer/run.sh)
#   SCRIPTED_LLM   the scripted model     (default /work/shared/bench/scripted_llm.py)
#   PEER_KEY       the session key        (default compat-key-<random>)
#   SANDCRAB_PEER_URL / SANDCRAB_PEER_LLM  use an already running peer / model instead
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CRATE=$(cd "$HERE/../.." && pwd)
PEER_RUN=${PEER_RUN:-/work/shared/peer/run.sh}
SCRIPTED_LLM=${SCRIPTED_LLM:-/work/shared/bench/scripted_llm.py}
PEER_KEY=${PEER_KEY:-compat-key-$RANDOM$RANDOM}
LOGS=$(mktemp -d /tmp/sandcrab-peer-compat.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # url seconds
    local deadline=$((SECONDS + $2))
    until curl -sf -o /dev/null "$1"; do
        if ((SECONDS >= deadline)); then return 1; fi
        sleep 0.5
    done
}

if [[ -z "${SANDCRAB_PEER_LLM:-}" ]]; then
    LLM_PORT=$(free_port)
    python3 "$SCRIPTED_LLM" --port "$LLM_PORT" --steps 3 >"$LOGS/llm.log" 2>&1 &
    PIDS+=($!)
    export SANDCRAB_PEER_LLM="http://127.0.0.1:$LLM_PORT/v1"
    wait_for "http://127.0.0.1:$LLM_PORT/v1/models" 20 || { echo "FAIL scripted model did not start"; exit 1; }
fi

if [[ -z "${SANDCRAB_PEER_URL:-}" ]]; then
    PEER_PORT=$(free_port)
    SESSION_API_KEY=$PEER_KEY "$PEER_RUN" /opt/oh/bin/python -m openhands.agent_server \
        --host 127.0.0.1 --port "$PEER_PORT" >"$LOGS/peer.log" 2>&1 &
    PIDS+=($!)
    export SANDCRAB_PEER_URL="http://127.0.0.1:$PEER_PORT"
    export SANDCRAB_PEER_KEY=$PEER_KEY
    if ! wait_for "$SANDCRAB_PEER_URL/alive" 90; then
        echo "FAIL the OpenHands agent-server did not start; its log:"
        tail -30 "$LOGS/peer.log"
        exit 1
    fi
fi
echo "peer: $SANDCRAB_PEER_URL  model: $SANDCRAB_PEER_LLM  logs: $LOGS"

cd "$CRATE" || exit 1
cargo test --test remote_client -- --ignored --exact peer_compat --nocapture \
    >"$LOGS/test.log" 2>&1
status=$?
grep -E '^(PASS|FAIL|SKIP|INFO) ' "$LOGS/test.log"
passed=$(grep -c '^PASS ' "$LOGS/test.log")
failed=$(grep -c '^FAIL ' "$LOGS/test.log")
if ((status != 0 || failed > 0 || passed == 0)); then
    echo "peer compat: FAILED ($passed passed, $failed failed, cargo exit $status)"
    grep -vE '^(PASS|FAIL|SKIP|INFO) ' "$LOGS/test.log" | tail -30
    exit 1
fi
echo "peer compat: all $passed checks passed"
