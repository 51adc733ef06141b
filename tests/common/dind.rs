//! A second Docker engine on another "host", as GitLab's docker:dind service is: `dockerd` in
//! its own network namespace, joined to this one by a veth pair (runner side `10.213.N.1`,
//! engine side `10.213.N.2`), listening on `tcp://10.213.N.2:2375`. Its containers live on
//! bridges inside that namespace, which this host has no route to; they reach the runner's
//! address through the engine's NAT, as dind's do. Needs root, `ip`, `nsenter` and `dockerd`
//! (Debian's docker.io); `vfs` storage, so it works wherever the host engine does.
//!
//! Dropping it stops the daemon (and the containerd it started), deletes the namespace and
//! the veth pair, and removes its data.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running engine in its own network namespace.
pub struct Dind {
    pub host: String,
    pub runner_ip: String,
    netns: String,
    daemon: Child,
    dir: tempfile::TempDir,
}

/// Whether this machine can run one (root and the tools); says why not.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    for tool in ["ip", "nsenter", "dockerd"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!("{tool} is not installed"));
        }
    }
    Ok(())
}

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Dind {
    /// Starts the engine and waits until it answers (a minute at most).
    pub fn start() -> Dind {
        remove_stale_namespaces();
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let nth = STARTED.fetch_add(1, Ordering::SeqCst);
        let n = (std::process::id() * 4 + nth) % 200 + 20;
        let netns = format!("scdind{}-{nth}", std::process::id());
        let (host_if, engine_if) = (format!("scd{n}a"), format!("scd{n}b"));
        let runner_ip = format!("10.213.{n}.1");
        let engine_ip = format!("10.213.{n}.2");
        sh(&format!(
            "ip netns add {netns}; ip link add {host_if} type veth peer name {engine_if}; \
             ip link set {engine_if} netns {netns}; ip addr add {runner_ip}/24 dev {host_if}; \
             ip link set {host_if} up; ip netns exec {netns} ip addr add {engine_ip}/24 dev {engine_if}; \
             ip netns exec {netns} ip link set {engine_if} up; ip netns exec {netns} ip link set lo up; \
             ip netns exec {netns} ip route add default via {runner_ip}"
        ));
        let dir = tempfile::Builder::new().prefix("scdind").tempdir().unwrap();
        let daemon = spawn_daemon(&netns, dir.path(), &engine_ip);
        let dind = Dind {
            host: format!("tcp://{engine_ip}:2375"),
            runner_ip,
            netns,
            daemon,
            dir,
        };
        dind.wait_ready(&format!("{engine_ip}:2375"));
        dind
    }

    fn wait_ready(&self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() && self.docker(&["version"]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        panic!("the second engine did not start: {log}");
    }

    /// `docker -H <this engine> args...`.
    pub fn docker(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-H", self.host.as_str()];
        all.extend_from_slice(args);
        super::docker::docker(&all)
    }

    /// Copies an image of the host's engine into this one (`docker save | docker load`).
    pub fn load_image(&self, tag: &str) {
        sh(&format!(
            "docker save {tag} | docker -H {} load -q",
            self.host
        ));
    }
}

/// Namespaces of earlier test processes that died before their fixture's `Drop` (a killed
/// test run): their daemon died with them, the namespace did not.
fn remove_stale_namespaces() {
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("scdind")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn spawn_daemon(netns: &str, dir: &Path, engine_ip: &str) -> Child {
    std::fs::write(dir.join("daemon.json"), "{}").unwrap();
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    let d = dir.display();
    // nsenter --net only: `ip netns exec` would remount /sys and hide the cgroups.
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["dockerd", "--config-file"])
        .arg(dir.join("daemon.json"))
        .args(["--data-root", &format!("{d}/data")])
        .args(["--exec-root", &format!("{d}/exec")])
        .args(["--pidfile", &format!("{d}/dockerd.pid")])
        .args(["-H", &format!("tcp://{engine_ip}:2375")])
        .args(["-H", &format!("unix://{d}/docker.sock")])
        .args([
            "--bip",
            "172.29.99.1/24",
            "--storage-driver",
            "vfs",
            "--tls=false",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Drop for Dind {
    fn drop(&mut self) {
        // SAFETY: signals the daemon this fixture spawned.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && self.daemon.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}
