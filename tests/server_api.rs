//! `sandcrab serve` over HTTP: the real binary on a loopback port, driven as the OpenHands
//! Python SDK drives an agent-server — server details, the session key, bash commands and
//! their events, file upload and download, git changes and diffs.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::server::{json_of, Server};
use reqwest::Method;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Polls a command's output as the OpenHands client does (`order__gt` the last order seen)
/// until the event with an exit code; checks every event comes once, in order.
async fn poll_output(server: &Server, command_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut last, mut seen, mut events) = (-1i64, HashSet::new(), Vec::<Value>::new());
    loop {
        let mut path = format!(
            "/api/bash/bash_events/search?kind__eq=BashOutput&sort_order=TIMESTAMP&limit=100\
             &command_id__eq={command_id}"
        );
        if last >= 0 {
            path.push_str(&format!("&order__gt={last}"));
        }
        let page = server.get_json(&path).await;
        for event in page["items"].as_array().unwrap() {
            assert!(seen.insert(event["id"].to_string()), "duplicate {event}");
            let order = event["order"].as_i64().unwrap();
            assert_eq!(order, last + 1, "out of order: {event}");
            last = order;
            events.push(event.clone());
        }
        if events.last().is_some_and(|e| !e["exit_code"].is_null()) {
            return events;
        }
        assert!(Instant::now() < deadline, "no final event: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The concatenated `field` (stdout or stderr) of output events.
fn joined(events: &[Value], field: &str) -> String {
    events.iter().filter_map(|e| e[field].as_str()).collect()
}

async fn start(server: &Server, body: Value) -> Value {
    server
        .post_json("/api/bash/start_bash_command", &body)
        .await
}

async fn execute(server: &Server, body: Value) -> Value {
    server
        .post_json("/api/bash/execute_bash_command", &body)
        .await
}

fn is_hex_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
fn is_timestamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 27 && s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == "."
    })
}

// ---------------------------------------------------------------------------------------------
// Server details and the session key

#[tokio::test]
async fn server_details_answer_without_a_key() {
    let server = Server::start();
    for path in ["/alive", "/health"] {
        let response = server.bare(Method::GET, path).send().await.unwrap();
        assert_eq!(json_of(response, 200).await, json!({"status": "ok"}));
    }
    let response = server.bare(Method::GET, "/ready").send().await.unwrap();
    assert_eq!(json_of(response, 200).await, json!({"status": "ready"}));
    let response = server
        .bare(Method::GET, "/server_info")
        .send()
        .await
        .unwrap();
    let info = json_of(response, 200).await;
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["title"], "sandcrab agent-server");
    assert!(info["uptime"].as_f64().unwrap() >= 0.0);
    let tools = info["usable_tools"].as_array().unwrap();
    assert!(tools.contains(&json!("terminal")) && tools.contains(&json!("file_editor")));
}

#[tokio::test]
async fn idle_time_counts_from_the_last_api_request() {
    let server = Server::start();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let info = server.get_json("/server_info").await;
    assert!(info["idle_time"].as_f64().unwrap() >= 1.0, "{info}");
    assert!(info["uptime"].as_f64().unwrap() >= 1.0, "{info}");
    server.get_json("/api/bash/bash_events/search").await;
    let info = server.get_json("/server_info").await;
    assert_eq!(info["idle_time"], json!(0.0), "{info}");
}

