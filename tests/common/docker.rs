//! Docker test helpers: the static agent-server, locally built images (no registry), and the
//! skip rule (no engine: skip, unless `CI` is set).
//!
//! Images, cached by tag and labelled `sandcrab.test=image`: `sandcrab-test-busybox`
//! (`FROM scratch` + static busybox and its applet links) and `sandcrab-test-git` (busybox plus
//! the host's git and bash with their libraries and loader, imported with `docker import`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sandcrab::workspace::DockerOptions;

pub const BUSYBOX_IMAGE: &str = "sandcrab-test-busybox:1";
pub const GIT_IMAGE: &str = "sandcrab-test-git:2";
pub const TEST_LABEL: &str = "sandcrab.test";

pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Whether to run: an engine answers, or (without one) only outside CI.
pub fn engine_or_skip() -> bool {
    if docker(&["info"]).is_ok() {
        return true;
    }
    super::skip("no Docker engine");
    false
}

pub fn container_exists(id: &str) -> bool {
    docker(&["container", "inspect", id]).is_ok()
}

pub fn network_exists(id: &str) -> bool {
    docker(&["network", "inspect", id]).is_ok()
}

/// The ids of networks carrying `label` (`key=value`).
pub fn labelled_networks(label: &str) -> Vec<String> {
    let out = docker(&["network", "ls", "-q", "--filter", &format!("label={label}")]).unwrap();
    out.lines().map(String::from).collect()
}

/// The static agent-server, built with the `static-test` profile (release semantics, no LTO: a
/// rebuild after a change in src/ takes seconds, not minutes). The first test to ask builds it;
/// tests asking meanwhile (nextest runs each in its own process) wait on cargo's lock and then
/// find it up to date.
pub fn static_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "--profile",
                    "static-test",
                    "--bin",
                    "sandcrab",
                ])
                .args(["--target", "x86_64-unknown-linux-musl"])
                .current_dir(&root)
                .status()
                .expect("cargo runs");
            assert!(
                status.success(),
                "the static build failed (musl-tools installed?)"
            );
            let target =
                std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
            target.join("x86_64-unknown-linux-musl/static-test/sandcrab")
        })
        .clone()
}

/// A rootfs with static busybox in /bin, its applets as symlinks, and /tmp.
fn busybox_rootfs(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let applets = host_output("/bin/busybox", &["--list"]);
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
}

fn host_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_exists(tag: &str) -> bool {
    docker(&["image", "inspect", tag]).is_ok()
}

/// `FROM scratch` + busybox, built once (cached by tag).
pub fn busybox_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if image_exists(BUSYBOX_IMAGE) {
            return;
        }
        let ctx = tempfile::tempdir().unwrap();
        busybox_rootfs(&ctx.path().join("rootfs"));
        let dockerfile = format!("FROM scratch\nCOPY rootfs/ /\nLABEL {TEST_LABEL}=image\n");
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        let context = ctx.path().to_str().unwrap();
        docker(&["build", "-q", "-t", BUSYBOX_IMAGE, context]).unwrap();
    });
    BUSYBOX_IMAGE
}

/// busybox + the host's git and bash with their libraries, via `docker import` (cached).
pub fn git_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if image_exists(GIT_IMAGE) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        busybox_rootfs(&root);
        for program in ["/usr/bin/git", "/bin/bash"] {
            copy_with_libs(program, &root);
        }
        // git's server-side programs, which a push to a local path runs (the action image pushes).
        for link in ["git-receive-pack", "git-upload-pack", "git-upload-archive"] {
            std::os::unix::fs::symlink("git", root.join("usr/bin").join(link)).unwrap();
        }
        let tar = dir.path().join("rootfs.tar");
        let status = Command::new("tar")
            .args([
                "-C",
                root.to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let change = format!("LABEL {TEST_LABEL}=image");
        docker(&[
            "import",
            "--change",
            &change,
            tar.to_str().unwrap(),
            GIT_IMAGE,
        ])
        .unwrap();
    });
    GIT_IMAGE
}

/// Copies `program` and everything `ldd` lists for it (loader included) into `root`.
fn copy_with_libs(program: &str, root: &Path) {
    let ldd = host_output("ldd", &[program]);
    let libs = ldd
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(str::to_string);
    for path in std::iter::once(program.to_string()).chain(libs) {
        let target = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&target); // a busybox applet link of the same name
        std::fs::copy(&path, &target).unwrap();
    }
}

pub fn options(image: &str) -> DockerOptions {
    let mut opts = DockerOptions::new(image, static_binary());
    opts.labels
        .push((TEST_LABEL.into(), "docker_workspace".into()));
    opts
}

/// ./Dockerfile built as the release builds it, from images made here (nothing is pulled):
/// `binary` as `prebuilt/amd64/sandcrab` with `TARGETARCH=amd64`, the busybox image as the
/// build stage, the git image as the runtime base; labelled `sandcrab.test=image`.
pub fn build_action_image(binary: &Path, tag: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("prebuilt/amd64")).unwrap();
    std::fs::copy(binary, ctx.path().join("prebuilt/amd64/sandcrab")).unwrap();
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let builder = format!("BUILDER_IMAGE={}", busybox_image());
    let runtime = format!("RUNTIME_IMAGE={}", git_image());
    let label = format!("{TEST_LABEL}=image");
    docker(&[
        "build",
        "-q",
        "-f",
        dockerfile.to_str().unwrap(),
        "--build-arg",
        &builder,
        "--build-arg",
        &runtime,
        "--build-arg",
        "TARGETARCH=amd64",
        "--label",
        &label,
        "-t",
        tag,
        ctx.path().to_str().unwrap(),
    ])
    .expect("the action's Dockerfile builds");
}
