//! MCP servers end to end: `sandcrab run` and `sandcrab serve` start a real stdio MCP server
//! (the `mcp` package from PyPI, tests/fixtures/mcp/notes_server.py) or reach the same server
//! over streamable HTTP on a loopback port, offer its tools to the model (OpenHands' naming
//! rule), run its calls and record OpenHands' MCP events.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{
    git_repo, kinds, openai_call, result_json, run, tool_results, trajectory, FakeLlm, Reply,
};
use serde_json::{json, Value};

/// A model that makes `calls` in order (one per turn), then finishes.
fn calls(calls: Vec<(&'static str, Value)>) -> common::Script {
    Arc::new(move |_, body: &Value| {
        let done = tool_results(body);
        match calls.get(done) {
            Some((name, args)) => Reply::ok(openai_call(done, name, &args.to_string())),
            None => Reply::ok(openai_call(done, "finish", r#"{"message": "done"}"#)),
        }
    })
}

fn run_with_mcp(llm: &FakeLlm, repo: &Path, out: &Path, config: &Value) -> common::Run {
    run(common::run_against(llm, repo, out)
        .args(["--workspace", "local", "--llm-api-key", "sk-mcp-test-0000"])
        .args(["--prompt", "use the notes server"])
        .args(["--mcp-config", &config.to_string()])
        .env("LLM_API_KEY", "sk-mcp-test-0000")
        .env("MY_NOTES_TOKEN", "tok-forwarded-by-name-42"))
}

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn tool_messages(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .collect()
}

#[test]
fn a_run_offers_the_mcp_tools_uses_them_and_records_mcp_events() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    let llm = FakeLlm::start(calls(vec![
        ("echo", json!({"text": "hello", "summary": "greet"})),
        ("read_env", json!({"var": "LLM_API_KEY"})),
        ("read_env", json!({"var": "NOTES_TOKEN"})),
    ]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    // Claude's form, accepted at the CLI boundary; the secret goes by name only.
    let config = json!({"mcpServers": {"notes": {
        "type": "stdio", "command": python, "args": [common::mcp::notes_server(), "notes"],
        "env": {"NOTES_TOKEN": "${MY_NOTES_TOKEN}"}, "alwaysAllow": ["echo"]}}});
    let r = run(common::run_against(&llm, repo.path(), out.path())
        .args(["--workspace", "local", "--llm-api-key", "sk-mcp-test-0000"])
        .args([
            "--prompt",
            "use the notes server",
            "--forward-env",
            "MY_NOTES_TOKEN",
        ])
        .args(["--mcp-config", &config.to_string()])
        .env("LLM_API_KEY", "sk-mcp-test-0000")
        .env("MY_NOTES_TOKEN", "tok-forwarded-by-name-42"));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let reqs = llm.recorded();
    // One server: the model sees the server's own tool names, with OpenHands' `summary`.
    let first = &reqs[0].body;
    let names = tool_names(first);
    for name in ["terminal", "echo", "write_note", "read_env", "list_notes"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    let echo = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "echo")
        .unwrap();
    let params = &echo["function"]["parameters"];
    assert_eq!(params["properties"]["text"]["type"], "string");
    assert_eq!(params["properties"]["summary"]["type"], "string");
    // The server answered, and the model read it back.
    let last = &reqs.last().unwrap().body;
    let results = tool_messages(last);
    assert!(results[0].contains("notes says: hello"), "{results:?}");
    // The runner's key never reached the server; the named secret did (and is redacted).
    assert!(results[1].contains("<unset>"), "{results:?}");
    assert!(!results[2].contains("<unset>"), "{results:?}");
    assert!(
        !results[2].contains("tok-forwarded-by-name-42"),
        "{results:?}"
    );
    // The trajectory has OpenHands' MCP shapes.
    let events = trajectory(out.path());
    let system = kinds(&events, "SystemPromptEvent")[0];
    let defs: Vec<&Value> = system["tools"].as_array().unwrap().iter().collect();
    let echo_def = defs
        .iter()
        .find(|d| d["kind"] == "MCPToolDefinition" && d["title"] == "echo")
        .expect("echo's MCPToolDefinition");
    // OpenHands requires the MCP tool as the server described it.
    assert_eq!(echo_def["mcp_tool"]["name"], "echo");
    assert_eq!(
        echo_def["mcp_tool"]["inputSchema"]["properties"]["text"]["type"],
        "string"
    );
    let action = kinds(&events, "ActionEvent")
        .into_iter()
        .find(|a| a["tool_name"] == "echo")
        .expect("an echo action");
    assert_eq!(action["action"]["kind"], "MCPToolAction");
    assert_eq!(action["action"]["data"], json!({"text": "hello"}));
    let obs = echo_observation(&events);
    assert_eq!(obs["observation"]["tool_name"], "echo");
    assert_eq!(obs["action_id"], action["id"]);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("tok-forwarded-by-name-42"));
    assert_eq!(result_json(out.path())["status"], "finished");
}

#[test]
fn several_servers_prefix_their_tools_with_the_server_name() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    let llm = FakeLlm::start(calls(vec![("beta_echo", json!({"text": "two"}))]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let server =
        |name: &str| json!({"command": python, "args": [common::mcp::notes_server(), name]});
    let config = json!({"alpha": server("alpha"), "beta": server("beta")});
    let r = run_with_mcp(&llm, repo.path(), out.path(), &config);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let reqs = llm.recorded();
    let names = tool_names(&reqs[0].body);
    assert!(names.contains(&"alpha_echo".to_string()), "{names:?}");
    assert!(names.contains(&"beta_echo".to_string()), "{names:?}");
    assert!(!names.contains(&"echo".to_string()), "{names:?}");
    let results = tool_messages(&reqs.last().unwrap().body);
    assert!(results[0].contains("beta says: two"), "{results:?}");
}

#[test]
fn a_required_server_that_cannot_start_fails_the_run_in_one_line() {
    let llm = FakeLlm::start(calls(vec![]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    // A server that never answers the handshake, with a 1 s start-up deadline.
    let config =
        json!({"stuck": {"command": "sleep", "args": ["30"], "timeout": 1, "required": true}});
    let started = std::time::Instant::now();
    let r = run_with_mcp(&llm, repo.path(), out.path(), &config);
    assert_ne!(r.code, 0, "stderr: {}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("MCP server 'stuck'"))
        .unwrap_or_else(|| panic!("no line about the server: {}", r.stderr));
    assert!(line.contains("did not start within 1 s"), "{line}");
    assert!(llm.recorded().is_empty(), "the model was called");
}

#[test]
fn a_server_that_is_not_required_is_skipped_with_a_warning() {
    let llm = FakeLlm::start(calls(vec![]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let config = json!({"gone": {"command": "/nonexistent/mcp-server"}});
    let r = run_with_mcp(&llm, repo.path(), out.path(), &config);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: MCP server 'gone': cannot start"),
        "{}",
        r.stderr
    );
    let names = tool_names(&llm.recorded()[0].body);
    assert!(names.contains(&"terminal".to_string()));
}

#[test]
fn a_bad_mcp_config_is_one_clear_line() {
    let llm = FakeLlm::start(calls(vec![]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_with_mcp(
        &llm,
        repo.path(),
        out.path(),
        &json!({"x": {"args": ["y"]}}),
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("--mcp-config: MCP server 'x' has no command"),
        "{}",
        r.stderr
    );
}

/// A run with `config`, forwarding `MY_MCP_TOKEN` (the only way its value reaches a server).
fn run_forwarding_token(llm: &FakeLlm, repo: &Path, out: &Path, config: &Value) -> common::Run {
    run(common::run_against(llm, repo, out)
        .args(["--workspace", "local", "--llm-api-key", "sk-mcp-test-0000"])
        .args(["--prompt", "use the web server"])
        .args(["--forward-env", "MY_MCP_TOKEN"])
        .args(["--mcp-config", &config.to_string()])
        .env("LLM_API_KEY", "sk-mcp-test-0000")
        .env("MY_MCP_TOKEN", "bearer-by-name-5150"))
}

#[test]
fn a_streamable_http_server_gets_its_bearer_token_by_name_and_serves_the_run() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    // The server answers 401 to any request without this token.
    let web = common::mcp::HttpServer::start(&python, "web", Some("bearer-by-name-5150"));
    let llm = FakeLlm::start(calls(vec![
        ("echo", json!({"text": "over http", "summary": "greet"})),
        ("write_note", json!({"name": "h.txt", "body": "via http"})),
    ]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    // Claude's form; a query token in the url must never show.
    let config = json!({"mcpServers": {"web": {
        "type": "http", "url": format!("{}?sig=url-secret-31", web.url()),
        "headers": {"Authorization": "Bearer ${MY_MCP_TOKEN}"}}}});
    let r = run_forwarding_token(&llm, repo.path(), out.path(), &config);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let reqs = llm.recorded();
    let names = tool_names(&reqs[0].body);
    for name in ["terminal", "echo", "write_note", "list_notes"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    let results = tool_messages(&reqs.last().unwrap().body);
    assert!(results[0].contains("web says: over http"), "{results:?}");
    assert!(results[1].contains("wrote"), "{results:?}");
    let note = std::fs::read_to_string(web.dir.path().join("h.txt")).unwrap();
    assert_eq!(note, "via http");
    let events = trajectory(out.path());
    echo_observation(&events);
    let all = format!("{}{}", serde_json::to_string(&events).unwrap(), r.stderr);
    assert!(!all.contains("bearer-by-name-5150"));
    assert!(!all.contains("url-secret-31"));
    assert_eq!(result_json(out.path())["status"], "finished");
}

#[test]
fn a_required_http_server_refusing_the_token_fails_the_run_in_one_line() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    let web = common::mcp::HttpServer::start(&python, "web", Some("the-right-token"));
    let llm = FakeLlm::start(calls(vec![]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let config = json!({"web": {"url": web.url(), "required": true,
        "headers": {"Authorization": "Bearer ${MY_MCP_TOKEN}"}}});
    let r = run_forwarding_token(&llm, repo.path(), out.path(), &config);
    assert_ne!(r.code, 0, "stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(lines[0].contains("MCP server 'web'"), "{}", lines[0]);
    assert!(lines[0].contains("401"), "{}", lines[0]);
    assert!(
        lines[0].contains("(the server is required)"),
        "{}",
        lines[0]
    );
    assert!(!r.stderr.contains("bearer-by-name-5150"), "{}", r.stderr);
    assert!(llm.recorded().is_empty(), "the model was called");
}

#[test]
fn an_unreachable_required_http_server_fails_the_run_fast_in_one_line() {
    let llm = FakeLlm::start(calls(vec![]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let url = format!(
        "http://127.0.0.1:{}/mcp?sig=url-secret-31",
        common::mcp::free_port()
    );
    let config = json!({"gone": {"url": url, "transport": "http", "required": true,
        "headers": {"Authorization": "Bearer ${MY_MCP_TOKEN}"}}});
    let started = std::time::Instant::now();
    let r = run_forwarding_token(&llm, repo.path(), out.path(), &config);
    assert_ne!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains("MCP server 'gone' at http://127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("(the server is required)"),
        "{}",
        lines[0]
    );
    assert!(!r.stderr.contains("url-secret-31"), "{}", r.stderr);
    assert!(!r.stderr.contains("bearer-by-name-5150"), "{}", r.stderr);
    assert!(llm.recorded().is_empty(), "the model was called");
}

#[test]
fn a_stdio_and_an_http_server_prefix_their_tools_with_their_names() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    let web = common::mcp::HttpServer::start(&python, "web", None);
    let llm = FakeLlm::start(calls(vec![
        ("web_echo", json!({"text": "one"})),
        ("local_echo", json!({"text": "two"})),
    ]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let config = json!({
        "local": {"command": python, "args": [common::mcp::notes_server(), "local"]},
        "web": {"url": web.url(), "transport": "streamable-http"},
    });
    let r = run_forwarding_token(&llm, repo.path(), out.path(), &config);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let reqs = llm.recorded();
    let names = tool_names(&reqs[0].body);
    for name in [
        "local_echo",
        "web_echo",
        "web_list_notes",
        "local_list_notes",
    ] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    assert!(!names.contains(&"echo".to_string()), "{names:?}");
    let results = tool_messages(&reqs.last().unwrap().body);
    assert!(results[0].contains("web says: one"), "{results:?}");
    assert!(results[1].contains("local says: two"), "{results:?}");
}

/// The create body of a server conversation whose agent has `mcp_config` (OpenHands' flat map).
fn create_body(llm: &FakeLlm, mcp_config: Value, secrets: Value) -> Value {
    json!({
        "agent": {"kind": "Agent",
                  "llm": {"model": "openai/scripted", "base_url": llm.openai_url(), "api_key": "sk-abc-123456"},
                  "tools": [{"name": "TerminalTool"}],
                  "mcp_config": mcp_config},
        "workspace": {"kind": "LocalWorkspace", "working_dir": "."},
        "secrets": secrets,
        "initial_message": {"role": "user", "content": [{"type": "text", "text": "go"}], "run": true}
    })
}

async fn wait_finished(server: &common::server::Server, id: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info = server.get_json(&format!("/api/conversations/{id}")).await;
        if info["execution_status"] == "finished" {
            let page = server
                .get_json(&format!("/api/conversations/{id}/events/search?limit=100"))
                .await;
            return page["items"].as_array().unwrap().clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status {}",
            info["execution_status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_server_starts_mcp_config_servers_where_it_runs() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    let llm = FakeLlm::start(calls(vec![
        ("write_note", json!({"name": "n.txt", "body": "from mcp"})),
        ("read_env", json!({"var": "TOKEN"})),
    ]));
    let server = common::server::Server::start();
    let mcp = json!({"notes": {"command": python, "args": [common::mcp::notes_server()],
                                "env": {"TOKEN": "${NOTES_TOKEN}"}}});
    let body = create_body(&llm, mcp, json!({"NOTES_TOKEN": "value-by-name-77"}));
    let res = server
        .post("/api/conversations")
        .json(&body)
        .send()
        .await
        .unwrap();
    let info = common::server::json_of(res, 201).await;
    // Dumps mask env values, as OpenHands masks secrets.
    assert_eq!(
        info["agent"]["mcp_config"]["notes"]["env"]["TOKEN"],
        "**********"
    );
    let id = info["id"].as_str().unwrap().to_string();
    let events = wait_finished(&server, &id).await;
    // The server ran in the server's working directory: the note is there.
    let note = std::fs::read_to_string(server.working_dir.join("n.txt")).unwrap();
    assert_eq!(note, "from mcp");
    let obs: Vec<&Value> = kinds(&events, "ObservationEvent")
        .into_iter()
        .filter(|o| o["tool_name"] != "finish")
        .collect();
    assert!(obs
        .iter()
        .all(|o| o["observation"]["kind"] == "MCPToolObservation"));
    assert_eq!(obs.len(), 2);
    // The secret reached the server by name (and is hidden in the events).
    let reqs = llm.recorded();
    let results = tool_messages(&reqs.last().unwrap().body);
    assert!(!results[1].contains("<unset>"), "{results:?}");
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains("value-by-name-77"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_server_rejects_claude_style_mcp_config_like_openhands() {
    let llm = FakeLlm::start(calls(vec![]));
    let server = common::server::Server::start();
    let body = create_body(
        &llm,
        json!({"mcpServers": {"x": {"command": "true"}}}),
        json!({}),
    );
    let res = server
        .post("/api/conversations")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("agent.mcp_config"), "{text}");
}

/// A model that, after each user message, makes that message's calls (`per_message[i]` for
/// the i-th user message), then finishes.
fn calls_per_message(per_message: Vec<Vec<(&'static str, Value)>>) -> common::Script {
    Arc::new(move |_, body: &Value| {
        let messages = body["messages"].as_array().unwrap();
        let users = messages.iter().filter(|m| m["role"] == "user").count();
        let last_user = messages.iter().rposition(|m| m["role"] == "user").unwrap();
        let done = messages[last_user..]
            .iter()
            .filter(|m| m["role"] == "tool")
            .count();
        let n = common::tool_results(body);
        match per_message.get(users - 1).and_then(|calls| calls.get(done)) {
            Some((name, args)) => Reply::ok(openai_call(n, name, &args.to_string())),
            None => Reply::ok(openai_call(n, "finish", r#"{"message": "done"}"#)),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_loaded_back_after_a_restart_reconnects_its_mcp_servers() {
    let Some(python) = common::mcp::python() else {
        return;
    };
    let llm = FakeLlm::start(calls_per_message(vec![
        vec![("write_note", json!({"name": "before.txt", "body": "1"}))],
        vec![("write_note", json!({"name": "after.txt", "body": "2"}))],
    ]));
    let (conversations, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mcp = json!({"notes": {"command": python, "args": [common::mcp::notes_server()],
                                "env": {"TOKEN": "${NOTES_TOKEN}"}}});
    let body = create_body(&llm, mcp, json!({"NOTES_TOKEN": "value-by-name-77"}));
    let id = {
        let server = common::server::Server::start_with(work.path(), conversations.path());
        let res = server
            .post("/api/conversations")
            .json(&body)
            .send()
            .await
            .unwrap();
        let id = common::server::json_of(res, 201).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        wait_finished(&server, &id).await;
        id
        // Dropped: the server is killed.
    };
    assert!(work.path().join("before.txt").exists());
    let server = common::server::Server::start_with(work.path(), conversations.path());
    let message =
        json!({"role": "user", "content": [{"type": "text", "text": "again"}], "run": true});
    let res = server
        .post(&format!("/api/conversations/{id}/events"))
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let events = wait_finished(&server, &id).await;
    // The reloaded conversation's server was started again and ran the call.
    assert_eq!(
        std::fs::read_to_string(work.path().join("after.txt")).unwrap(),
        "2"
    );
    let obs: Vec<&Value> = kinds(&events, "ObservationEvent")
        .into_iter()
        .filter(|o| o["tool_name"] == "write_note")
        .collect();
    assert_eq!(obs.len(), 2);
    assert_eq!(obs[1]["observation"]["kind"], "MCPToolObservation");
    assert_eq!(obs[1]["observation"]["is_error"], false);
    // The model was offered the MCP tools after the restart, in the order it had before.
    let reqs = llm.recorded();
    assert_eq!(
        tool_names(&reqs[0].body),
        tool_names(&reqs.last().unwrap().body)
    );
}

/// The observation of the `echo` MCP tool in `events`: an `MCPToolObservation`, not an error.
fn echo_observation(events: &[Value]) -> &Value {
    let obs = kinds(events, "ObservationEvent")
        .into_iter()
        .find(|o| o["tool_name"] == "echo")
        .expect("an echo observation");
    assert_eq!(obs["observation"]["kind"], "MCPToolObservation");
    assert_eq!(obs["observation"]["is_error"], false);
    obs
}
