//! The action's image end to end: ./Dockerfile built (from the static binary of this checkout,
//! on locally built bases: nothing is pulled) and run the way GitHub's runner runs a container
//! action: `--workdir /github/workspace`, the Docker socket, the `/github/*` mounts, the
//! variables GitHub sets and the inputs as `INPUT_<NAME>` with hyphens kept. The agent runs in
//! a sibling sandbox container started through the socket.
//!
//! Today the binary runs the platform-independent path (the `SANDCRAB_*` variables below
//! stand in for the inputs): the run finishes, the patch lands in the output folder under
//! /github/workspace, and no sandbox container or network is left. The GitHub flow (comment,
//! branch, pull request, GITHUB_OUTPUT, step summary, artifact upload) is asserted once the CI
//! core reads the inputs; see `github_flow_assertions_to_add`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::{docker, engine_or_skip, git_image, labelled_networks, static_binary};
use common::{git_repo, result_json};

const EVENT: &str = include_str!("fixtures/github-events/issues.labeled.payload.json");
const GITHUB_TOKEN: &str = "ghs_fake_token_for_the_test";
const LLM_KEY: &str = "sk-fake-llm-key-for-the-test";

/// The image built from ./Dockerfile, removed when dropped.
struct ActionImage {
    tag: String,
}

impl ActionImage {
    /// `docker build -f Dockerfile` with this checkout's static binary as `prebuilt/sandcrab`,
    /// the busybox test image as the build stage and the git test image as the runtime base.
    fn build(test: &str) -> Self {
        let tag = format!("sandcrab-test-action:wtb-{test}-{}", std::process::id());
        let ctx = tempfile::tempdir().unwrap();
        std::fs::create_dir(ctx.path().join("prebuilt")).unwrap();
        std::fs::copy(static_binary(), ctx.path().join("prebuilt/sandcrab")).unwrap();
        let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
        let builder = format!("BUILDER_IMAGE={}", common::docker::busybox_image());
        let runtime = format!("RUNTIME_IMAGE={}", git_image());
        let built = docker(&[
            "build",
            "-q",
            "-f",
            dockerfile.to_str().unwrap(),
            "--build-arg",
            &builder,
            "--build-arg",
            &runtime,
            "--label",
            "sandcrab.test=image",
            "-t",
            &tag,
            ctx.path().to_str().unwrap(),
        ]);
        built.expect("the action's Dockerfile builds");
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

/// Until the CI core reads the inputs, the same settings in the variables the binary reads.
fn platform_independent_env(sandbox_image: &str) -> Vec<(&'static str, String)> {
    vec![
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

/// Runs the task through the action's image on `network`; checks the patch and the cleanup.
fn run_the_task(network: Option<&str>, test: &str) {
    let image = ActionImage::build(test);
    let dirs = RunnerDirs::new();
    let sandbox_label = format!(
        "sandcrab.test.run=action-image-{test}-{}",
        std::process::id()
    );
    let mut env: Vec<(String, String)> = github_env()
        .into_iter()
        .chain(platform_independent_env(git_image()))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.extend(inputs(git_image()));
    let args = ["--label", sandbox_label.as_str()];
    let r = run_like_github(&image.tag, network, &dirs, &env, &args);

    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let patch = std::fs::read_to_string(dirs.out().join("changes.patch"))
        .expect("the patch is under /github/workspace");
    assert!(patch.contains("+  sub) echo $((a - b)) ;;"), "{patch}");
    let result = result_json(&dirs.out());
    assert_eq!(result["status"], "finished", "{result}");
    assert_eq!(result["workspace"]["kind"], "docker", "a sibling sandbox");
    assert_eq!(
        r.stdout.trim(),
        "sandcrab-out/result.json",
        "relative to the workdir"
    );
    assert!(
        labelled_containers(&sandbox_label).is_empty(),
        "the sandbox is removed"
    );
    assert!(
        labelled_networks(&sandbox_label).is_empty(),
        "its network is removed"
    );
    secrets_stay_in_the_action_container(&dirs);
    github_flow_assertions_to_add(&dirs);
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
/// sandbox's internal network from there.
#[test]
fn the_action_image_runs_a_task_in_a_sibling_sandbox_like_githubs_runner() {
    if engine_or_skip() {
        run_the_task(None, "bridge");
    }
}

/// `--network host`, as the GitHub-flow test needs (fakes on the host's loopback): the action
/// container reaches the sandbox as the host does, without joining its network.
#[test]
fn the_action_image_runs_on_the_host_network() {
    if engine_or_skip() {
        run_the_task(Some("host"), "host");
    }
}

/// What this test asserts once the CI core (events, comments, branch/PR, GITHUB_OUTPUT,
/// artifacts) is wired into `sandcrab run`. It then starts a fake GitHub API and the fake
/// artifact service (tests/fakes/artifact_service.rs) on the host's loopback, runs the action
/// container with `--network host` (see the test above; 127.0.0.1 in a bridged container is not the host's),
/// passes `GITHUB_API_URL`, `ACTIONS_RUNTIME_TOKEN` and `ACTIONS_RESULTS_URL` pointing at them,
/// drops the `SANDCRAB_*` stand-ins, and checks:
/// - the progress comment is created on issue 1 and updated with the final report;
/// - the branch `sandcrab/...` is pushed (to a bare repository given as the remote) and a draft
///   pull request opened against `main`;
/// - GITHUB_OUTPUT holds conclusion=finished, branch, pr-url, comment-url, cost, result-file;
/// - the step summary holds the report;
/// - the artifact is uploaded and finalized with the sha256 of the zip received;
/// - the token appears in no request body (but the `Authorization` headers) and no output.
fn github_flow_assertions_to_add(dirs: &RunnerDirs) {
    let output =
        std::fs::read_to_string(dirs.file_commands.path().join("set_output_b1e1")).unwrap();
    let token_leaked = output.contains(GITHUB_TOKEN);
    assert!(!token_leaked, "{output}");
}
