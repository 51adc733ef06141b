//! Security boundaries: the session key on every route of the OpenHands agent-server spec that
//! our server implements (read from the spec, not listed by hand); path traversal (`..`,
//! absolute paths, symlinks pointing out) through `/api/file` and `file_editor` in a Docker
//! sandbox, where the container is the boundary; and archives from the engine, which must
//! never write outside the folder they are unpacked into.
//!
//! The local workspace and a bare `sandcrab serve` are no boundary by design: like OpenHands'
//! agent-server, `/api/file` takes any absolute path the server's user may touch, and
//! `file_editor` on the local workspace edits any path the user may (README, Security). The
//! boundary is the sandbox around the server.

mod common;

use std::path::Path;

use common::docker::*;
use common::server::{Server, KEY};
use reqwest::Method;
use sandcrab::workspace::docker::archive::unpack_at;
use sandcrab::workspace::{DockerWorkspace, Workspace};
use serde_json::Value;

const SPEC: &str = "../shared/peer/openhands-agent-server-1.58.2.openapi.json";

/// (method, path) of every `/api/` operation of the OpenHands spec, with `{params}` filled.
fn spec_routes() -> Option<Vec<(Method, String)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC);
    let Ok(text) = std::fs::read_to_string(&path) else {
        common::skip(&format!(
            "{} not found (../shared beside the clone)",
            path.display()
        ));
        return None;
    };
    let spec: Value = serde_json::from_str(&text).unwrap();
    let mut routes = Vec::new();
    for (route, operations) in spec["paths"].as_object().unwrap() {
        if !route.starts_with("/api/") {
            continue;
        }
        let filled = fill_params(route);
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((method, filled.clone()));
        }
    }
    Some(routes)
}

