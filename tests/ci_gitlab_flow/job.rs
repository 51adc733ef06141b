//! One GitLab job: a project on the fake GitLab (the calc example on `main`, a merge request
//! `!7` from `fix-sub` whose history is deeper than `GIT_DEPTH`), the runner's checkout of the
//! pipeline's commit, and `sandcrab run` with the pipeline's variables.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::gitlab_checkout::{runner_checkout, PipelineRef};
use crate::common::*;
use crate::fake::{FakeGitlab, Mr, JOB_TOKEN, TOKEN};

pub const JOB_URL: &str = "https://gitlab.example/group/app/-/jobs/9";
/// Printed by the agent's shell when neither the environment nor `.git/config` holds a token.
pub const SANDBOX_CHECK: &str = "no-gitlab-token-in-the-sandbox";
/// Commits on the merge request's branch after its change (more than `GIT_DEPTH`).
const MR_COMMITS: usize = 22;

/// What the pipeline runs for.
#[derive(Clone, Copy, Debug)]
pub enum Pipeline {
    /// A merge request pipeline of `!7`; `fork`: its source project is another one.
    MergeRequest { fork: bool },
    /// A branch pipeline on `main` (`CI_PIPELINE_SOURCE` given).
    Branch(&'static str),
}

pub struct Job {
    pub project: tempfile::TempDir,
    pub tmp: tempfile::TempDir,
    pub gitlab: FakeGitlab,
    pub pipeline: Pipeline,
    /// `CI_COMMIT_SHA`.
    pub sha: String,
    /// `main`'s tip.
    pub main: String,
    /// Where `fix-sub` left `main` (one commit behind its tip).
    pub fork_point: String,
}

impl Job {
    pub async fn new(pipeline: Pipeline) -> Self {
        let gitlab = FakeGitlab::start().await;
        let (fork_point, main) = seed(&gitlab);
        let mr_head = gitlab.bare().rev("refs/heads/fix-sub").unwrap();
        let fork = matches!(pipeline, Pipeline::MergeRequest { fork: true });
        gitlab.add_merge_request(Mr {
            iid: 7,
            title: "Fix sub in calc.sh".into(),
            description: "Please fix it.".into(),
            source_branch: "fix-sub".into(),
            target_branch: "main".into(),
            source_project_id: if fork { 99 } else { 42 },
            state: "opened".into(),
        });
        gitlab
            .bare()
            .git(&["update-ref", "refs/merge-requests/7/head", &mr_head]);
        gitlab.add_issue(
            5,
            "sub adds instead of subtracting",
            "`sh calc.sh sub 5 3` prints 8.",
        );
        let project = tempfile::tempdir().unwrap();
        let (what, sha) = match pipeline {
            Pipeline::MergeRequest { .. } => (PipelineRef::MergeRequest(7), mr_head),
            Pipeline::Branch(_) => (PipelineRef::Branch("main"), main.clone()),
        };
        let bare = gitlab.bare().0;
        let remote = gitlab.runner_remote();
        let dir = project.path().to_path_buf();
        let sha2 = sha.clone();
        tokio::task::spawn_blocking(move || {
            runner_checkout(&dir, &bare, &remote, what, &sha2, 100)
        })
        .await
        .unwrap();
        gitlab.forget_requests();
        Job {
            project,
            tmp: tempfile::tempdir().unwrap(),
            gitlab,
            pipeline,
            sha,
            main,
            fork_point,
        }
    }

    pub fn out(&self) -> PathBuf {
        self.project.path().join("sandcrab-out")
    }

    /// A scripted model: a first step that looks for the tokens in the agent's shell and in
    /// the checkout's git config, then `steps` (YAML list items).
    pub fn model_with(&self, steps: &str) -> String {
        let probe = format!(
            "- tool: terminal\n  args: {{command: \"test -z \\\"$SANDCRAB_GITLAB_TOKEN$GITLAB_TOKEN$CI_JOB_TOKEN\\\" && ! grep -q fake-job-token .git/config && echo {SANDBOX_CHECK}\"}}\n"
        );
        let path = self.tmp.path().join("script.yaml");
        std::fs::write(&path, format!("{probe}{steps}")).unwrap();
        format!("scripted:{}", path.display())
    }

    /// The calc fix (examples/calc-fix.yaml) after the probe.
    pub fn model(&self) -> String {
        let fix = std::fs::read_to_string(examples_dir().join("calc-fix.yaml")).unwrap();
        self.model_with(&fix)
    }

