//! One repository snapshot for every workspace kind: a checkout with the job token persisted
//! as actions/checkout leaves it (in `.git/config`, also on a section's header line, in a
//! submodule's `.git/modules/sub/config` and in a worktree's `config.worktree`) and sandcrab's
//! outputs inside it (`sandcrab-out/`) goes into Docker, Cloud, Runtime API and Apptainer
//! sandboxes; a scan inside each finds no token and no `sandcrab-out`, and git still works.
//!
//! Cloud and Runtime API run against their fakes (each sandbox a real `sandcrab serve`),
//! Apptainer through the stand-in; Docker needs an engine (skipped without one outside CI).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::checkout::auth_header;
use common::git;
use sandcrab::workspace::{
    ApptainerOptions, ApptainerWorkspace, CloudOptions, CloudWorkspace, ExecRequest,
    RuntimeApiOptions, RuntimeApiWorkspace, SifSource, Workspace,
};

const MAIN_TOKEN: &str = "ghs_MAINconfigTOKEN000111";
const HEADER_LINE_TOKEN: &str = "ghs_HEADERlineTOKEN222333";
const SUBMODULE_TOKEN: &str = "ghs_SUBMODULEtoken444555";
const WORKTREE_TOKEN: &str = "ghs_WORKTREEtoken666777";
const OUTPUT_MARKER: &str = "sandcrab-output-marker-888";

/// What must never be seen inside a sandbox: each token and its basic-auth form.
fn forbidden() -> Vec<String> {
    let mut out = vec![OUTPUT_MARKER.to_string()];
    for t in [
        MAIN_TOKEN,
        HEADER_LINE_TOKEN,
        SUBMODULE_TOKEN,
        WORKTREE_TOKEN,
    ] {
        out.push(t.to_string());
        out.push(auth_header(t).rsplit(' ').next().unwrap().to_string());
    }
    out
}

/// The checkout (and the directory holding its worktree, which must outlive it).
fn checkout() -> (tempfile::TempDir, tempfile::TempDir) {
    let lib = common::git_repo(&[("lib.txt", "library\n")]);
    let repo = common::git_repo(&[("a.txt", "alpha\n")]);
    let r = repo.path();
    let key = "http.https://github.com/.extraheader";
    git(r, &["config", "--local", key, &auth_header(MAIN_TOKEN)]);
    git(
        r,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            lib.path().to_str().unwrap(),
            "sub",
        ],
    );
    git(r, &["commit", "-q", "-m", "add sub"]);
    git(
        &r.join("sub"),
        &["config", "--local", key, &auth_header(SUBMODULE_TOKEN)],
    );
    let outside = tempfile::tempdir().unwrap();
    let wt = outside.path().join("wt");
    git(r, &["config", "extensions.worktreeConfig", "true"]);
    git(r, &["worktree", "add", "-q", wt.to_str().unwrap()]);
    git(
        &wt,
        &["config", "--worktree", key, &auth_header(WORKTREE_TOKEN)],
    );
    let mut config = std::fs::read_to_string(r.join(".git/config")).unwrap();
    config.push_str(&format!(
        "[http \"https://example.com/\"] extraheader = {}\n",
        auth_header(HEADER_LINE_TOKEN)
    ));
    std::fs::write(r.join(".git/config"), config).unwrap();
    std::fs::create_dir_all(r.join("sandcrab-out/conversations/c1")).unwrap();
    std::fs::write(
        r.join("sandcrab-out/conversations/c1/events.jsonl"),
        OUTPUT_MARKER,
    )
    .unwrap();
    // Every secret is really there on the runner.
    let all = files_text(r);
    for s in forbidden().iter().filter(|s| !s.starts_with("ghs_")) {
        assert!(all.contains(s.as_str()), "{s} not planted");
    }
    (repo, outside)
}

fn files_text(dir: &Path) -> String {
    let out = std::process::Command::new("grep")
        .args(["-rIh", "-e", "", "."])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn excluded() -> Vec<PathBuf> {
    vec![PathBuf::from("sandcrab-out")]
}

/// Scans the sandbox's copy from inside it.
async fn assert_clean(ws: &dyn Workspace, kind: &str) {
    let patterns: String = forbidden().iter().map(|s| format!(" -e '{s}'")).collect();
    let script = format!(
        "grep -rIl{patterns} . ; test -e sandcrab-out && echo OUTPUTS-COPIED; \
         git status --short >/dev/null && git -C sub log --oneline >/dev/null && echo GIT-WORKS"
    );
    let out = ws.execute(ExecRequest::new(script)).await.unwrap();
    assert_eq!(
        out.stdout.trim(),
        "GIT-WORKS",
        "{kind}: found in the sandbox: {}\n{}",
        out.stdout,
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_sandboxes_get_no_token_and_no_outputs() {
    use common::fake_cloud::{CloudBehaviour, FakeCloud, CLOUD_KEY};
    let (repo, _wt) = checkout();
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = CloudOptions::new(cloud.url(), CLOUD_KEY);
    opts.workdir = dir.path().join("ws").display().to_string();
    opts.start_timeout = Duration::from_secs(30);
    opts.exclude = excluded();
    let ws = CloudWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();
    assert_clean(&ws, "cloud").await;
    ws.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_api_sandboxes_get_no_token_and_no_outputs() {
    use common::fake_runtime_api::{FakeRuntimeApi, RuntimeBehaviour, IMAGE, RUNTIME_KEY};
    let (repo, _wt) = checkout();
    let api = FakeRuntimeApi::start(RuntimeBehaviour { pending_polls: 0 });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RuntimeApiOptions::new(api.url(), RUNTIME_KEY, IMAGE);
    opts.workdir = dir.path().join("ws").display().to_string();
    opts.start_timeout = Duration::from_secs(30);
    opts.exclude = excluded();
    let ws = RuntimeApiWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();
    assert_clean(&ws, "runtime api").await;
    ws.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn apptainer_sandboxes_get_no_token_and_no_outputs() {
    use common::apptainer_standin::Standin;
    let (repo, _wt) = checkout();
    let standin = Standin::new();
    let sif = standin.dir.path().join("image.sif");
    std::fs::write(&sif, "a SIF").unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let mut opts = ApptainerOptions::new(SifSource::File(sif), common::docker::static_binary());
    opts.program = standin.program();
    opts.cache_dir = standin.dir.path().join("cache");
    opts.workdir = workdir.path().display().to_string();
    opts.start_timeout = Duration::from_secs(30);
    opts.exclude = excluded();
    let ws = ApptainerWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();
    assert_clean(&ws, "apptainer").await;
    ws.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_sandboxes_get_no_token_and_no_outputs() {
    use common::docker::{engine_or_skip, git_image, options};
    if !engine_or_skip() {
        return;
    }
    let (repo, _wt) = checkout();
    let mut opts = options(git_image());
    opts.exclude = excluded();
    let ws = sandcrab::workspace::DockerWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();
    assert_clean(&ws, "docker").await;
    ws.close().await.unwrap();
}