/// `{conversation_id}` and friends become a well-formed id; query-less paths get `path=`.
fn fill_params(route: &str) -> String {
    let mut out = String::new();
    let mut rest = route;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str("0123456789abcdef0123456789abcdef");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether our server has the route. With the key, a route it lacks gets the fallback's
/// answer (the body of a request to a path no spec has) or a 405; one it has answers
/// anything else (a 404 naming an unknown conversation counts).
async fn implemented(server: &Server, method: &Method, path: &str, fallback: &str) -> bool {
    let response = server.request(method.clone(), path).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    !(status == 405 || (status == 404 && body == fallback))
}

async fn fallback_body(server: &Server) -> String {
    let response = server
        .get("/api/no-such-route-anywhere")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    response.text().await.unwrap()
}

#[tokio::test]
async fn every_spec_route_we_implement_refuses_requests_without_the_key() {
    let Some(routes) = spec_routes() else {
        return;
    };
    let server = Server::start();
    let fallback = fallback_body(&server).await;
    let mut checked = Vec::new();
    for (method, path) in &routes {
        if !implemented(&server, method, path, &fallback).await {
            continue;
        }
        for key in [None, Some("wrong"), Some(&KEY[..KEY.len() - 1])] {
            let mut request = server.bare(method.clone(), path);
            if let Some(key) = key {
                request = request.header("X-Session-API-Key", key);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                401,
                "{method} {path} with {key:?}"
            );
        }
        checked.push(format!("{method} {path}"));
    }
    // The README's route list: bash (7), file (2), git (2), conversations (at least 10).
    assert!(
        checked.len() >= 20,
        "only {} routes found: {checked:?}",
        checked.len()
    );
    eprintln!(
        "{} of {} spec routes implemented, all need the key",
        checked.len(),
        routes.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Archives from the engine

/// An archive `top/`, `top/link -> outside`, then `top/link/evil.txt`: a crafted (or raced)
/// answer of the archive API that would write through the link it just extracted.
fn archive_through_a_link(outside: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "top", std::io::empty()).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    tar.append_link(&mut link, "top/link", outside).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o644);
    file.set_size(4);
    tar.append_data(&mut file, "top/link/evil.txt", &b"evil"[..])
        .unwrap();
    tar.into_inner().unwrap()
}

#[test]
fn unpacking_never_writes_through_a_link_from_the_archive() {
    let outside = tempfile::tempdir().unwrap();
    let dest_root = tempfile::tempdir().unwrap();
    let dest = dest_root.path().join("out");
    let result = unpack_at(&archive_through_a_link(outside.path()), &dest);
    assert!(
        !outside.path().join("evil.txt").exists(),
        "the archive wrote outside its folder ({result:?})"
    );
    assert!(
        result.is_err(),
        "the bad entry is an error, not silently skipped"
    );
}

// ---------------------------------------------------------------------------------------------
// Traversal in a Docker sandbox

/// A unique name under the host's /tmp that must never appear there.
fn host_marker(what: &str) -> String {
    format!("sandcrab-escape-{what}-{}", std::process::id())
}

async fn upload(ws: &DockerWorkspace, path: &str, content: &str) -> u16 {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.as_bytes().to_vec()),
    );
    reqwest::Client::new()
        .post(format!("{}/api/file/upload", ws.remote().host()))
        .query(&[("path", path)])
        .header("X-Session-API-Key", ws.session_key())
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sh(ws: &DockerWorkspace, command: &str) -> String {
    let out = ws
        .execute(sandcrab::workspace::ExecRequest::new(command))
        .await
        .unwrap();
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn file_upload_traversal_stays_inside_the_docker_sandbox() {
    if !engine_or_skip() {
        return;
    }
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let ws = DockerWorkspace::start(options(busybox_image()), Some(repo.path()))
        .await
        .unwrap();
    sh(
        &ws,
        "ln -s /tmp /workspace/tmp-link; ln -s / /workspace/root-link",
    )
    .await;
    let dotdot = host_marker("dotdot");
    let via_link = host_marker("link");
    let via_root = host_marker("root");
    let attempts = [
        format!("/workspace/../../../../tmp/{dotdot}"),
        format!("/workspace/tmp-link/{via_link}"),
        format!("/workspace/root-link/tmp/{via_root}"),
    ];
    for path in &attempts {
        assert_eq!(upload(&ws, path, "escaped?").await, 200, "{path}");
    }
    for name in [&dotdot, &via_link, &via_root] {
        assert!(
            !Path::new("/tmp").join(name).exists(),
            "{name} reached the host's /tmp"
        );
    }
    let inside = sh(&ws, "ls /tmp").await;
    for name in [&dotdot, &via_link, &via_root] {
        assert!(
            inside.contains(name.as_str()),
            "landed in the sandbox's /tmp: {inside}"
        );
    }
    // Downloads through the same tricks read the sandbox's files, not the host's.
    let host_only = host_marker("host-only");
    std::fs::write(Path::new("/tmp").join(&host_only), "host").unwrap();
    let status = reqwest::Client::new()
        .get(format!("{}/api/file/download", ws.remote().host()))
        .query(&[("path", format!("/workspace/root-link/tmp/{host_only}"))])
        .header("X-Session-API-Key", ws.session_key())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    std::fs::remove_file(Path::new("/tmp").join(&host_only)).unwrap();
    assert_eq!(status, 404, "a host file is not visible in the sandbox");
    ws.close().await.unwrap();
}

#[test]
fn file_editor_traversal_stays_inside_the_docker_sandbox() {
    if !engine_or_skip() {
        return;
    }
    let dotdot = host_marker("fe-dotdot");
    let via_link = host_marker("fe-link");
    let script = format!(
        "- tool: file_editor\n  args: {{command: create, path: /workspace/../../tmp/{dotdot}, file_text: x}}\n\
         - tool: terminal\n  args: {{command: ln -s /tmp /workspace/out-link}}\n\
         - tool: file_editor\n  args: {{command: create, path: /workspace/out-link/{via_link}, file_text: y}}\n\
         - tool: terminal\n  args: {{command: ls /tmp}}\n\
         - tool: finish\n  args: {{message: done}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let script_path = dir.path().join("escape.yaml");
    std::fs::write(&script_path, script).unwrap();
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let label = format!("sandcrab.test.security_paths={}", std::process::id());
    let r = common::run(
        common::sandcrab()
            .args(["run", "--workspace", "docker", "--image", git_image()])
            .args(["--label", &label, "--sandbox-binary"])
            .arg(static_binary())
            .arg("--model")
            .arg(format!("scripted:{}", script_path.display()))
            .args(["--prompt", "escape", "--repo-dir"])
            .arg(repo.path())
            .arg("--out")
            .arg(out.path()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for name in [&dotdot, &via_link] {
        assert!(
            !Path::new("/tmp").join(name).exists(),
            "{name} reached the host"
        );
    }
    let events = common::trajectory(out.path());
    let listing = common::kinds(&events, "ObservationEvent")
        .iter()
        .filter(|o| o["tool_name"] == "terminal")
        .map(|o| o["observation"]["content"][0]["text"].to_string())
        .collect::<String>();
    assert!(
        listing.contains(&dotdot) && listing.contains(&via_link),
        "both files were written, inside the sandbox: {listing}"
    );
    assert!(
        repo.path().read_dir().unwrap().count() <= 2,
        "the host repo is untouched"
    );
    let left = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
    assert!(left.is_empty(), "the sandbox is removed");
}
