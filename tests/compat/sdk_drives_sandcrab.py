"""The OpenHands Python SDK (1.58.2) driving `sandcrab serve`: RemoteWorkspace's
execute_command / file_upload / file_download / git_changes / git_diff, a RemoteConversation
run with the shared scripted model, one with the SDK's LLMSummarizingCondenser whose forced
condensation (`POST .../condense`) the SDK must parse, and one with the SDK's AgentContext and
HookConfig whose skills, HookExecutionEvent and UserRejectObservation the SDK must parse. Runs inside the peer chroot (shared/peer/run.sh); the
server runs on the host, reachable on the shared loopback.

  python sdk_drives_sandcrab.py SERVER_URL SESSION_KEY LLM_PORT SERVER_WORKDIR [MCP_PYTHON MCP_SERVER]

MCP_PYTHON and MCP_SERVER are host paths (sandcrab serve starts the MCP server, not the SDK).

Prints one PASS/FAIL line per check and exits 1 if any failed.
"""
import os
import sys
import tempfile

from pydantic import SecretStr

from openhands.sdk import LLM, Agent, Conversation, Tool
from openhands.sdk.workspace import RemoteWorkspace
from openhands.tools.file_editor import FileEditorTool
from openhands.tools.terminal import TerminalTool

server, key, llm_port, workdir = sys.argv[1:5]
failures = 0


def check(name, ok, detail=""):
    global failures
    print(f"{'PASS' if ok else 'FAIL'} sdk->sandcrab {name}" + (f": {detail}" if not ok else ""))
    failures += 0 if ok else 1


ws = RemoteWorkspace(host=server, api_key=key, working_dir=workdir)

r = ws.execute_command("echo hi; echo oops >&2")
check("execute_command stdout/stderr", r.exit_code == 0 and r.stdout.strip() == "hi" and "oops" in r.stderr, repr(r))
r = ws.execute_command("exit 3")
check("execute_command exit code", r.exit_code == 3, repr(r))
r = ws.execute_command("pwd", cwd=workdir)
check("execute_command cwd", r.stdout.strip() == workdir, repr(r))
r = ws.execute_command("sleep 5", timeout=1)
check("execute_command timeout", r.timeout_occurred and r.exit_code == -1, repr(r))

local = tempfile.mkdtemp()
src = os.path.join(local, "up.bin")
payload = bytes(range(256)) * 1000
with open(src, "wb") as f:
    f.write(payload)
up = ws.file_upload(src, f"{workdir}/uploaded/up.bin")
check("file_upload", up.success, repr(up))
dst = os.path.join(local, "down.bin")
down = ws.file_download(f"{workdir}/uploaded/up.bin", dst)
check("file_download round trip", down.success and open(dst, "rb").read() == payload, repr(down))

changes = ws.git_changes(workdir)
paths = {str(c.path): getattr(c.status, "value", str(c.status)) for c in changes}
check("git_changes", paths.get("tracked.txt") == "UPDATED" and paths.get("new.txt") == "ADDED", repr(changes))
diff = ws.git_diff(f"{workdir}/tracked.txt")
# OpenHands' server (and ours, matching it) returns the contents without the final newline.
check("git_diff", diff.original == "before" and diff.modified == "after", repr(diff))

llm = LLM(model="openai/scripted", base_url=f"http://127.0.0.1:{llm_port}/v1",
          api_key=SecretStr("x"), usage_id="agent", num_retries=0)
agent = Agent(llm=llm, tools=[Tool(name=TerminalTool.name), Tool(name=FileEditorTool.name)])
conv = Conversation(agent=agent, workspace=ws, visualizer=None)
check("RemoteConversation created", type(conv).__name__ == "RemoteConversation", type(conv).__name__)
conv.send_message("run the script")
conv.run()
status = str(conv.state.execution_status)
check("RemoteConversation finished", status.lower().endswith("finished"), status)
events = list(conv.state.events)
actions = [e for e in events if type(e).__name__ == "ActionEvent"]
terminal = [a for a in actions if a.tool_name == "terminal"]
check("RemoteConversation events", len(terminal) == 3 and actions[-1].tool_name == "finish",
      f"{len(events)} events, tools {[a.tool_name for a in actions]}")
observations = [e for e in events if type(e).__name__ == "ObservationEvent"]
check("observations parsed as TerminalObservation",
      any("step-2" in str(o.observation) for o in observations), repr(observations[-1:]))
conv.close()

# Condensation: the SDK's own LLMSummarizingCondenser in the agent JSON, a forced condensation
# over REST, and sandcrab's CondensationRequest / Condensation events parsed by the SDK.
from openhands.sdk.context.condenser import LLMSummarizingCondenser

condenser = LLMSummarizingCondenser(llm=llm.model_copy(update={"usage_id": "condenser"}),
                                    max_size=80, keep_first=4)
