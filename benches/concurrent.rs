//! 20 conversations at once on one agent-server, side by side with OpenHands' (when
//! `../shared/peer/setup.sh` installed it): throughput, step latency (p50, p99) and the
//! server's peak RSS.
//!
//!     cargo bench --bench concurrent
//!
//! Both servers are driven by the same client (our `RemoteConversation`, which speaks to
//! both) and the same model: `../shared/bench/scripted_llm.py` (threaded), STEPS `terminal`
//! calls then `finish` per conversation. Step latency is the time between consecutive
//! `ActionEvent`s of one conversation, from the server's own timestamps (one model call plus
//! one command); throughput is every action of every conversation over the span from the
//! first action to the last, also from the server's timestamps, so the client's own waiting
//! does not count. Peak RSS is the server process's VmHWM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use sandcrab::conversation::remote::{RemoteAgentSpec, RemoteConversation, RemoteOptions};
use sandcrab::conversation::{Conversation, RunEnd};
use sandcrab::protocol::event::Event;
use sandcrab::workspace::RemoteWorkspace;

const CONVERSATIONS: usize = 20;
const STEPS: usize = 10;
const ROUNDS: usize = 3;
const KEY: &str = "bench-key";

struct Figures {
    actions_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_mb: f64,
}

fn main() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let script = shared.join("bench/scripted_llm.py");
    assert!(script.exists(), "{} is needed", script.display());
    let llm_port = free_port();
    let mut llm = Background::start(
        Command::new("python3").arg(&script).args([
            "--port",
            &llm_port.to_string(),
            "--steps",
            &STEPS.to_string(),
        ]),
        llm_port,
    );
    let base_url = format!("http://127.0.0.1:{llm_port}/v1");
    let ours = rounds("sandcrab", &base_url, |port, work| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandcrab"));
        cmd.args(["serve", "--port", &port.to_string(), "--working-dir"])
            .arg(work)
            .arg("--conversations-dir")
            .arg(work.join("conversations"))
            .env("SESSION_API_KEY", KEY);
        (cmd, work.display().to_string())
    });
    let peer_root = PathBuf::from(
        std::env::var("PEER_ROOT").unwrap_or_else(|_| "/var/tmp/openhands-peer".into()),
    );
    let run_sh = shared.join("peer/run.sh");
    let peer = (peer_root.join("opt/oh/bin/python").exists() && run_sh.exists()).then(|| {
        rounds("openhands", &base_url, |port, _| {
            std::fs::create_dir_all(peer_root.join("bench/concurrent")).unwrap();
            let mut cmd = Command::new(&run_sh);
            cmd.args(["/opt/oh/bin/python", "-m", "openhands.agent_server"])
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .env("SESSION_API_KEY", KEY);
            (cmd, "/bench/concurrent".to_string())
        })
    });
    llm.stop();
    report(&ours, peer.as_ref());
}

/// ROUNDS fresh servers, one batch of conversations each; the median of each figure.
fn rounds(name: &str, base_url: &str, server: impl Fn(u16, &Path) -> (Command, String)) -> Figures {
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        let port = free_port();
        let work = std::env::temp_dir().join(format!("sandcrab-bench-concurrent-{port}"));
        std::fs::create_dir_all(&work).unwrap();
        let (mut cmd, workdir) = server(port, &work);
        let mut process = Background::start(cmd.stdout(Stdio::null()).stderr(Stdio::null()), port);
        let figures = batch(port, &workdir, base_url, process.pid());
        eprintln!(
            "{name} round {round}: {:.1} actions/s, p50 {:.1} ms, p99 {:.1} ms, peak RSS {:.1} MB",
            figures.actions_per_s, figures.p50_ms, figures.p99_ms, figures.peak_rss_mb
        );
        all.push(figures);
        process.stop();
        let _ = std::fs::remove_dir_all(&work);
    }
    Figures {
        actions_per_s: median(all.iter().map(|f| f.actions_per_s).collect()),
        p50_ms: median(all.iter().map(|f| f.p50_ms).collect()),
        p99_ms: median(all.iter().map(|f| f.p99_ms).collect()),
        peak_rss_mb: median(all.iter().map(|f| f.peak_rss_mb).collect()),
    }
}

