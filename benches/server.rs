//! The agent-server side by side with OpenHands' (when `../shared/peer/setup.sh` installed it):
//! start to `/alive`, idle RSS, and the `execute_bash_command` round trip of `echo hi`.
//!
//!     cargo bench --bench server
//!
//! Each figure is the median of several runs; both servers run on this machine, one at a time,
//! measured by the same client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTS: usize = 7;
const EXECS: usize = 300;

struct Figures {
    start_ms: f64,
    rss_mb: f64,
    exec_ms: f64,
}

fn main() {
    let ours = measure("sandcrab", |port| {
        let work = std::env::temp_dir().join(format!("sandcrab-bench-server-{port}"));
        std::fs::create_dir_all(&work).unwrap();
        Command::new(env!("CARGO_BIN_EXE_sandcrab"))
            .args(["serve", "--port", &port.to_string(), "--working-dir"])
            .arg(&work)
            .arg("--conversations-dir")
            .arg(work.join("conversations"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    });
    let peer_root = PathBuf::from(
        std::env::var("PEER_ROOT").unwrap_or_else(|_| "/var/tmp/openhands-peer".into()),
    );
    let run_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peer/run.sh");
    let peer = (peer_root.join("opt/oh/bin/python").exists() && run_sh.exists()).then(|| {
        measure("openhands", |port| {
            Command::new(&run_sh)
                .args([
                    "/opt/oh/bin/python",
                    "-m",
                    "openhands.agent_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
    });
    report(&ours, peer.as_ref());
}

fn report(ours: &Figures, peer: Option<&Figures>) {
    let row = |name: &str, o: f64, p: Option<f64>, unit: &str| match p {
        Some(p) => println!(
            "{name:<34} sandcrab {o:>9.3} {unit:<3} openhands {p:>9.3} {unit:<3} ratio {:.0}x",
            p / o
        ),
        None => println!("{name:<38} sandcrab {o:>9.3} {unit}"),
    };
    row(
        "start to /alive (median)",
        ours.start_ms,
        peer.map(|p| p.start_ms),
        "ms",
    );
    row(
        "idle RSS (median)",
        ours.rss_mb,
        peer.map(|p| p.rss_mb),
        "MB",
    );
    row(
        "execute_bash_command echo hi (median)",
        ours.exec_ms,
        peer.map(|p| p.exec_ms),
        "ms",
    );
    if peer.is_none() {
        println!("openhands peer not installed (../shared/peer/setup.sh); no side-by-side figures");
    }
}

fn measure(name: &str, spawn: impl Fn(u16) -> Child) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let (mut starts, mut rss) = (Vec::new(), Vec::new());
    let mut exec = Vec::new();
    for i in 0..STARTS {
        let port = free_port();
        let started = Instant::now();
        let mut child = spawn(port);
        let base = format!("http://127.0.0.1:{port}");
        runtime.block_on(wait_alive(&client, &base));
        starts.push(started.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_mb(child.id()));
        if i == 0 {
            exec = runtime.block_on(exec_round_trips(&client, &base));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("{name}: starts {starts:.1?} ms");
    Figures {
        start_ms: median(&mut starts),
        rss_mb: median(&mut rss),
        exec_ms: median(&mut exec),
    }
}

async fn wait_alive(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{base}/alive")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{base} never became alive");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn exec_round_trips(client: &reqwest::Client, base: &str) -> Vec<f64> {
    let url = format!("{base}/api/bash/execute_bash_command");
    let body = serde_json::json!({"command": "echo hi"});
    let mut times = Vec::with_capacity(EXECS);
    for i in 0..EXECS + 20 {
        let started = Instant::now();
        let out: serde_json::Value = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(out["stdout"].as_str().map(str::trim), Some("hi"), "{out}");
        if i >= 20 {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times
}

/// Resident memory of `pid` and its children (a peer started through run.sh is a process tree).
fn rss_mb(pid: u32) -> f64 {
    let mut total_kb = 0.0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        total_kb += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        stack.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    total_kb / 1024.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
