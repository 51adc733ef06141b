//! `sandcrab run` as the container action runs it against the strict fake GitHub: the
//! variables GitHub sets for the job, the inputs as `INPUT_<NAME>` (hyphens kept), the
//! checkout as the working directory, the scripted model, the local workspace; every
//! `GITHUB_*`, `INPUT_*`, `ACTIONS_*`, `SANDCRAB_*` and `RUNNER_*` variable of the test's own
//! environment removed first.

use std::path::Path;
use std::process::Command;

use super::checkout::{actions_checkout, Options, Ref};
use super::strict_github::{StrictGithub, DEFAULT_BRANCH, LLM_KEY, REPO};

/// The command for one run: `event.json`, `script.yaml`, `output` and `summary` live in `tmp`.
pub fn action_run(
    gh: &StrictGithub,
    checkout: &Path,
    tmp: &Path,
    event_name: &str,
    script: &str,
) -> Command {
    let script_path = tmp.join("script.yaml");
    std::fs::write(&script_path, script).unwrap();
    let mut cmd = super::sandcrab();
    for (k, _) in std::env::vars() {
        let ci = ["GITHUB_", "INPUT_", "ACTIONS_", "SANDCRAB_", "RUNNER_"];
        if ci.iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(k);
        }
    }
    cmd.arg("run")
        .current_dir(checkout)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", event_name)
        .env("GITHUB_EVENT_PATH", tmp.join("event.json"))
        .env("GITHUB_REPOSITORY", REPO)
        .env("GITHUB_API_URL", gh.api_url())
        .env("GITHUB_SERVER_URL", gh.server_url())
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_OUTPUT", tmp.join("output"))
        .env("GITHUB_STEP_SUMMARY", tmp.join("summary"))
        .env("GITHUB_WORKSPACE", checkout)
        .env("INPUT_LLM-API-KEY", LLM_KEY)
        .env("INPUT_WORKSPACE", "local")
        .env("INPUT_MODEL", format!("scripted:{}", script_path.display()));
    cmd
}

/// A fixture payload from tests/fixtures/github-events, its URLs pointed at the fake, edited,
/// written to `tmp/event.json`.
pub fn write_event(
    gh: &StrictGithub,
    tmp: &Path,
    fixture: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/fixtures/github-events/{fixture}.payload.json"
    ));
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("https://api.github.com", &gh.api_url())
        .replace("https://github.com", &gh.server_url());
    let mut event: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut event);
    std::fs::write(tmp.join("event.json"), event.to_string()).unwrap();
}

/// The bare repository the fake serves: one commit (`README.md`) on the default branch.
pub fn one_commit_bare() -> tempfile::TempDir {
    let work = super::git_repo(&[("README.md", "hello\n")]);
    super::git(work.path(), &["branch", "-m", DEFAULT_BRANCH]);
    let bare = tempfile::tempdir().unwrap();
    let source = work.path().to_str().unwrap();
    super::git(bare.path(), &["clone", "-q", "--bare", source, "."]);
    bare
}

/// What actions/checkout leaves for an event on the default branch (depth 1), fetched with
/// `token`.
pub fn default_branch_checkout(
    gh: &StrictGithub,
    token: &str,
    persist_credentials: bool,
) -> tempfile::TempDir {
    let checkout = tempfile::tempdir().unwrap();
    let opts = Options {
        what: Ref::Default(DEFAULT_BRANCH),
        depth: 1,
        persist_credentials,
    };
    actions_checkout(
        checkout.path(),
        &gh.server_url(),
        &gh.clone_url(),
        token,
        opts,
    );
    checkout
}