agent = Agent(llm=llm, tools=[Tool(name=TerminalTool.name)], condenser=condenser)
conv = Conversation(agent=agent, workspace=ws, visualizer=None)
conv.send_message("run the script")
conv.run()
if hasattr(conv, "condense"):
    conv.condense()
else:
    import httpx
    httpx.post(f"{server}/api/conversations/{conv.id}/condense",
               headers={"X-Session-API-Key": key}).raise_for_status()
import time
deadline = time.time() + 10
while time.time() < deadline:
    kinds = [type(e).__name__ for e in conv.state.events]
    if "Condensation" in kinds:
        break
    time.sleep(0.1)
events = list(conv.state.events)
kinds = [type(e).__name__ for e in events]
check("CondensationRequest parsed", "CondensationRequest" in kinds, repr(kinds))
condensations = [e for e in events if type(e).__name__ == "Condensation"]
check("Condensation parsed with its fields",
      len(condensations) == 1 and condensations[0].summary and condensations[0].summary_offset == 4
      and len(condensations[0].forgotten_event_ids) > 0 and condensations[0].llm_response_id,
      repr(condensations))
conv.close()

# Skills and hooks: the SDK's own AgentContext (a repo skill, a keyword skill) and HookConfig
# (a PreToolUse hook that refuses `echo step-1`, a Stop hook that blocks once) sent to
# sandcrab, which runs the hooks in its working dir; the SDK must parse the new events.
from openhands.sdk.context import AgentContext
from openhands.sdk.hooks import HookConfig
from openhands.sdk.skills import KeywordTrigger, Skill

stop_flag = os.path.join(workdir, ".compat-stop-once")
hooks = HookConfig.model_validate({"hooks": {
    "PreToolUse": [{"matcher": "terminal", "hooks": [{"command": "if grep -q step-1; then echo 'no step-1' >&2; exit 2; fi"}]}],
    "Stop": [{"hooks": [{"command": f"test -f {stop_flag} || {{ touch {stop_flag}; echo 'run the tests' >&2; exit 2; }}"}]}],
}})
context = AgentContext(skills=[
    Skill(name="agents", content="COMPAT-REPO-RULE: be brief.", source="AGENTS.md"),
    Skill(name="scripting", content="COMPAT-KEYWORD: scripts live in bin/.",
          trigger=KeywordTrigger(keywords=["script"])),
])
agent = Agent(llm=llm, tools=[Tool(name=TerminalTool.name)], agent_context=context)
conv = Conversation(agent=agent, workspace=ws, visualizer=None, hook_config=hooks)
conv.send_message("run the script")
conv.run()
events = list(conv.state.events)
kinds = [type(e).__name__ for e in events]
status = str(conv.state.execution_status)
check("hooked conversation finished", status.lower().endswith("finished"), status)
system = [e for e in events if type(e).__name__ == "SystemPromptEvent"]
check("SystemPromptEvent.dynamic_context holds REPO_CONTEXT",
      bool(system) and system[0].dynamic_context is not None
      and "COMPAT-REPO-RULE" in system[0].dynamic_context.text
      and "<REPO_CONTEXT>" in system[0].dynamic_context.text, repr(system[:1]))
user = [e for e in events if type(e).__name__ == "MessageEvent" and e.source == "user"]
check("keyword skill recalled into the user message",
      bool(user) and user[0].activated_skills == ["scripting"]
      and any("COMPAT-KEYWORD" in c.text for c in user[0].extended_content), repr(user[:1]))
hook_events = [e for e in events if type(e).__name__ == "HookExecutionEvent"]
check("HookExecutionEvent parsed",
      [(h.hook_event_type, h.blocked) for h in hook_events]
      == [("PreToolUse", False), ("PreToolUse", True), ("PreToolUse", False), ("Stop", True), ("Stop", False)]
      and all(h.source == "hook" for h in hook_events),
      repr([(h.hook_event_type, h.blocked, h.exit_code) for h in hook_events]))
rejects = [e for e in events if type(e).__name__ == "UserRejectObservation"]
check("UserRejectObservation parsed",
      len(rejects) == 1 and rejects[0].rejection_source == "hook"
      and rejects[0].rejection_reason == "no step-1", repr(rejects))
feedback = [e for e in events if type(e).__name__ == "MessageEvent" and e.source == "environment"]
check("Stop hook feedback",
      any("[Stop hook feedback] run the tests" in c.text for e in feedback for c in e.llm_message.content),
      repr(feedback))
conv.close()

# Confirmation: the SDK sets an analyser and AlwaysConfirm over REST, its run stops at
# waiting_for_confirmation, it parses sandcrab's SecurityAnalysisEvent, rejects over
# respond_to_confirmation and parses the UserRejectObservation, then runs on under NeverConfirm.
from openhands.sdk.security import AlwaysConfirm, LLMSecurityAnalyzer, NeverConfirm

