//! `ApptainerWorkspace` through a stand-in `apptainer` (tests/common/apptainer_standin.rs)
//! that records its arguments and runs the static agent-server in new mount and PID
//! namespaces: the command lines (`build`, `exec --containall --no-home --env-file`, binds),
//! SIF reuse, secrets kept off the command line, the copied repository, and that the process
//! group is gone after close, drop and a signal to `sandcrab run`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::apptainer_standin::{group_alive, processes_with, Standin};
use sandcrab::workspace::{
    ApptainerOptions, ApptainerWorkspace, ExecRequest, SifSource, Workspace, WorkspaceError,
};

fn options(standin: &Standin, source: SifSource, workdir: &Path) -> ApptainerOptions {
    let mut opts = ApptainerOptions::new(source, common::docker::static_binary());
    opts.program = standin.program();
    opts.cache_dir = standin.dir.path().join("cache");
    opts.workdir = workdir.display().to_string();
    opts.start_timeout = Duration::from_secs(30);
    opts
}

fn sif_file(dir: &Path) -> std::path::PathBuf {
    let sif = dir.join("image.sif");
    std::fs::write(&sif, "a SIF").unwrap();
    sif
}

/// A workspace from a SIF file in the stand-in's directory, with nothing copied in.
async fn start_with_sif(standin: &Standin, workdir: &Path) -> ApptainerWorkspace {
    let sif = sif_file(standin.dir.path());
    ApptainerWorkspace::start(options(standin, SifSource::File(sif), workdir), None)
        .await
        .unwrap()
}

/// What the agent-server's command line holds when its working directory is `workdir`.
fn server_cmdline(workdir: &Path) -> String {
    format!(
        "serve --host 127.0.0.1 --port 0 --working-dir {}",
        workdir.display()
    )
}