    /// `sandcrab run` with the pipeline's variables, `extra` on top (an empty value removes
    /// the variable).
    pub fn command(&self, model: &str, extra: &[(&str, &str)]) -> Command {
        let mut cmd = sandcrab();
        for (k, _) in std::env::vars() {
            if ["GITHUB_", "CI_", "GITLAB_", "SANDCRAB_", "INPUT_"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .args(["--model", model])
            .arg("--prompt-file")
            .arg(examples_dir().join("calc-task.md"))
            .current_dir(self.project.path())
            .env("GITLAB_CI", "true")
            .env("CI_API_V4_URL", &self.gitlab.api_url)
            .env("CI_SERVER_URL", &self.gitlab.server_url)
            .env("CI_PROJECT_ID", "42")
            .env("CI_PROJECT_PATH", "group/app")
            .env("CI_PROJECT_DIR", self.project.path())
            .env("CI_DEFAULT_BRANCH", "main")
            .env("CI_COMMIT_SHA", &self.sha)
            .env("CI_JOB_URL", JOB_URL)
            .env("CI_JOB_TOKEN", JOB_TOKEN)
            .env("SANDCRAB_GITLAB_TOKEN", TOKEN);
        match self.pipeline {
            Pipeline::MergeRequest { fork } => {
                cmd.env("CI_PIPELINE_SOURCE", "merge_request_event")
                    .env("CI_MERGE_REQUEST_IID", "7")
                    .env("CI_MERGE_REQUEST_PROJECT_ID", "42")
                    .env(
                        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID",
                        if fork { "99" } else { "42" },
                    )
                    .env("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "fix-sub")
                    .env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
                    .env("CI_MERGE_REQUEST_TITLE", "Fix sub in calc.sh");
            }
            Pipeline::Branch(source) => {
                cmd.env("CI_PIPELINE_SOURCE", source)
                    .env("CI_COMMIT_REF_NAME", "main");
            }
        }
        for (k, v) in extra {
            match v.is_empty() {
                true => cmd.env_remove(k),
                false => cmd.env(k, v),
            };
        }
        cmd
    }

    pub async fn run_with(&self, model: &str, extra: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(model, extra);
        tokio::task::spawn_blocking(move || run(&mut cmd))
            .await
            .unwrap()
    }

    pub async fn run(&self, extra: &[(&str, &str)]) -> Run {
        self.run_with(&self.model(), extra).await
    }

    /// `sandcrab.env`, as `(name, value)` pairs.
    pub fn env_file(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.out().join("sandcrab.env")).unwrap();
        text.lines()
            .map(|l| {
                let (k, v) = l.split_once('=').expect("NAME=value");
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    pub fn env_value(&self, name: &str) -> String {
        let vars = self.env_file();
        let found = vars.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.clone()).unwrap_or_default()
    }

    /// What the agent's shell printed, across the run.
    pub fn observations(&self) -> String {
        let events = trajectory(&self.out());
        kinds(&events, "ObservationEvent")
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    /// The API requests (git requests left out).
    pub fn api_requests(&self) -> Vec<crate::fake::Request> {
        let all = self.gitlab.requests();
        all.into_iter()
            .filter(|r| r.path.starts_with("/api/v4/"))
            .collect()
    }
}

/// The project on the fake: the calc example on `main` (3 commits, then one more after
/// `fix-sub` forked), and `fix-sub`: a usage line added to calc.sh, then `MR_COMMITS` commits
/// to NOTES.md. Returns the fork point and `main`'s tip.
fn seed(gitlab: &FakeGitlab) -> (String, String) {
    let ex = examples_dir().join("calc");
    let read = |f: &str| std::fs::read_to_string(ex.join(f)).unwrap();
    let work = git_repo(&[
        ("calc.sh", &read("calc.sh")),
        ("test.sh", &read("test.sh")),
        ("README.md", &read("README.md")),
    ]);
    let w = work.path();
    for i in 0..2 {
        std::fs::write(w.join("CHANGES.md"), format!("change {i}\n")).unwrap();
        git(w, &["add", "-A"]);
        git(w, &["commit", "-q", "-m", &format!("change {i}")]);
    }
    let fork_point = git(w, &["rev-parse", "HEAD"]).trim().to_string();
    git(w, &["checkout", "-q", "-b", "fix-sub"]);
    let calc = read("calc.sh").replacen(
        "for integers.\n",
        "for integers.\n# Usage: sh calc.sh add 1 2\n",
        1,
    );
    assert_ne!(calc, read("calc.sh"));
    std::fs::write(w.join("calc.sh"), calc).unwrap();
    git(w, &["commit", "-q", "-am", "calc.sh: a usage line"]);
    let mut notes = String::new();
    for i in 0..MR_COMMITS {
        notes.push_str(&format!("note {i}\n"));
        std::fs::write(w.join("NOTES.md"), &notes).unwrap();
        git(w, &["add", "-A"]);
        git(w, &["commit", "-q", "-m", &format!("note {i}")]);
    }
    git(w, &["checkout", "-q", "main"]);
    std::fs::write(w.join("CHANGES.md"), "change 2\n").unwrap();
    git(w, &["commit", "-q", "-am", "change 2"]);
    let main = git(w, &["rev-parse", "HEAD"]).trim().to_string();
    let bare = gitlab.bare().0;
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare)
        .status()
        .unwrap();
    assert!(status.success());
    git(
        w,
        &["push", "-q", bare.to_str().unwrap(), "main", "fix-sub"],
    );
    (fork_point, main)
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// No token in the log, any request's body or path, the outputs, the checkout's git config,
/// or anything pushed (every ref's history, messages and contents).
pub fn assert_no_secret_anywhere(job: &Job, r: &Run) {
    let bare = job.gitlab.bare();
    let pushed = bare
        .git(&["log", "--all", "-p", "--format=%H %an %ae %s%n%b"])
        .unwrap_or_default();
    let refs = bare.git(&["for-each-ref"]).unwrap_or_default();
    let config = std::fs::read_to_string(job.project.path().join(".git/config")).unwrap();
    for secret in [TOKEN, JOB_TOKEN] {
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
        for request in job.gitlab.requests() {
            assert!(!request.body.contains(secret), "{request:?}");
            assert!(!request.path.contains(secret), "{request:?}");
            assert!(!request.query.contains(secret), "{request:?}");
        }
        for file in files(&job.out()) {
            let bytes = std::fs::read(&file).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "{} holds a token", file.display());
        }
        assert!(!pushed.contains(secret) && !refs.contains(secret));
        assert!(!config.contains(secret), "{config}");
    }
}
