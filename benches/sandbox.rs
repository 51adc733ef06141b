//! The Docker sandbox and the artifacts: time from nothing to a ready sandbox (create, copy
//! the static binary in, start, `/alive`) from a local 2 MB busybox image, and the sizes of
//! the release binaries (glibc and musl) and of the action image when it exists.
//!
//!     cargo bench --bench sandbox
//!
//! OpenHands has no figure for the ready time here: its sandbox needs its prebuilt
//! agent-server image from a registry, which this machine cannot pull. Sizes are printed
//! for what is built (bench/run.sh builds both binaries first).

#[path = "../tests/common/docker.rs"]
#[allow(dead_code)]
mod docker;

/// What `docker.rs` calls when there is no engine (tests/common's `skip` in the tests).
#[allow(dead_code)]
fn skip(why: &str) {
    println!("SKIPPED: {why}");
}

use std::path::Path;
use std::time::Instant;

use sandcrab::workspace::{DockerWorkspace, Workspace};

const STARTS: usize = 7;
/// The action image's tag (engineer B's Dockerfile); measured when it exists locally.
const ACTION_IMAGE: &str = "sandcrab:latest";

fn main() {
    sizes();
    if docker::docker(&["info"]).is_err() {
        println!("docker sandbox ready time   (no Docker engine)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let image = docker::busybox_image();
    let mut times = Vec::new();
    for _ in 0..STARTS {
        let started = Instant::now();
        let ws = runtime
            .block_on(DockerWorkspace::start(docker::options(image), None))
            .unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        runtime.block_on(ws.close()).unwrap();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "docker sandbox ready (median of {STARTS}) sandcrab {:>9.1} ms  (min {:.1}, max {:.1})",
        times[STARTS / 2],
        times[0],
        times[STARTS - 1]
    );
}

fn sizes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), Into::into);
    for (name, path) in [
        ("release binary, glibc", target.join("release/sandcrab")),
        (
            "release binary, musl (static)",
            target.join("x86_64-unknown-linux-musl/release/sandcrab"),
        ),
    ] {
        match std::fs::metadata(&path) {
            Ok(meta) => println!("{name:<30} sandcrab {:>9.1} MB", mb(meta.len())),
            Err(_) => println!("{name:<30} (not built: {})", path.display()),
        }
    }
    match docker::docker(&["image", "inspect", "--format", "{{.Size}}", ACTION_IMAGE]) {
        Ok(size) => println!(
            "{:<30} sandcrab {:>9.1} MB",
            format!("action image {ACTION_IMAGE}"),
            mb(size.trim().parse().unwrap_or(0))
        ),
        Err(_) => println!("action image {ACTION_IMAGE:<17} (not built here yet)"),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
