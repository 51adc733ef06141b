//! Per-step cost of `sandcrab run`: the 50-step scripted run of
//! `../shared/bench/scripted_llm.py` (50 `terminal` calls, then `finish`), timed by the run
//! itself from `result.json`, median of several runs. Two figures:
//! - wall per step: `timings.run_ms / actions`, measured exactly as `openhands_steps.py`
//!   measures OpenHands (`conv.run()` time / actions), so the two compare like with like;
//! - own overhead per step: `(run_ms - llm_ms) / actions`, the time not spent waiting for the
//!   model. (The Python server answers keep-alive requests with two writes, so every client
//!   that reuses connections waits ~40 ms of delayed ACK per call; that wait is the server's.)
//!
//! When the OpenHands peer is installed (`../shared/peer/setup.sh`), the same script drives
//! `../shared/bench/openhands_steps.py` in it and the ratio is printed.
//!
//!     cargo bench --bench steps               # ours, and the peer if installed
//!     SANDCRAB_BENCH_RUNS=11 cargo bench --bench steps

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const STEPS: usize = 50;

fn main() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let script = shared.join("bench/scripted_llm.py");
    if !script.exists() {
        eprintln!(
            "bench skipped: {} not found (run from a clone with ../shared beside it)",
            script.display()
        );
        return;
    }
    let runs: usize = std::env::var("SANDCRAB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let port = free_port();
    let mut server = ScriptedLlm::start(&script, port);
    let (ours, overhead): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| sandcrab_per_step(port)).unzip();
    let ours_ms = median(&ours);
    println!(
        "sandcrab  per-step {ours_ms:.3} ms wall (median of {runs}; min {:.3}, max {:.3}) over {STEPS} terminal steps + finish",
        min(&ours),
        max(&ours)
    );
    println!(
        "sandcrab  own overhead per step {:.3} ms (median; min {:.3}, max {:.3}): wall minus waiting for the model",
        median(&overhead),
        min(&overhead),
        max(&overhead)
    );
    match openhands_per_step(&shared, port, runs.min(3)) {
        Some(peer) => {
            let peer_ms = median(&peer);
            println!(
                "openhands per-step {peer_ms:.1} ms (median of {}; same script, same machine)",
                peer.len()
            );
            println!(
                "ratio     openhands / sandcrab wall per step = {:.1}x",
                peer_ms / ours_ms
            );
        }
        None => println!(
            "openhands peer not installed here (../shared/peer/setup.sh); no side-by-side figure"
        ),
    }
    server.stop();
}

/// One sandcrab run; returns (wall ms per action, own overhead ms per action).
fn sandcrab_per_step(port: u16) -> (f64, f64) {
    let repo = tempdir("repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    let out = tempdir("out");
    let status = Command::new(env!("CARGO_BIN_EXE_sandcrab"))
        .args([
            "run",
            "--model",
            "openai/scripted",
            "--prompt",
            "run the script",
        ])
        .args(["--llm-base-url", &format!("http://127.0.0.1:{port}/v1")])
        // As openhands_steps.py's agent (no condenser); scripted_llm.py picks the step from
        // the tool results in the request, which a condensed history would replay.
        .arg("--no-condenser")
        .arg("--repo-dir")
        .arg(&repo)
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sandcrab runs");
    assert!(status.success(), "the scripted run failed");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).unwrap()).unwrap();
    let actions = result["actions"].as_u64().unwrap();
    assert_eq!(actions as usize, STEPS + 1);
    let run_ms = result["timings"]["run_ms"].as_f64().unwrap();
    let llm_ms = result["timings"]["llm_ms"].as_f64().unwrap();
    let _ = std::fs::remove_dir_all(&repo);
    let _ = std::fs::remove_dir_all(&out);
    (run_ms / actions as f64, (run_ms - llm_ms) / actions as f64)
}

/// Runs `openhands_steps.py` in the peer chroot; per-step ms of each run, or `None`.
fn openhands_per_step(shared: &Path, port: u16, runs: usize) -> Option<Vec<f64>> {
    let root = PathBuf::from(
        std::env::var("PEER_ROOT").unwrap_or_else(|_| "/var/tmp/openhands-peer".into()),
    );
    if !root.join("opt/oh/bin/python").exists() {
        return None;
    }
    std::fs::create_dir_all(root.join("bench")).ok()?;
    std::fs::copy(
        shared.join("bench/openhands_steps.py"),
        root.join("bench/openhands_steps.py"),
    )
    .ok()?;
    let mut out = Vec::new();
    for _ in 0..runs {
        let o = Command::new(shared.join("peer/run.sh"))
            .args([
                "/opt/oh/bin/python",
                "/bench/openhands_steps.py",
                &port.to_string(),
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&o.stdout);
        eprintln!("peer: {}", text.trim());
        let per_step = text
            .split("per-step ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        out.push(per_step);
    }
    Some(out)
}

struct ScriptedLlm(Child);

impl ScriptedLlm {
    fn start(script: &Path, port: u16) -> Self {
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--steps", &STEPS.to_string()])
            .spawn()
            .expect("python3 runs scripted_llm.py");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "scripted_llm.py did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        ScriptedLlm(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sandcrab-bench-{tag}-{}",
        std::process::id() as u64 * 1000 + fastrand::u64(..1000)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=b", "-c", "user.email=b@b.invalid"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}