#[tokio::test]
async fn every_api_route_needs_the_session_key() {
    let server = Server::start();
    let id = "0123456789abcdef0123456789abcdef";
    let routes = [
        (Method::POST, "/api/bash/start_bash_command".to_string()),
        (Method::POST, "/api/bash/execute_bash_command".to_string()),
        (Method::GET, "/api/bash/bash_events/search".to_string()),
        (Method::GET, format!("/api/bash/bash_events/{id}")),
        (Method::GET, "/api/bash/bash_events/".to_string()),
        (Method::DELETE, "/api/bash/bash_events".to_string()),
        (Method::POST, format!("/api/bash/bash_commands/{id}/stop")),
        (Method::POST, "/api/file/upload?path=/tmp/x".to_string()),
        (
            Method::GET,
            "/api/file/download?path=/etc/hostname".to_string(),
        ),
        (Method::GET, "/api/git/changes?path=/tmp".to_string()),
        (Method::GET, "/api/git/diff?path=/tmp/x".to_string()),
    ];
    for (method, path) in routes {
        for key in [None, Some("wrong"), Some("test-session-ke")] {
            let mut request = server.bare(method.clone(), &path);
            if let Some(key) = key {
                request = request.header("X-Session-API-Key", key);
            }
            let body = json_of(request.send().await.unwrap(), 401).await;
            assert_eq!(body, json!({"detail": "Unauthorized"}), "{method} {path}");
        }
        let response = server.request(method.clone(), &path).send().await.unwrap();
        assert_ne!(response.status().as_u16(), 401, "{method} {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bash

#[tokio::test]
async fn started_command_streams_its_output_in_order() {
    let server = Server::start();
    let script = "for i in 1 2 3; do echo $i; sleep 0.2; done; echo done >&2";
    let command = start(&server, json!({"command": script})).await;
    assert_eq!(command["kind"], "BashCommand");
    assert_eq!(command["command"], script);
    assert_eq!(command["cwd"], Value::Null);
    assert_eq!(command["timeout"], 300);
    assert!(
        is_hex_id(&command["id"]) && is_timestamp(&command["timestamp"]),
        "{command}"
    );
    let id = command["id"].as_str().unwrap();
    let events = poll_output(&server, id).await;
    assert!(events.len() >= 3, "expected several chunks: {events:?}");
    let (last, running) = events.split_last().unwrap();
    assert!(
        running.iter().all(|e| e["exit_code"].is_null()),
        "{events:?}"
    );
    assert_eq!(last["exit_code"], 0);
    assert_eq!(joined(&events, "stdout"), "1\n2\n3\n");
    assert_eq!(joined(&events, "stderr"), "done\n");
    for event in &events {
        assert_eq!(event["kind"], "BashOutput");
        assert_eq!(event["command_id"], id);
        assert!(is_hex_id(&event["id"]) && is_timestamp(&event["timestamp"]));
    }
    let fetched = server
        .get_json(&format!("/api/bash/bash_events/{id}"))
        .await;
    assert_eq!(fetched, command);
    let event_id = last["id"].as_str().unwrap();
    let fetched = server
        .get_json(&format!("/api/bash/bash_events/{event_id}"))
        .await;
    assert_eq!(&fetched, last);
    let missing = server
        .get("/api/bash/bash_events/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(missing, 404).await, json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn silent_command_still_gets_its_final_event() {
    let server = Server::start();
    let command = start(&server, json!({"command": "true"})).await;
    let events = poll_output(&server, command["id"].as_str().unwrap()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["order"], 0);
    assert_eq!(events[0]["exit_code"], 0);
    assert_eq!(events[0]["stdout"], Value::Null);
    assert_eq!(events[0]["stderr"], Value::Null);
}

#[tokio::test]
async fn executed_command_reports_exit_code_output_and_cwd() {
    let server = Server::start();
    let out = execute(
        &server,
        json!({"command": "echo out; echo err >&2; exit 3"}),
    )
    .await;
    assert_eq!(out["kind"], "BashOutput");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stdout"], "out\n");
    assert_eq!(out["stderr"], "err\n");
    let out = execute(&server, json!({"command": "kill -9 $$"})).await;
    assert_eq!(out["exit_code"], -9);

    std::fs::create_dir(server.working_dir.join("sub")).unwrap();
    let here = server.working_dir.display().to_string();
    let out = execute(&server, json!({"command": "pwd -P"})).await;
    assert_eq!(out["stdout"], format!("{here}\n"));
    let out = execute(&server, json!({"command": "pwd -P", "cwd": "sub"})).await;
    assert_eq!(out["stdout"], format!("{here}/sub\n"));
    let out = execute(&server, json!({"command": "pwd -P", "cwd": "/"})).await;
    assert_eq!(out["stdout"], "/\n");
    let out = execute(&server, json!({"command": "pwd", "cwd": "/no/such/dir"})).await;
    assert_eq!(out["exit_code"], -1);
    let stderr = out["stderr"].as_str().unwrap();
    assert!(stderr.contains("No such file or directory"), "{stderr}");

    let out = execute(&server, json!({"command": "echo $SESSION_API_KEY"})).await;
    assert_eq!(
        out["stdout"], "\n",
        "the session key must not leak to commands"
    );
}

#[tokio::test]
async fn big_output_arrives_whole_in_one_megabyte_chunks() {
    let server = Server::start();
    let script = "head -c 2500000 /dev/zero | tr '\\0' a";
    let out = execute(&server, json!({"command": script})).await;
    assert_eq!(out["exit_code"], 0);
    let stdout = out["stdout"].as_str().unwrap();
    assert_eq!(stdout.len(), 2_500_000);
    assert!(stdout.bytes().all(|b| b == b'a'));
    let command_id = out["command_id"].as_str().unwrap();
    let events = poll_output(&server, command_id).await;
    assert!(events.len() >= 3, "{}", events.len());
    assert!(events
        .iter()
        .all(|e| e["stdout"].as_str().map_or(0, str::len) <= 1 << 20));
    assert_eq!(out["order"], events.last().unwrap()["order"]);
}

#[tokio::test]
async fn command_times_out_with_minus_one() {
    let server = Server::start();
    let started = Instant::now();
    let body = json!({"command": "echo before; sleep 5; echo after", "timeout": 1});
    let out = execute(&server, body).await;
    assert_eq!(out["exit_code"], -1);
    assert_eq!(out["stdout"], "before\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stop_ends_a_running_command() {
    let server = Server::start();
    let command = start(&server, json!({"command": "echo start; sleep 30"})).await;
    let id = command["id"].as_str().unwrap();
    let path = format!("/api/bash/bash_events/search?command_id__eq={id}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.get_json(&path).await["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let stop = format!("/api/bash/bash_commands/{id}/stop");
    let stopped = server.post(&stop).send().await.unwrap();
    assert_eq!(json_of(stopped, 200).await, json!({"success": true}));
    let events = poll_output(&server, id).await;
    assert_eq!(events.last().unwrap()["exit_code"], -15);
    assert_eq!(joined(&events, "stdout"), "start\n");
    assert!(started.elapsed() < Duration::from_secs(3));

    let unknown = "/api/bash/bash_commands/0123456789abcdef0123456789abcdef/stop";
    let response = server.post(unknown).send().await.unwrap();
    assert_eq!(json_of(response, 404).await, json!({"detail": "Not Found"}));
    let response = server
        .post("/api/bash/bash_commands/xyz/stop")
        .send()
        .await
        .unwrap();
    let body = json_of(response, 422).await;
    assert_eq!(body["detail"][0]["type"], "uuid_parsing");
}

#[tokio::test]
async fn search_filters_sorts_pages_and_clears() {
    let server = Server::start();
    for word in ["one", "two", "three"] {
        execute(&server, json!({"command": format!("echo {word}")})).await;
    }
    let page = server
        .get_json("/api/bash/bash_events/search?kind__eq=BashCommand")
        .await;
    let commands: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["echo one", "echo two", "echo three"]);
    let page = server
        .get_json("/api/bash/bash_events/search?kind__eq=BashOutput&sort_order=TIMESTAMP_DESC")
        .await;
    let outputs: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stdout"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["three\n", "two\n", "one\n"]);

    let (mut ids, mut page_id) = (Vec::new(), None::<String>);
    loop {
        let mut path = "/api/bash/bash_events/search?limit=4".to_string();
        if let Some(p) = &page_id {
            path.push_str(&format!("&page_id={p}"));
        }
        let page = server.get_json(&path).await;
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["next_page_id"].as_str() {
            Some(next) => page_id = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 6);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 6);

    let response = server
        .get("/api/bash/bash_events/search?limit=101")
        .send()
        .await;
    let body = json_of(response.unwrap(), 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "limit"]));
    let response = server
        .request(Method::DELETE, "/api/bash/bash_events")
        .send()
        .await;
    assert_eq!(
        json_of(response.unwrap(), 200).await,
        json!({"cleared_count": 6})
    );
    let page = server.get_json("/api/bash/bash_events/search").await;
    assert_eq!(page, json!({"items": [], "next_page_id": null}));
}

#[tokio::test]
async fn bad_requests_get_fastapi_validation_errors() {
    let server = Server::start();
    let response = server
        .post("/api/bash/execute_bash_command")
        .json(&json!({"cmd": "echo"}))
        .send()
        .await
        .unwrap();
    let body = json_of(response, 422).await;
    assert_eq!(
        body,
        json!({"detail": [{"type": "missing", "loc": ["body", "command"],
            "msg": "Field required", "input": {"cmd": "echo"}}]})
    );
    let response = server
        .post("/api/bash/start_bash_command")
        .json(&json!({"command": "echo", "timeout": 1.5}))
        .send()
        .await
        .unwrap();
    let body = json_of(response, 422).await;
    assert_eq!(body["detail"][0]["type"], "int_from_float");
}

// ---------------------------------------------------------------------------------------------
// Files

/// Uploads `bytes` to `path`; the response.
async fn upload(server: &Server, path: &str, bytes: Vec<u8>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("f.bin");
    let form = reqwest::multipart::Form::new().part("file", part);
    let url = format!("/api/file/upload?path={path}");
    server.post(&url).multipart(form).send().await.unwrap()
}

async fn download(server: &Server, path: &str) -> reqwest::Response {
    let url = format!("/api/file/download?path={path}");
    server.get(&url).send().await.unwrap()
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn files_round_trip_text_binary_and_large() {
    let server = Server::start();
    let root = server.working_dir.display().to_string();
    let files = [
        (format!("{root}/new/dir/hello.txt"), b"hello\n".to_vec()),
        (format!("{root}/all-bytes.bin"), (0..=255u8).collect()),
        (format!("{root}/big.bin"), noise(5 * 1024 * 1024)),
    ];
    for (path, bytes) in &files {
        let result = json_of(upload(&server, path, bytes.clone()).await, 200).await;
        assert_eq!(result, json!({"success": true, "file_size": bytes.len()}));
        assert_eq!(&std::fs::read(path).unwrap(), bytes);
        let response = download(&server, path).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/octet-stream");
        assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
        assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..]);
    }
    // Uploading again replaces the file.
    let path = &files[0].0;
    json_of(upload(&server, path, b"bye".to_vec()).await, 200).await;
    assert_eq!(std::fs::read(path).unwrap(), b"bye");
}

#[tokio::test]
async fn files_refuse_relative_missing_and_directory_paths() {
    let server = Server::start();
    let root = server.working_dir.display().to_string();
    let detail = |d: &str| json!({"detail": d});
    let relative = json_of(upload(&server, "rel/x.txt", b"x".to_vec()).await, 400).await;
    assert_eq!(relative, detail("Path must be absolute"));
    let into_dir = json_of(upload(&server, &root, b"x".to_vec()).await, 400).await;
    assert_eq!(into_dir, detail("Path is a directory"));
    let relative = json_of(download(&server, "rel/x.txt").await, 400).await;
    assert_eq!(relative, detail("Path must be absolute"));
    let missing = json_of(download(&server, &format!("{root}/nope")).await, 404).await;
    assert_eq!(missing, detail("File not found"));
    let dir = json_of(download(&server, &root).await, 400).await;
    assert_eq!(dir, detail("Path is not a file"));

    let form = reqwest::multipart::Form::new().text("other", "x");
    let url = format!("/api/file/upload?path={root}/y");
    let response = server.post(&url).multipart(form).send().await.unwrap();
    let body = json_of(response, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "file"]));
}

