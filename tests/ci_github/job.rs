//! The harness: one job (bare origin, the runner's checkout, a fake GitHub), the payloads,
//! scripts and the secret scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::fake_github::{Config, FakeGithub, GhRequest};
use crate::common::*;

pub const REPO: &str = "Codertocat/Hello-World";
pub const TOKEN: &str = "ghs_FAKEtoken1234567890abcdefXYZ";
pub const LLM_KEY: &str = "sk-fake-llm-key-0987654321-secret";

/// An edit of a payload.
pub type Edit = fn(&mut Value);

/// One job: a bare origin with the calc example, the runner's checkout of it, a fake GitHub.
pub struct Job {
    pub origin: tempfile::TempDir,
    pub checkout: tempfile::TempDir,
    pub tmp: tempfile::TempDir,
    pub gh: FakeGithub,
}

impl Job {
    pub fn new(config: Config) -> Self {
        let seed = calc_repo();
        let origin = tempfile::tempdir().unwrap();
        git(
            origin.path(),
            &["clone", "-q", "--bare", seed.path().to_str().unwrap(), "."],
        );
        // The fixtures' PR #2: base `master`, head `changes` (a commit that touches
        // calc.sh), kept at refs/pull/2/head as GitHub does.
        let s = seed.path();
        git(s, &["branch", "master"]);
        git(s, &["checkout", "-q", "-b", "changes"]);
        let calc = std::fs::read_to_string(s.join("calc.sh")).unwrap();
        let calc = calc.replacen("op=$1", "# usage: calc.sh add 1 2\nop=$1", 1);
        std::fs::write(s.join("calc.sh"), calc).unwrap();
        git(s, &["commit", "-q", "-am", "document usage"]);
        git(s, &["checkout", "-q", "main"]);
        git(
            origin.path(),
            &[
                "fetch",
                "-q",
                s.to_str().unwrap(),
                "master:master",
                "changes:changes",
            ],
        );
        git(
            origin.path(),
            &["update-ref", "refs/pull/2/head", "changes"],
        );
        let checkout = tempfile::tempdir().unwrap();
        git(
            checkout.path(),
            &["clone", "-q", origin.path().to_str().unwrap(), "."],
        );
        Job {
            origin,
            checkout,
            tmp: tempfile::tempdir().unwrap(),
            gh: FakeGithub::start(config),
        }
    }

    pub fn writer() -> Self {
        Job::new(Config {
            permissions: HashMap::from([("Codertocat".to_string(), "write".to_string())]),
            ..Config::default()
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes the fixture `file`, edited, as the event payload.
    pub fn event(&self, file: &str, edit: impl FnOnce(&mut Value)) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/github-events/{file}.payload.json"));
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(self.path("event.json"), v.to_string()).unwrap();
    }

    pub fn script(&self, yaml: &str) -> String {
        std::fs::write(self.path("script.yaml"), yaml).unwrap();
        format!("scripted:{}", self.path("script.yaml").display())
    }

    pub fn run(&self, event_name: &str, model: &str, extra: &[(&str, &str)]) -> Run {
        run(&mut self.command(event_name, model, extra))
    }

    /// `sandcrab run` with the environment GitHub sets for a container action.
    pub fn command(
        &self,
        event_name: &str,
        model: &str,
        extra: &[(&str, &str)],
    ) -> std::process::Command {
        let mut cmd = sandcrab();
        for (k, _) in std::env::vars() {
            if [
                "GITHUB_",
                "INPUT_",
                "ACTIONS_",
                "SANDCRAB_",
                "GITLAB_",
                "RUNNER_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .current_dir(self.checkout.path())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event_name)
            .env("GITHUB_EVENT_PATH", self.path("event.json"))
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_API_URL", self.gh.url())
            .env("GITHUB_SERVER_URL", "https://github.example")
            .env("GITHUB_RUN_ID", "4242")
            .env("GITHUB_OUTPUT", self.path("output"))
            .env("GITHUB_STEP_SUMMARY", self.path("summary"))
            .env("GITHUB_WORKSPACE", self.checkout.path())
            .env("INPUT_GITHUB-TOKEN", TOKEN)
            .env("INPUT_LLM-API-KEY", LLM_KEY)
            .env("INPUT_MODEL", model)
            .env("SANDCRAB_OUT", self.path("out"));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// The `GITHUB_OUTPUT` file, parsed.
    pub fn outputs(&self) -> HashMap<String, String> {
        let text = std::fs::read_to_string(self.path("output")).unwrap_or_default();
        let mut out = HashMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let (name, delim) = line.split_once("<<").expect("multi-line form");
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
            out.insert(name.to_string(), value.join("\n"));
        }
        out
    }

    pub fn origin_git(&self, args: &[&str]) -> String {
        git(self.origin.path(), args)
    }

    /// Comment bodies posted or edited, in order.
    pub fn comment_bodies(&self) -> Vec<String> {
        self.gh
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/comments"))
            .map(|r| r.body["body"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

pub fn calc_repo() -> tempfile::TempDir {
    let ex = examples_dir().join("calc");
    let read = |f: &str| std::fs::read_to_string(ex.join(f)).unwrap();
    git_repo(&[
        ("calc.sh", &read("calc.sh")),
        ("test.sh", &read("test.sh")),
        ("README.md", &read("README.md")),
    ])
}

pub fn calc_fix() -> String {
    std::fs::read_to_string(examples_dir().join("calc-fix.yaml")).unwrap()
}

pub fn answer(message: &str) -> String {
    format!(
        "- tool: finish\n  args:\n    message: {}\n",
        serde_json::to_string(message).unwrap()
    )
}

pub fn with_phrase(v: &mut Value) {
    v["comment"]["body"] = "@sandcrab please fix `sub`, it adds".into();
}

/// No secret in any request body, log line (masks aside), output file or pushed commit.
pub fn assert_no_secrets(job: &Job, r: &Run) {
    for secret in [TOKEN, LLM_KEY] {
        for req in job.gh.requests() {
            assert!(
                !req.raw.contains(secret),
                "secret in {} {}: {}",
                req.method,
                req.path,
                req.raw
            );
        }
        for line in r.stdout.lines().chain(r.stderr.lines()) {
            assert!(
                line.starts_with("::add-mask::") || !line.contains(secret),
                "secret in log line: {line}"
            );
        }
        for file in files_under(job.tmp.path()) {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            assert!(!text.contains(secret), "secret in {}", file.display());
        }
        let pushed = job.origin_git(&["log", "-p", "--all"]);
        assert!(!pushed.contains(secret), "secret in a pushed commit");
        assert!(
            !std::fs::read_to_string(job.checkout.path().join(".git/config"))
                .unwrap()
                .contains(secret)
        );
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn auth_header(req: &GhRequest) -> Option<&str> {
    req.headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
}
