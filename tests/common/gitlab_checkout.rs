//! What a GitLab runner leaves in `CI_PROJECT_DIR` with the default `GIT_STRATEGY: fetch` on a
//! fresh build directory, step for step: `git init`, `git remote add origin` with
//! `gitlab-ci-token:<CI_JOB_TOKEN>@` in the URL, `git fetch origin <refspecs> --depth
//! <GIT_DEPTH> --prune --quiet` with the project's default refspecs (`+refs/pipelines/<id>`
//! and the branch, or `refs/merge-requests/<iid>/head` in a merge request pipeline), then
//! `git checkout -f -q <CI_COMMIT_SHA>`: a shallow history and a detached HEAD.

use std::path::Path;

/// The ref a pipeline runs for.
#[derive(Clone, Copy, Debug)]
pub enum PipelineRef<'a> {
    /// A branch pipeline (push, web, schedule, trigger, api).
    Branch(&'a str),
    /// A merge request pipeline (`merge_request_event`).
    MergeRequest(u64),
}

/// GitLab's default `GIT_DEPTH` for new projects.
pub const GIT_DEPTH: u32 = 20;

/// Checks `sha` out into the empty `dir` from `remote` (the URL with the job token) as the
/// runner does; `bare` is the server's repository, where the pipeline ref is created first
/// (GitLab keeps `refs/pipelines/<id>` for every pipeline).
pub fn runner_checkout(
    dir: &Path,
    bare: &Path,
    remote: &str,
    what: PipelineRef<'_>,
    sha: &str,
    pipeline_id: u64,
) {
    let pipeline = format!("refs/pipelines/{pipeline_id}");
    let bare_git = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["update-ref", &pipeline, sha])
        .status()
        .unwrap();
    assert!(bare_git.success());
    let git = |args: &[&str]| super::git(dir, args);
    git(&["init", "-q"]);
    git(&["remote", "add", "origin", remote]);
    let pipeline_spec = format!("+{pipeline}:{pipeline}");
    let ref_spec = match what {
        PipelineRef::Branch(b) => format!("+refs/heads/{b}:refs/remotes/origin/{b}"),
        PipelineRef::MergeRequest(iid) => {
            format!("+refs/merge-requests/{iid}/head:refs/remotes/origin/merge-requests/{iid}/head")
        }
    };
    let depth = GIT_DEPTH.to_string();
    git(&[
        "fetch",
        "origin",
        &pipeline_spec,
        &ref_spec,
        "--depth",
        &depth,
        "--prune",
        "--quiet",
    ]);
    git(&["checkout", "-f", "-q", sha]);
}
