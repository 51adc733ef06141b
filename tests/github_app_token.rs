//! GitHub App installation tokens end to end: the real binary with `app-id` and
//! `app-private-key`, an RSA key made by the test, and the strict fake GitHub with the App
//! installed (`tests/fakes/github_app.py`), which verifies the JWT with PyJWT, mints the token
//! only for this repository and the granted permissions, accepts it only between mint and
//! revoke, and refuses the job's own token for pushes and API calls.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::action_env::{action_run, default_branch_checkout, one_commit_bare, write_event};
use common::strict_github::{self, App, StrictGithub};
use common::{run, Run};
use serde_json::Value;

const APP_ID: &str = "424242";
const INSTALLATION: u64 = 7_000_001;
const JOB_TOKEN: &str = "ghs_JOBtokenOfTheWorkflow000000000001";
const APP_TOKEN: &str = "ghs_APPinstallationToken1111111111111";

/// A 2048-bit RSA key in PKCS#1 PEM (as GitHub's App settings page downloads it) and its
/// public key, made with the fake's Python (cryptography).
struct Key {
    private_pem: String,
    public_path: PathBuf,
}

fn make_key(dir: &Path) -> Key {
    let private_path = dir.join("app.pem");
    let public_path = dir.join("app.pub.pem");
    let script = "import sys\n\
from cryptography.hazmat.primitives.asymmetric import rsa\n\
from cryptography.hazmat.primitives import serialization as s\n\
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n\
open(sys.argv[1], 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption()))\n\
open(sys.argv[2], 'wb').write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))\n";
    let status = Command::new(strict_github::python())
        .args(["-c", script])
        .arg(&private_path)
        .arg(&public_path)
        .status()
        .unwrap();
    assert!(status.success(), "cannot make the test's RSA key");
    Key {
        private_pem: std::fs::read_to_string(private_path).unwrap(),
        public_path,
    }
}

/// The base64 lines of the key: none may leave the run.
fn key_lines(key: &Key) -> Vec<String> {
    key.private_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(String::from)
        .collect()
}

struct Job {
    gh: StrictGithub,
    checkout: tempfile::TempDir,
    tmp: tempfile::TempDir,
    key: Key,
}

impl Job {
    fn start(permissions: &[&str]) -> Option<Job> {
        if !Path::new(&strict_github::python()).exists() {
            // StrictGithub::start_with_app says SKIPPED (or panics under CI).
            StrictGithub::start(Path::new("/nonexistent"), &[])?;
        }
        let tmp = tempfile::tempdir().unwrap();
        let key = make_key(tmp.path());
        let lines = key_lines(&key);
        let secrets: Vec<&str> = lines.iter().map(String::as_str).collect();
        let bare = one_commit_bare();
        let app = App {
            id: APP_ID,
            public_key_pem: &key.public_path,
            installation_id: INSTALLATION,
            permissions,
            token: APP_TOKEN,
            job_token: JOB_TOKEN,
            secrets: &secrets,
        };
        let gh = StrictGithub::start_with_app(bare.path(), &["Codertocat=write"], &app)?;
        let checkout = default_branch_checkout(&gh, JOB_TOKEN, true);
        Some(Job {
            gh,
            checkout,
            tmp,
            key,
        })
    }

    /// `@sandcrab` on issue #1 by a writer, as the container action runs it.
    fn run(&self, script: &str, extra: &[(&str, &str)]) -> Run {
        let tmp = self.tmp.path();
        write_event(&self.gh, tmp, "issue_comment.created", |v| {
            v["comment"]["body"] = "@sandcrab add a NOTES file".into()
        });
        let mut cmd = action_run(&self.gh, self.checkout.path(), tmp, "issue_comment", script);
        cmd.env("INPUT_GITHUB-TOKEN", JOB_TOKEN)
            .env("INPUT_APP-ID", APP_ID)
            .env("INPUT_APP-PRIVATE-KEY", &self.key.private_pem);
        cmd.envs(extra.iter().copied());
        run(&mut cmd)
    }

    /// The fake's `app_event` lines: minted, revoked.
    fn app_events(&self) -> Vec<Value> {
        self.gh
            .requests()
            .into_iter()
            .filter(|r| r["kind"] == "app_event")
            .collect()
    }

    /// Everything the run left where people or later steps read it.
    fn outputs(&self, r: &Run) -> String {
        let mut all = format!("{}\n{}", r.stdout, r.stderr);
        for f in ["output", "summary"] {
            all += &std::fs::read_to_string(self.tmp.path().join(f)).unwrap_or_default();
        }
        let out = self.checkout.path().join("sandcrab-out");
        for f in [
            "result.json",
            "trajectory.jsonl",
            "report.md",
            "changes.patch",
        ] {
            all += &std::fs::read_to_string(out.join(f)).unwrap_or_default();
        }
        all
    }
}