agent = Agent(llm=llm, tools=[Tool(name=TerminalTool.name)])
conv = Conversation(agent=agent, workspace=ws, visualizer=None)
conv.set_security_analyzer(LLMSecurityAnalyzer())
conv.set_confirmation_policy(AlwaysConfirm())
# The SDK caches the state from the socket's full_state snapshots: wait for the one the change
# sends (GET /api/conversations/{id} has it at once).
deadline = time.time() + 5
while time.time() < deadline and type(conv.state.confirmation_policy).__name__ != "AlwaysConfirm":
    time.sleep(0.05)
check("confirmation policy read back", type(conv.state.confirmation_policy).__name__ == "AlwaysConfirm"
      and type(conv.state.security_analyzer).__name__ == "LLMSecurityAnalyzer",
      repr(conv.state.confirmation_policy))
conv.send_message("run the script")
conv.run()
status = str(conv.state.execution_status)
check("run stops waiting for confirmation", status.lower().endswith("waiting_for_confirmation"), status)
events = list(conv.state.events)
analyses = [e for e in events if type(e).__name__ == "SecurityAnalysisEvent"]
pending = [e for e in events if type(e).__name__ == "ActionEvent"]
check("SecurityAnalysisEvent parsed", len(analyses) == 1 and analyses[0].analyzer == "LLMSecurityAnalyzer"
      and analyses[0].policy == "AlwaysConfirm" and pending and pending[-1].id in analyses[0].risks,
      repr(analyses))
conv.reject_pending_actions("not in this test")
deadline = time.time() + 10
rejects = []
while time.time() < deadline and not rejects:
    rejects = [e for e in conv.state.events if type(e).__name__ == "UserRejectObservation"]
    time.sleep(0.1)
check("UserRejectObservation parsed", len(rejects) == 1 and rejects[0].rejection_reason == "not in this test"
      and rejects[0].action_id == pending[-1].id, repr(rejects))
conv.set_confirmation_policy(NeverConfirm())
conv.run()
status = str(conv.state.execution_status)
check("run goes on after the rejection", status.lower().endswith("finished"), status)
conv.close()

# MCP: an Agent with OpenHands' mcp_config; sandcrab serve starts the server where it runs, a
# scripted model (here, on the shared loopback) calls its `echo` tool, and the SDK parses the
# MCPToolAction / MCPToolObservation events.
mcp_python, mcp_server = (sys.argv[5:7] + ["", ""])[:2]
if not mcp_python:
    print("SKIPPED sdk->sandcrab MCP: no Python with the mcp package on the host (SANDCRAB_MCP_PYTHON)")
else:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class McpModel(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
            offered = [t["function"]["name"] for t in body.get("tools", [])]
            name, args = ("echo", {"text": "from the sdk"}) if done == 0 else ("finish", {"message": "done"})
            if name not in offered:
                name, args = "finish", {"message": f"echo not offered: {offered}"}
            out = json.dumps({"id": f"c{done}", "object": "chat.completion", "model": "m",
                              "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                                  "role": "assistant", "content": None, "tool_calls": [{
                                      "id": f"call_{done}", "type": "function",
                                      "function": {"name": name, "arguments": json.dumps(args)}}]}}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    model = ThreadingHTTPServer(("127.0.0.1", 0), McpModel)
    threading.Thread(target=model.serve_forever, daemon=True).start()
    mcp_llm = LLM(model="openai/scripted", base_url=f"http://127.0.0.1:{model.server_address[1]}/v1",
                  api_key=SecretStr("x"), usage_id="agent", num_retries=0)
    agent = Agent(llm=mcp_llm, tools=[Tool(name=TerminalTool.name)],
                  mcp_config={"notes": {"command": mcp_python, "args": [mcp_server, "notes"]}})
    conv = Conversation(agent=agent, workspace=ws, visualizer=None)
    conv.send_message("use the notes server")
    conv.run()
    events = list(conv.state.events)
    actions = [e for e in events if type(e).__name__ == "ActionEvent" and e.tool_name == "echo"]
    check("MCPToolAction parsed", len(actions) == 1 and type(actions[0].action).__name__ == "MCPToolAction"
          and actions[0].action.data == {"text": "from the sdk"}, repr(actions))
    obs = [e for e in events if type(e).__name__ == "ObservationEvent" and e.tool_name == "echo"]
    check("MCPToolObservation parsed", len(obs) == 1 and type(obs[0].observation).__name__ == "MCPToolObservation"
          and "notes says: from the sdk" in str(obs[0].observation), repr(obs))
    conv.close()
    model.shutdown()

print(f"{'PASS' if failures == 0 else 'FAIL'} sdk->sandcrab: {failures} failure(s)")
sys.exit(1 if failures else 0)