/// CONVERSATIONS conversations at once, each run to its end; the figures of the batch.
fn batch(port: u16, workdir: &str, base_url: &str, server_pid: u32) -> Figures {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let host = format!("http://127.0.0.1:{port}");
    let sampler = RssSampler::start(server_pid);
    let runs = runtime.block_on(async {
        let tasks: Vec<_> = (0..CONVERSATIONS)
            .map(|_| {
                let ws = RemoteWorkspace::new(&host, Some(KEY.to_string()), workdir).unwrap();
                let base_url = base_url.to_string();
                tokio::spawn(async move { one_conversation(ws, base_url).await })
            })
            .collect();
        let mut runs = Vec::new();
        for task in tasks {
            runs.push(task.await.unwrap());
        }
        runs
    });
    let peak_rss_mb = sampler.stop();
    let mut latencies = Vec::new();
    let (mut first, mut last, mut actions) = (None::<NaiveDateTime>, None::<NaiveDateTime>, 0);
    for times in &runs {
        latencies.extend(times.windows(2).map(|w| ms_between(w[0], w[1])));
        first = first.min(times.first().copied()).or(times.first().copied());
        last = last.max(times.last().copied());
        actions += times.len();
    }
    let span_s = ms_between(first.unwrap(), last.unwrap()) / 1000.0;
    latencies.sort_by(f64::total_cmp);
    Figures {
        actions_per_s: actions as f64 / span_s,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        peak_rss_mb,
    }
}

/// Creates, prompts and runs one conversation; the timestamps of its actions.
async fn one_conversation(ws: RemoteWorkspace, base_url: String) -> Vec<NaiveDateTime> {
    let mut spec = RemoteAgentSpec::new("openai/scripted");
    spec.base_url = Some(base_url);
    spec.api_key = Some("x".into());
    let options = RemoteOptions {
        max_iterations: (STEPS + 5) as u32,
        stuck_detection: false,
        ..RemoteOptions::default()
    };
    // OpenHands caps the conversations it runs at once and answers 429 beyond the cap: wait
    // for a slot, as a client of it must.
    let mut conv = loop {
        match RemoteConversation::create(&ws, spec.clone(), options.clone()).await {
            Ok(conv) => break conv,
            Err(e) if e.to_string().contains("429") => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Err(e) => panic!("create: {e:#}"),
        }
    };
    conv.send_message("run the script").await.unwrap();
    let end = conv.run().await.unwrap();
    assert_eq!(end, RunEnd::Finished, "a conversation did not finish");
    let times = action_times(conv.events());
    assert_eq!(times.len(), STEPS + 1, "every action recorded");
    conv.close().await.unwrap();
    times
}

fn action_times(events: &[Event]) -> Vec<NaiveDateTime> {
    events
        .iter()
        .filter(|e| e.kind() == "ActionEvent")
        .map(|e| parse_time(&e.timestamp))
        .collect()
}

fn parse_time(text: &str) -> NaiveDateTime {
    let plain = text.trim_end_matches('Z');
    let plain = plain.split('+').next().unwrap();
    NaiveDateTime::parse_from_str(plain, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("timestamp {text:?}: {e}"))
}

fn ms_between(a: NaiveDateTime, b: NaiveDateTime) -> f64 {
    (b - a).num_microseconds().unwrap() as f64 / 1000.0
}

fn report(ours: &Figures, peer: Option<&Figures>) {
    println!(
        "{CONVERSATIONS} concurrent conversations x {STEPS} steps + finish, median of {ROUNDS}"
    );
    // `higher`: a bigger figure is better (the ratio is ours over theirs).
    let row = |name: &str, o: f64, p: Option<f64>, unit: &str, higher: bool| match p {
        Some(p) => println!(
            "{name:<26} sandcrab {o:>9.1} {unit:<10} openhands {p:>9.1} {unit:<10} ratio {:.1}x",
            if higher { o / p } else { p / o }
        ),
        None => println!("{name:<26} sandcrab {o:>9.1} {unit}"),
    };
    row(
        "throughput",
        ours.actions_per_s,
        peer.map(|p| p.actions_per_s),
        "actions/s",
        true,
    );
    row(
        "step latency p50",
        ours.p50_ms,
        peer.map(|p| p.p50_ms),
        "ms",
        false,
    );
    row(
        "step latency p99",
        ours.p99_ms,
        peer.map(|p| p.p99_ms),
        "ms",
        false,
    );
    row(
        "server peak RSS",
        ours.peak_rss_mb,
        peer.map(|p| p.peak_rss_mb),
        "MB",
        false,
    );
}

/// Samples a process's VmHWM (peak RSS) until stopped; the highest value in MB.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0f64;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(vm_hwm_mb(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak.max(vm_hwm_mb(pid))
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn vm_hwm_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A child listening on `port`, killed (by its PID) on stop or drop.
struct Background(Child);

impl Background {
    fn start(cmd: &mut Command, port: u16) -> Self {
        let child = Background(cmd.spawn().expect("the process starts"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
