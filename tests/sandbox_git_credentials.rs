//! The Docker sandbox gets the repository without the runner's git credentials: what
//! actions/checkout persists in `.git/config` (an `http.<url>.extraheader` with the job token),
//! token-bearing `url.*.insteadOf` rewrites, credential helpers and user:password remote URLs.
//! Needs a Docker engine (skipped without one outside CI); the container is labelled
//! `sandcrab.test` and removed.

mod common;

use common::docker::{engine_or_skip, git_image, options};
use common::git_repo;
use sandcrab::workspace::{DockerWorkspace, ExecRequest, Workspace};

const HEADER_SECRET: &str = "eC1hY2Nlc3MtdG9rZW46Z2hzX2NoZWNrb3V0";
const URL_SECRET: &str = "ghs_urlTOKEN12345";

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_sees_no_git_credentials() {
    if !engine_or_skip() {
        return;
    }
    let repo = git_repo(&[("a.txt", "alpha\n")]);
    let git = |args: &[&str]| common::git(repo.path(), args);
    git(&[
        "remote",
        "add",
        "origin",
        &format!("https://x-access-token:{URL_SECRET}@github.com/o/r"),
    ]);
    git(&[
        "config",
        "http.https://github.com/.extraheader",
        &format!("AUTHORIZATION: basic {HEADER_SECRET}"),
    ]);
    git(&[
        "config",
        &format!("url.https://x:{URL_SECRET}@github.com/.insteadOf"),
        "https://github.com/",
    ]);
    git(&["config", "credential.helper", "store --file /runner/creds"]);
    let ws = DockerWorkspace::start(options(git_image()), Some(repo.path()))
        .await
        .unwrap();
    let out = ws
        .execute(ExecRequest::new("cat .git/config; git config --list --show-origin; git status --short; git log --oneline"))
        .await
        .unwrap();
    ws.close().await.unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    for secret in [
        HEADER_SECRET,
        URL_SECRET,
        "extraheader",
        "credential",
        "/runner/creds",
    ] {
        assert!(
            !out.stdout.contains(secret),
            "{secret} visible in the sandbox:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("url = \"https://github.com/o/r\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("initial"),
        "the repository still works: {}",
        out.stdout
    );
    // The runner's own checkout keeps its config.
    assert!(std::fs::read_to_string(repo.path().join(".git/config"))
        .unwrap()
        .contains(HEADER_SECRET));
}