#[tokio::test]
async fn exec_contains_the_server_binds_the_copy_and_close_ends_the_group() {
    let standin = Standin::new();
    let repo = common::git_repo(&[("a.txt", "alpha\n")]);
    let workdir = tempfile::tempdir().unwrap();
    let sif = sif_file(standin.dir.path());
    let mut opts = options(&standin, SifSource::File(sif.clone()), workdir.path());
    opts.env = vec![("FORWARDED".into(), "it's here".into())];
    opts.binds = vec![format!("{}:/data:ro", standin.dir.path().display())];
    let ws = ApptainerWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();

    let args = &standin.invocations()[0];
    let scratch = ws.scratch_dir().display().to_string();
    let binary = common::docker::static_binary().display().to_string();
    let expected: Vec<String> = [
        "exec",
        "--containall",
        "--no-home",
        "--env-file",
        &format!("{scratch}/env"),
        "--bind",
        &format!("{binary}:/.sandcrab/sandcrab:ro"),
        "--bind",
        &format!("{scratch}/workspace:{}", workdir.path().display()),
        "--bind",
        &format!("{scratch}/conversations:/.sandcrab/conversations"),
        "--bind",
        &format!("{}:/data:ro", standin.dir.path().display()),
        &sif.display().to_string(),
        "/.sandcrab/sandcrab",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--working-dir",
        &workdir.path().display().to_string(),
        "--conversations-dir",
        "/.sandcrab/conversations",
        "--idle-timeout-minutes",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(args, &expected);
    let key = ws.remote().api().api_key().unwrap().to_string();
    assert!(
        !args.iter().any(|a| a.contains(&key)),
        "the session key is not on the command line"
    );
    let env = standin.env_file(0).unwrap();
    assert!(env.contains(&format!("SESSION_API_KEY='{key}'")), "{env}");
    assert!(env.contains(r"FORWARDED='it'\''s here'"), "{env}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ws.scratch_dir().join("env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the env file is owner-only");

    let out = ws
        .execute(ExecRequest::new(
            "cat a.txt; echo \"$FORWARDED\"; echo ${HOME:-no home}",
        ))
        .await
        .unwrap();
    assert_eq!(out.stdout, "alpha\nit's here\nno home\n", "{out:?}");
    ws.execute(ExecRequest::new("echo new > b.txt"))
        .await
        .unwrap();
    assert!(
        ws.scratch_dir().join("workspace/b.txt").exists(),
        "the work lands in the bound scratch copy"
    );
    assert!(
        !workdir.path().join("b.txt").exists(),
        "not in the host's directory of that name"
    );
    assert!(
        !repo.path().join("b.txt").exists(),
        "not in the original repository"
    );

    ws.execute(ExecRequest::new("sleep 3011 >/dev/null 2>&1 &"))
        .await
        .unwrap();
    assert_eq!(processes_with("sleep 3011").len(), 1);
    let (pgid, scratch) = (ws.process_group(), ws.scratch_dir().to_path_buf());
    ws.close().await.unwrap();
    assert!(!group_alive(pgid), "the process group is gone");
    assert!(
        processes_with("sleep 3011").is_empty(),
        "commands started in the container are gone"
    );
    assert!(!scratch.exists(), "the scratch copy is removed");
}

#[tokio::test]
async fn an_image_is_built_into_the_cache_once_and_reused() {
    let standin = Standin::new();
    let workdir = tempfile::tempdir().unwrap();
    let source = SifSource::Image("docker-daemon://sandcrab/test:1".into());
    let first = ApptainerWorkspace::start(options(&standin, source.clone(), workdir.path()), None)
        .await
        .unwrap();
    first.close().await.unwrap();
    let calls = standin.invocations();
    assert_eq!(calls[0][0], "build");
    assert!(
        calls[0][1].starts_with(&format!(
            "{}/cache/sandcrab_test_1.sif",
            standin.dir.path().display()
        )),
        "{:?}",
        calls[0]
    );
    assert_eq!(calls[0][2], "docker-daemon://sandcrab/test:1");
    let sif = standin.dir.path().join("cache/sandcrab_test_1.sif");
    assert!(
        calls[1].contains(&sif.display().to_string()),
        "{:?}",
        calls[1]
    );

    let plain = SifSource::Image("ghcr.io/org/img:2".into());
    let second = ApptainerWorkspace::start(options(&standin, plain, workdir.path()), None)
        .await
        .unwrap();
    drop(second);
    let again = ApptainerWorkspace::start(options(&standin, source, workdir.path()), None)
        .await
        .unwrap();
    again.close().await.unwrap();
    let calls = standin.invocations();
    let builds: Vec<_> = calls
        .iter()
        .filter(|c| c[0] == "build")
        .map(|c| c[2].clone())
        .collect();
    assert_eq!(
        builds,
        [
            "docker-daemon://sandcrab/test:1",
            "docker://ghcr.io/org/img:2"
        ],
        "the first SIF was reused"
    );
}

#[tokio::test]
async fn dropping_ends_the_group_and_pause_is_unsupported() {
    let standin = Standin::new();
    let workdir = tempfile::tempdir().unwrap();
    let ws = start_with_sif(&standin, workdir.path()).await;
    assert!(matches!(
        ws.pause().await,
        Err(WorkspaceError::Unsupported { .. })
    ));
    ws.execute(ExecRequest::new("sleep 3012 >/dev/null 2>&1 &"))
        .await
        .unwrap();
    let pgid = ws.process_group();
    drop(ws);
    assert!(!group_alive(pgid));
    assert!(processes_with("sleep 3012").is_empty());
}

#[tokio::test]
async fn a_missing_sif_or_program_is_one_line_saying_what_to_do() {
    let standin = Standin::new();
    let workdir = tempfile::tempdir().unwrap();
    let missing = SifSource::File(standin.dir.path().join("nope.sif"));
    let text = ApptainerWorkspace::start(options(&standin, missing, workdir.path()), None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        text.contains("does not exist") && text.contains("--apptainer-sif"),
        "{text}"
    );
    let mut opts = options(&standin, SifSource::Image("img".into()), workdir.path());
    opts.program = "/nonexistent/apptainer".into();
    let text = ApptainerWorkspace::start(opts, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(text.contains("install Apptainer"), "{text}");
}

#[test]
fn sandcrab_run_in_apptainer_relays_the_key_and_a_second_signal_cleans_up() {
    let standin = Standin::new();
    let llm = common::FakeLlm::start(common::terminal_steps(2, Duration::ZERO));
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let sif = sif_file(dir.path());
    let run_cmd = |out: &Path, llm_url: &str| {
        apptainer_run(&standin, &sif, dir.path(), repo.path(), out, llm_url)
    };
    let run = common::run(&mut run_cmd(&dir.path().join("out"), &llm.openai_url()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let result = common::result_json(&dir.path().join("out"));
    assert_eq!(result["workspace"]["kind"], "apptainer");
    let calls = llm.recorded();
    assert_eq!(calls.len(), 3);
    let auth = calls[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(
        auth.as_deref(),
        Some("Bearer real-llm-key-42"),
        "the relay adds the real key"
    );
    let args = standin.invocations()[0].join(" ");
    let env = standin.env_file(0).unwrap();
    assert!(
        !args.contains("real-llm-key-42") && !env.contains("real-llm-key-42"),
        "the key never enters the container"
    );

    let out2 = dir.path().join("out2");
    let slow = common::FakeLlm::start(common::terminal_steps(50, Duration::from_millis(300)));
    let mut cmd = run_cmd(&out2, &slow.openai_url());
    cmd.stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    while slow.recorded().len() < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the second run ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let needle = server_cmdline(dir.path());
    assert!(!processes_with(&needle).is_empty(), "the container runs");
    for _ in 0..2 {
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !processes_with(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container outlived the run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sandcrab run --workspace apptainer` through the stand-in, the container's working
/// directory at `workdir`, a model at `llm_url` reached through the relay.
fn apptainer_run(
    standin: &Standin,
    sif: &Path,
    workdir: &Path,
    repo: &Path,
    out: &Path,
    llm_url: &str,
) -> std::process::Command {
    let mut cmd = common::sandcrab();
    cmd.args([
        "run",
        "--workspace",
        "apptainer",
        "--model",
        "openai/fake",
        "--llm-api-key",
        "real-llm-key-42",
    ])
    .args(["--llm-base-url", llm_url, "--prompt", "two steps"])
    .arg("--apptainer-sif")
    .arg(sif)
    .arg("--apptainer-program")
    .arg(standin.program())
    .arg("--sandbox-binary")
    .arg(common::docker::static_binary())
    .arg("--sandbox-workdir")
    .arg(workdir)
    .arg("--repo-dir")
    .arg(repo)
    .arg("--out")
    .arg(out);
    cmd
}

#[test]
fn a_container_killed_mid_run_ends_the_run_at_once_with_what_happened() {
    let standin = Standin::new();
    let llm = common::FakeLlm::start(common::terminal_steps(100, Duration::from_millis(200)));
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let sif = sif_file(dir.path());
    let out = dir.path().join("out");
    let mut cmd = apptainer_run(
        &standin,
        &sif,
        dir.path(),
        repo.path(),
        &out,
        &llm.openai_url(),
    );
    let running = common::Running::spawn(&mut cmd);
    common::wait_until("three model calls", Duration::from_secs(120), || {
        llm.recorded().len() >= 3
    });
    let needle = server_cmdline(dir.path());
    let servers = processes_with(&needle);
    assert!(!servers.is_empty(), "the container runs");
    for pid in servers {
        // SAFETY: the agent-server this test's run started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let r = running.finish();
    assert_eq!(r.code, 1, "the run failed: {}", r.stderr);
    let result = common::result_json(&out);
    let error = result["error"].as_str().unwrap();
    // From the container's process, at the first failed polls: not after the minute of
    // retries an unreachable agent-server gets.
    assert!(error.contains("apptainer: the container ended"), "{error}");
    assert!(r.stderr.matches("retrying").count() <= 2, "{}", r.stderr);
    assert!(out.join("changes.patch").exists());
}

#[tokio::test]
async fn a_running_container_has_not_stopped_and_a_killed_one_has() {
    let standin = Standin::new();
    let workdir = tempfile::tempdir().unwrap();
    let ws = start_with_sif(&standin, workdir.path()).await;
    assert!(ws.stopped().await.is_none(), "it runs");
    // SAFETY: the process group of the container this test started.
    unsafe { libc::kill(-ws.process_group(), libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let gone = loop {
        if let Some(e) = ws.stopped().await {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "not seen as stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(matches!(gone, WorkspaceError::SandboxGone(_)), "{gone:?}");
    assert!(gone.to_string().contains("signal: 9"), "{gone}");
}
