#!/usr/bin/env bash
# Wire compatibility, direction (a): the real OpenHands SDK (in the peer chroot made by
# ../shared/peer/setup.sh) drives `sandcrab serve`. Needs root (the chroot) and the peer.
#   tests/compat/sdk_against_sandcrab.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${SHARED_DIR:-$repo/../shared}
peer_root=${PEER_ROOT:-/var/tmp/openhands-peer}
[ -x "$peer_root/opt/oh/bin/python" ] || "$shared/peer/setup.sh"
# SANDCRAB_BIN: a binary already built (skips the release build).
if [ -z "${SANDCRAB_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
fi
bin=${SANDCRAB_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/sandcrab}

work=$(mktemp -d /tmp/sandcrab-compat-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The server's working directory: a git repo with one modified and one new file.
mkdir -p "$work/repo"
git -C "$work/repo" init -q -b main
printf 'before\n' > "$work/repo/tracked.txt"
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=c -c user.email=c@c.invalid commit -q -m init
printf 'after\n' > "$work/repo/tracked.txt"
printf 'new\n' > "$work/repo/new.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
llm_port=$(free_port)
python3 "$shared/bench/scripted_llm.py" --port "$llm_port" --steps 3 & pids+=($!)
key=compat-key-$$
SESSION_API_KEY=$key "$bin" serve --port 0 --working-dir "$work/repo" \
  --conversations-dir "$work/conversations" > "$work/serve.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/serve.log" && break; sleep 0.05; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/serve.log")
echo "sandcrab serve at $url (working dir $work/repo)"

mkdir -p "$peer_root/bench"
cp "$here/sdk_drives_sandcrab.py" "$peer_root/bench/"
# The MCP check: sandcrab serve (on the host) starts tests/fixtures/mcp/notes_server.py with
# the Python that has the `mcp` package (see .ci/run); skipped, and said so, without it.
mcp_python=${SANDCRAB_MCP_PYTHON:-/var/tmp/sandcrab-mcp-venv/bin/python}
"$mcp_python" -c 'import mcp.server' 2>/dev/null || mcp_python=""
"$shared/peer/run.sh" /opt/oh/bin/python /bench/sdk_drives_sandcrab.py "$url" "$key" "$llm_port" "$work/repo" \
  "$mcp_python" "$repo/tests/fixtures/mcp/notes_server.py"