// ---------------------------------------------------------------------------------------------
// Git

#[tokio::test]
async fn git_changes_and_diffs_of_a_repository() {
    let repo = common::git_repo(&[
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("keep.txt", "keep\n"),
        ("sub/c.txt", "c\n"),
    ]);
    let dir = repo.path();
    std::fs::write(dir.join("a.txt"), "a\nmore\n").unwrap();
    std::fs::remove_file(dir.join("b.txt")).unwrap();
    std::fs::write(dir.join("new.txt"), "new\n").unwrap();
    common::git(dir, &["mv", "sub/c.txt", "sub/moved.txt"]);
    let server = Server::start_in(dir);
    let root = server.working_dir.display().to_string();

    let expected = json!([
        {"status": "UPDATED", "path": "a.txt"},
        {"status": "DELETED", "path": "b.txt"},
        {"status": "ADDED", "path": "new.txt"},
        {"status": "DELETED", "path": "sub/c.txt"},
        {"status": "ADDED", "path": "sub/moved.txt"},
    ]);
    for query in [
        format!("path={root}"),
        "path=.".into(),
        format!("path={root}&ref=HEAD"),
    ] {
        let changes = server.get_json(&format!("/api/git/changes?{query}")).await;
        assert_eq!(changes, expected, "{query}");
    }
    let sub = server.get_json("/api/git/changes?path=sub").await;
    assert_eq!(
        sub,
        json!([{"status": "DELETED", "path": "c.txt"}, {"status": "ADDED", "path": "moved.txt"}])
    );

    let diff = |file: &str| format!("/api/git/diff?path={file}");
    let modified = server.get_json(&diff(&format!("{root}/a.txt"))).await;
    assert_eq!(modified, json!({"modified": "a\nmore", "original": "a"}));
    let relative = server.get_json(&diff("a.txt")).await;
    assert_eq!(relative, modified);
    let deleted = server.get_json(&diff("b.txt")).await;
    assert_eq!(deleted, json!({"modified": "", "original": "b"}));
    let added = server.get_json(&diff("new.txt")).await;
    assert_eq!(added, json!({"modified": "new", "original": ""}));
    let unchanged = server.get_json(&diff("keep.txt")).await;
    assert_eq!(unchanged, json!({"modified": "keep", "original": "keep"}));

    let response = server.get(&diff("nothing.txt")).send().await.unwrap();
    let body = json_of(response, 400).await;
    assert_eq!(
        body["detail"],
        format!("File does not exist: {root}/nothing.txt")
    );
    let response = server
        .get("/api/git/changes?path=.&ref=nosuchref")
        .send()
        .await
        .unwrap();
    let body = json_of(response, 400).await;
    assert!(
        body["detail"].as_str().unwrap().contains("nosuchref"),
        "{body}"
    );
}

#[tokio::test]
async fn git_outside_a_repository_finds_nothing() {
    let server = Server::start();
    std::fs::write(server.working_dir.join("loose.txt"), "x").unwrap();
    let changes = server.get_json("/api/git/changes?path=.").await;
    assert_eq!(changes, json!([]));
    let changes = server.get_json("/api/git/changes?path=/no/such/dir").await;
    assert_eq!(changes, json!([]));
    let diff = server.get_json("/api/git/diff?path=loose.txt").await;
    assert_eq!(diff, json!({"modified": null, "original": null}));
}
