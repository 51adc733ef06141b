//! The static build (x86_64-unknown-linux-musl) runs as the agent-server in a bare
//! `FROM scratch` image: no libc, no shell, no Python, nothing but the binary.

mod common;

use std::process::Command;

use common::docker::static_binary;
use std::time::{Duration, Instant};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes the container and image even when the test fails.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let _ = Command::new("docker").args(args).output();
        }
    }
}

#[test]
fn static_server_runs_in_a_scratch_image() {
    if !docker_available() {
        common::skip("no Docker engine");
        return;
    }
    let binary = static_binary();
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, context.path().join("sandcrab")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY sandcrab /sandcrab\nENTRYPOINT [\"/sandcrab\"]\n",
    )
    .unwrap();
    let tag = format!("sandcrab-test-scratch:{}", std::process::id());
    let mut cleanup = Cleanup(vec![vec!["rmi".into(), "-f".into(), tag.clone()]]);
    docker(&["build", "-q", "-t", &tag, context.path().to_str().unwrap()]);
    let id = docker(&[
        "run",
        "-d",
        "--label",
        "sandcrab.test=static",
        "-p",
        "127.0.0.1::8000",
        "-e",
        "SESSION_API_KEY=scratch-key",
        &tag,
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--working-dir",
        "/",
        "--conversations-dir",
        "/conversations",
    ]);
    cleanup
        .0
        .insert(0, vec!["rm".into(), "-f".into(), id.clone()]);
    let port = docker(&["port", &id, "8000/tcp"]);
    let addr = port.lines().next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = loop {
        if let Some(body) = http_get(&addr, "/alive", None) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no /alive from the scratch container: {}",
            docker(&["logs", &id])
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        alive.contains("200 OK") && alive.contains("\"ok\""),
        "{alive}"
    );
    let unauthorized = http_get(&addr, "/api/conversations/search", None).unwrap();
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let listed = http_get(&addr, "/api/conversations/search", Some("scratch-key")).unwrap();
    assert!(
        listed.starts_with("HTTP/1.1 200") && listed.contains("\"items\":[]"),
        "{listed}"
    );
}

/// A minimal HTTP/1.1 GET; `None` when nothing answers yet.
fn http_get(addr: &str, path: &str, key: Option<&str>) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = key.map_or(String::new(), |k| format!("X-Session-API-Key: {k}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}