const ADD_NOTES: &str = "- tool: file_editor\n  args: {command: create, path: \"${WORKSPACE}/NOTES.md\", file_text: \"notes\\n\"}\n- tool: finish\n  args: {message: \"Added NOTES.md.\"}\n";

const RESOLVE_GRANT: &[&str] = &[
    "contents=write",
    "pull_requests=write",
    "issues=write",
    "metadata=read",
];

#[test]
fn the_app_token_is_minted_scoped_used_for_api_and_push_and_revoked() {
    let Some(job) = Job::start(RESOLVE_GRANT) else {
        return;
    };
    let r = job.run(ADD_NOTES, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Every request judged on-schema and authenticated as the fake demands (it refuses the
    // job's token for the push and the API): the push went through with the App's token.
    let pushes = job.gh.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}\n{}", r.stderr);
    assert!(pushes[0]["ref"]
        .as_str()
        .unwrap()
        .starts_with("refs/heads/sandcrab/"));
    let events = job.app_events();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, ["minted", "revoked"], "{events:?}");
    assert_eq!(
        events[0]["repositories"],
        serde_json::json!(["Hello-World"])
    );
    assert_eq!(
        events[0]["permissions"],
        serde_json::json!({"contents": "write", "pull_requests": "write", "issues": "write"})
    );
    // The revocation is the last request: nothing used the token after it.
    let last = job.gh.requests().into_iter().last().unwrap();
    assert_eq!(last["path"], "/installation/token", "{last}");
    assert_eq!(last["status"], 204, "{last}");
    let calls = job.gh.api_calls();
    assert!(calls
        .iter()
        .any(|(m, p, _)| m == "POST" && p.ends_with("/pulls")));
    // The log masks the token for the runner (which hides it in the job's log)...
    assert!(
        r.stderr.contains(&format!("::add-mask::{APP_TOKEN}")),
        "{}",
        r.stderr
    );
    // ...and no output, report or later-step file holds the token or the key.
    let outputs = job.outputs(&r);
    let outputs = outputs.replace(&format!("::add-mask::{APP_TOKEN}"), "");
    assert!(!outputs.contains(APP_TOKEN), "the App token leaked");
    for line in key_lines(&job.key) {
        let unmasked = outputs.replace(&format!("::add-mask::{line}"), "");
        assert!(!unmasked.contains(&line), "a line of the App key leaked");
    }
    // The key reached no request (the fake checks every header and body for its lines).
    assert!(!job.gh.requests().is_empty());
}

#[test]
fn a_run_that_fails_after_the_mint_still_revokes_the_token() {
    let Some(job) = Job::start(RESOLVE_GRANT) else {
        return;
    };
    // The model's script is missing: the run fails after the token was minted.
    let r = job.run(
        ADD_NOTES,
        &[("INPUT_MODEL", "scripted:/nonexistent/script.yaml")],
    );
    assert_ne!(r.code, 0, "{}", r.stderr);
    let kinds: Vec<String> = job
        .app_events()
        .iter()
        .filter_map(|e| e["event"].as_str().map(String::from))
        .collect();
    assert_eq!(kinds, ["minted", "revoked"], "{}", r.stderr);
    assert!(job.gh.pushes().is_empty());
}

#[test]
fn an_app_without_the_needed_permission_fails_in_one_line_before_anything_is_posted() {
    let Some(job) = Job::start(&["contents=read", "pull_requests=write", "issues=write"]) else {
        return;
    };
    let r = job.run(ADD_NOTES, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("installation token"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("not granted") && line.contains("grant the App"),
        "{}",
        r.stderr
    );
    assert!(job.app_events().is_empty());
    let posts: Vec<_> = job
        .gh
        .api_calls()
        .into_iter()
        .filter(|(m, _, _)| m != "GET")
        .collect();
    assert_eq!(posts.len(), 1, "only the refused token request: {posts:?}");
    assert!(job.gh.pushes().is_empty());
}

#[test]
fn a_wrong_key_is_refused_by_the_fake_and_reported_in_one_line() {
    let Some(job) = Job::start(RESOLVE_GRANT) else {
        return;
    };
    let dir = job.tmp.path().join("other-key");
    std::fs::create_dir(&dir).unwrap();
    let other = make_key(&dir);
    let r = job.run(ADD_NOTES, &[("INPUT_APP-PRIVATE-KEY", &other.private_pem)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot find GitHub App 424242's installation"),
        "{}",
        r.stderr
    );
    let requests: Vec<Value> = std::fs::read_to_string(job.gh.root.path().join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(requests.iter().any(|r| r["problems"]
        .to_string()
        .contains("the JWT does not verify")));
}
