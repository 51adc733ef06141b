//! The action's image end to end: ./Dockerfile built (from the static binary of this checkout,
//! on locally built bases: nothing is pulled) and run the way GitHub's runner runs a container
//! action: `--workdir /github/workspace`, the Docker socket, the `/github/*` mounts, the
//! variables GitHub sets and the inputs as `INPUT_<NAME>` with hyphens kept. The agent runs in
//! a sibling sandbox container started through the socket.
//!
//! On the host network (as a job whose fakes listen on the host's loopback) the whole GitHub
//! flow runs against a recording fake GitHub: the sender's permission is checked, one comment
//! is created and edited into the report, the `sandcrab/…` branch is pushed to the checkout's
//! origin, a draft pull request is opened, and GITHUB_OUTPUT and the step summary are written.
//! On the default bridge network (the runner's default) the same image runs the
//! platform-independent path (`SANDCRAB_CI_PLATFORM=none`), which proves the sibling sandbox
//! is reached from a bridged action container; its patch lands under /github/workspace.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::{docker, engine_or_skip, git_image, labelled_networks, static_binary};
use common::fake_github::{Config, FakeGithub};
use common::{git, git_repo, result_json};

const EVENT: &str = include_str!("fixtures/github-events/issues.labeled.payload.json");
const GITHUB_TOKEN: &str = "ghs_fake_token_for_the_test";
const LLM_KEY: &str = "sk-fake-llm-key-for-the-test";

/// The image built from ./Dockerfile, removed when dropped.
struct ActionImage {
    tag: String,
}

impl ActionImage {
    /// `docker build -f Dockerfile` as the release builds it: this checkout's static binary as
    /// `prebuilt/amd64/sandcrab` with `TARGETARCH=amd64` (what BuildKit sets per platform), the
    /// busybox test image as the build stage and the git test image as the runtime base.
    fn build(test: &str) -> Self {
        let tag = format!("sandcrab-test-action:wtb-{test}-{}", std::process::id());
        common::docker::build_action_image(&static_binary(), &tag);
        ActionImage { tag }
    }
}

impl Drop for ActionImage {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.tag]);
    }
}

/// The host directories GitHub's runner mounts into a container action.
struct RunnerDirs {
    workspace: tempfile::TempDir,
    home: tempfile::TempDir,
    workflow: tempfile::TempDir,
    file_commands: tempfile::TempDir,
}

impl RunnerDirs {
    /// The calc example checked out in the workspace, the event payload in the workflow dir,
    /// the scripted model in home (not in the checkout: it would be part of the patch).
    fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let (calc, test) = (read("calc/calc.sh"), read("calc/test.sh"));
        let dirs = RunnerDirs {
            workspace: git_repo(&[("calc.sh", &calc), ("test.sh", &test)]),
            home: tempfile::tempdir().unwrap(),
            workflow: tempfile::tempdir().unwrap(),
            file_commands: tempfile::tempdir().unwrap(),
        };
        // First the agent prints its environment: the action's secrets must not be in it.
        let script = format!(
            "- tool: terminal\n  args: {{command: env}}\n{}",
            read("calc-fix.yaml")
        );
        std::fs::write(dirs.home.path().join("model.yaml"), script).unwrap();
        std::fs::write(dirs.workflow.path().join("event.json"), EVENT).unwrap();
        for file in ["set_output_b1e1", "step_summary_b1e1", "set_env_b1e1"] {
            std::fs::write(dirs.file_commands.path().join(file), "").unwrap();
        }
        dirs
    }

    fn volumes(&self) -> Vec<String> {
        let mount = |host: &Path, inside: &str| format!("{}:{inside}", host.display());
        vec![
            "/var/run/docker.sock:/var/run/docker.sock".into(),
            mount(self.workspace.path(), "/github/workspace"),
            mount(self.home.path(), "/github/home"),
            mount(self.workflow.path(), "/github/workflow"),
            mount(self.file_commands.path(), "/github/file_commands"),
        ]
    }

    /// A bare clone of the checkout in home, as the checkout's `origin` (the container's path).
    fn add_origin(&self) {
        let bare = self.origin();
        let workspace = self.workspace.path().to_str().unwrap();
        git(
            self.home.path(),
            &["clone", "-q", "--bare", workspace, bare.to_str().unwrap()],
        );
        git(
            self.workspace.path(),
            &["remote", "add", "origin", "/github/home/origin.git"],
        );
    }

    fn origin(&self) -> PathBuf {
        self.home.path().join("origin.git")
    }

    fn out(&self) -> PathBuf {
        self.workspace.path().join("sandcrab-out")
    }
}

