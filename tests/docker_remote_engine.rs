//! `sandcrab run --workspace docker` against an engine on another host, as GitLab's
//! docker:dind is: `DOCKER_HOST=tcp://…` names a second `dockerd` in its own network namespace
//! (tests/common/dind.rs), whose container networks this runner cannot route to. The run must
//! still work — through the bridge container, with the model reached through the runner's relay
//! — and leave nothing behind on that engine.

mod common;

use std::sync::Arc;

use common::dind::{self, Dind};
use common::docker::{busybox_image, engine_or_skip, static_binary};
use common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-remote-engine-4242";

fn scripted_two_steps() -> FakeLlm {
    FakeLlm::start(Arc::new(|_, body: &Value| match tool_results(body) {
        0 => Reply::ok(openai_call(
            0,
            "terminal",
            &json!({"command": "echo bridged > proof.txt && cat proof.txt && hostname"})
                .to_string(),
        )),
        _ => Reply::ok(openai_call(1, "finish", "{\"message\": \"done\"}")),
    }))
}

#[test]
fn a_run_on_a_remote_engine_goes_through_the_bridge_and_leaves_nothing() {
    if !engine_or_skip() {
        return;
    }
    if let Err(why) = dind::available() {
        common::skip(&format!("cannot start a second engine here: {why}"));
        return;
    }
    let (image, binary) = (busybox_image(), static_binary());
    let engine = Dind::start();
    engine.load_image(image);
    let llm = scripted_two_steps();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args(["run", "--workspace", "docker", "--image", image])
        .args([
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
        ])
        .args(["--prompt", "leave a proof"])
        .arg("--sandbox-binary")
        .arg(binary)
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path())
        .env("DOCKER_HOST", &engine.host)
        .env("LLM_API_KEY", KEY));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(result_json(out.path())["status"], "finished");

    let requests = llm.recorded();
    assert_eq!(requests.len(), 2, "both model calls went through the relay");
    let auth = requests[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(
        auth,
        Some(format!("Bearer {KEY}")),
        "the relay adds the key"
    );

    let events = trajectory(out.path());
    let text = kinds(&events, "ObservationEvent")[0]["observation"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("bridged"), "the command ran: {text}");

    assert_eq!(
        engine.docker(&["ps", "-aq"]).unwrap(),
        "",
        "no sandbox or bridge container left on the remote engine"
    );
    let networks = engine
        .docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            "label=sandcrab.managed=true",
        ])
        .unwrap();
    assert_eq!(networks, "", "no network left on the remote engine");
}

#[test]
fn the_remote_engines_containers_are_not_routable_from_the_runner() {
    // The premise of the test above: without the bridge, the runner could not reach the
    // sandbox. A listener in a container of the second engine does not answer from here (a
    // bare connect proves nothing: some networks accept every outbound connection).
    if !engine_or_skip() || dind::available().is_err() {
        return;
    }
    let image = busybox_image();
    let engine = Dind::start();
    engine.load_image(image);
    let listener = "while true; do echo hello-from-the-sandbox | nc -l -p 8000; done";
    let id = engine
        .docker(&["run", "-d", image, "sh", "-c", listener])
        .unwrap();
    let ip = engine
        .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &id])
        .unwrap();
    let from_inside = engine.docker(&["exec", &id, "sh", "-c", "nc 127.0.0.1 8000 </dev/null"]);
    let from_runner = greeting(&format!("{ip}:8000"));
    engine.docker(&["rm", "-f", &id]).unwrap();
    assert_eq!(
        from_inside.unwrap(),
        "hello-from-the-sandbox",
        "the listener works"
    );
    assert_eq!(from_runner, "", "{ip}:8000 answers the runner");
}

/// What a TCP listener at `addr` says first (empty if nothing within two seconds).
fn greeting(addr: &str) -> String {
    use std::io::Read;
    use std::time::Duration;
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        panic!("not an address: {addr}");
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.trim().to_string()
}