/// What GitHub's runner sets for a container action on an `issues` event.
fn github_env() -> Vec<(&'static str, String)> {
    [
        ("GITHUB_ACTIONS", "true"),
        ("CI", "true"),
        ("HOME", "/github/home"),
        ("GITHUB_EVENT_NAME", "issues"),
        ("GITHUB_EVENT_PATH", "/github/workflow/event.json"),
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("GITHUB_OUTPUT", "/github/file_commands/set_output_b1e1"),
        ("GITHUB_ENV", "/github/file_commands/set_env_b1e1"),
        (
            "GITHUB_STEP_SUMMARY",
            "/github/file_commands/step_summary_b1e1",
        ),
        ("GITHUB_REPOSITORY", "Codertocat/Hello-World"),
        ("GITHUB_ACTOR", "Codertocat"),
        ("GITHUB_RUN_ID", "1"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_API_URL", "https://api.github.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// The inputs, as the runner passes them: `INPUT_` + the name upper-cased, hyphens kept.
fn inputs(sandbox_image: &str) -> Vec<(String, String)> {
    [
        (
            "prompt",
            "Fix the sub operation of calc.sh; sh test.sh must pass.",
        ),
        ("mode", "resolve"),
        ("label", "bug"),
        ("workspace", "docker"),
        ("image", sandbox_image),
        ("model", "scripted:/github/home/model.yaml"),
        ("github-token", GITHUB_TOKEN),
        ("llm-api-key", LLM_KEY),
        ("max-iterations", "20"),
        ("branch-prefix", "sandcrab/"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("INPUT_{}", k.to_uppercase()), v.to_string()))
    .collect()
}

/// The plain run (no GitHub flow): the same settings in the variables the binary reads.
fn platform_independent_env(sandbox_image: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SANDCRAB_CI_PLATFORM", "none".into()),
        (
            "SANDCRAB_PROMPT",
            "Fix the sub operation of calc.sh; sh test.sh must pass.".into(),
        ),
        ("SANDCRAB_WORKSPACE", "docker".into()),
        ("SANDCRAB_IMAGE", sandbox_image.into()),
        ("SANDCRAB_MODEL", "scripted:/github/home/model.yaml".into()),
        ("SANDCRAB_MAX_ITERATIONS", "20".into()),
    ]
}

/// `docker run` as the runner does it; `network` as `--network` (the runner gives the job's
/// network when the job has services); `args` go after the image (the action's `runs.args`).
fn run_like_github(
    image: &str,
    network: Option<&str>,
    dirs: &RunnerDirs,
    env: &[(String, String)],
    args: &[&str],
) -> common::Run {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--workdir", "/github/workspace"]);
    if let Some(network) = network {
        cmd.args(["--network", network]);
    }
    cmd.args(["--label", "sandcrab.test=action_image"]);
    for volume in dirs.volumes() {
        cmd.args(["-v", &volume]);
    }
    for (name, value) in env {
        cmd.arg("-e").arg(format!("{name}={value}"));
    }
    cmd.arg(image).args(args);
    common::run(&mut cmd)
}

fn labelled_containers(label: &str) -> Vec<String> {
    let out = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
    out.lines().map(String::from).collect()
}

/// Runs the task through the action's image on `network` (with `github` the GitHub flow
/// against the fake, else the plain run); checks the patch and the cleanup.
fn run_the_task(network: Option<&str>, test: &str, github: Option<&FakeGithub>) -> RunnerDirs {
    let image = ActionImage::build(test);
    let dirs = RunnerDirs::new();
    let sandbox_label = format!(
        "sandcrab.test.run=action-image-{test}-{}",
        std::process::id()
    );
    let mut env: Vec<(String, String)> = github_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    match github {
        Some(fake) => {
            dirs.add_origin();
            env.retain(|(k, _)| k != "GITHUB_API_URL");
            env.push(("GITHUB_API_URL".into(), fake.url()));
        }
        None => env.extend(
            platform_independent_env(git_image())
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        ),
    }
    env.extend(inputs(git_image()));
    let args = ["--label", sandbox_label.as_str()];
    let r = run_like_github(&image.tag, network, &dirs, &env, &args);

    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let patch = std::fs::read_to_string(dirs.out().join("changes.patch"))
        .unwrap_or_else(|e| panic!("no patch under /github/workspace ({e}): {}", r.stderr));
    assert!(patch.contains("+  sub) echo $((a - b)) ;;"), "{patch}");
    let result = result_json(&dirs.out());
    assert_eq!(result["status"], "finished", "{result}");
    assert_eq!(result["workspace"]["kind"], "docker", "a sibling sandbox");
    assert!(
        labelled_containers(&sandbox_label).is_empty(),
        "the sandbox is removed"
    );
    assert!(
        labelled_networks(&sandbox_label).is_empty(),
        "its network is removed"
    );
    secrets_stay_in_the_action_container(&dirs);
    dirs
}

/// The agent ran `env` in the sandbox: its output is in the trajectory, without the inputs'
/// secrets or any `INPUT_*`/`GITHUB_*` variable; no output file holds a secret.
fn secrets_stay_in_the_action_container(dirs: &RunnerDirs) {
    let events = common::trajectory(&dirs.out());
    let env_output = common::kinds(&events, "ObservationEvent")
        .into_iter()
        .map(|e| e.to_string())
        .find(|e| e.contains("PATH="))
        .expect("the agent's `env` output is in the trajectory");
    for name in ["INPUT_", "GITHUB_", "ACTIONS_"] {
        assert!(
            !env_output.contains(name),
            "{name} reached the sandbox: {env_output}"
        );
    }
    for entry in std::fs::read_dir(dirs.out()).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for secret in [GITHUB_TOKEN, LLM_KEY] {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
    }
}

/// The runner's default: the action container on the default bridge; sandcrab joins the
/// sandbox's internal network from there (the plain run: a fake GitHub on the host's loopback
/// is not reachable from a bridged container).
#[test]
fn the_action_image_runs_a_task_in_a_sibling_sandbox_like_githubs_runner() {
    if engine_or_skip() {
        run_the_task(None, "bridge", None);
    }
}

/// `--network host` with a fake GitHub on the host's loopback: the whole GitHub flow from the
/// real `issues.labeled` payload, as the runner runs the action.
#[test]
fn the_action_image_runs_the_github_flow_on_the_host_network() {
    if !engine_or_skip() {
        return;
    }
    let fake = FakeGithub::start(Config {
        permissions: [("Codertocat".to_string(), "admin".to_string())].into(),
        ..Config::default()
    });
    let dirs = run_the_task(Some("host"), "host", Some(&fake));
    let repo = "/repos/Codertocat/Hello-World";
    assert_eq!(
        fake.matching("GET", "/collaborators/Codertocat/permission")
            .len(),
        1,
        "the sender's permission is checked"
    );
    let created = fake.matching("POST", &format!("{repo}/issues/1/comments"));
    assert_eq!(created.len(), 1, "one progress comment on issue 1");
    assert!(
        !fake.matching("PATCH", "").is_empty(),
        "the comment is edited in place"
    );
    let pulls = fake.matching("POST", "/pulls");
    assert_eq!(pulls.len(), 1, "one pull request");
    let pr = pulls[0].body.to_string();
    assert!(
        pr.contains("\"draft\":true") && pr.contains("Fixes #1"),
        "{pr}"
    );
    let branches = git(&dirs.origin(), &["branch", "--list", "sandcrab/*"]);
    assert!(
        branches.contains("sandcrab/1-"),
        "branch pushed: {branches}"
    );
    let outputs =
        std::fs::read_to_string(dirs.file_commands.path().join("set_output_b1e1")).unwrap();
    for name in [
        "conclusion",
        "branch",
        "pr-url",
        "comment-url",
        "result-file",
    ] {
        assert!(outputs.contains(name), "{name} in GITHUB_OUTPUT: {outputs}");
    }
    let summary =
        std::fs::read_to_string(dirs.file_commands.path().join("step_summary_b1e1")).unwrap();
    assert!(summary.contains("calc.sh"), "{summary}");
    for request in fake.requests() {
        let body = request.raw;
        for secret in [GITHUB_TOKEN, LLM_KEY] {
            assert!(!body.contains(secret), "{secret} sent to GitHub: {body}");
        }
    }
}
