//! Awkward repositories through the local and Docker workspaces: binary files, latin-1 text,
//! non-UTF-8 file names and symlinks pointing outside the repository. The agent changes them;
//! the patch must rebuild exactly the agent's tree on a clean checkout, result.json must list
//! the files, and nothing outside the repository may end up in the outputs or the sandbox.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use common::docker::*;
use common::*;
use serde_json::{json, Value};

/// A file outside the repository whose content must never show up anywhere.
const OUTSIDE_CONTENT: &str = "HOST-ONLY-CONTENT-9f3a";

/// The awkward repository, with links to `outside` (a directory holding `host.txt`).
fn awkward_repo(outside: &Path) -> tempfile::TempDir {
    std::fs::write(outside.join("host.txt"), OUTSIDE_CONTENT).unwrap();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let dir = repo.path();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    std::fs::write(dir.join("blob.bin"), bytes).unwrap();
    std::fs::write(dir.join("latin1.txt"), b"caf\xe9\n").unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"r\xe9sum\xe9.txt")), "old\n").unwrap();
    std::os::unix::fs::symlink(outside, dir.join("outside-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("host.txt"), dir.join("outside-file")).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "awkward"]);
    repo
}

/// What the agent does: appends to the binary, latin-1 and non-UTF-8-named files, adds a new
/// link out of the repository, reads through a link, and finishes.
fn awkward_steps() -> Script {
    let steps = [
        "printf '\\001\\000\\377' >> blob.bin",
        "printf 'na\\357ve\\n' >> latin1.txt",
        "for f in r*sum*.txt; do echo new >> \"$f\"; done",
        "ln -s /etc/hostname new-link && cat outside-file; echo",
    ];
    Arc::new(move |_, body: &Value| {
        let done = tool_results(body);
        match steps.get(done) {
            Some(command) => Reply::ok(openai_call(
                done,
                "terminal",
                &json!({"command": command}).to_string(),
            )),
            None => Reply::ok(openai_call(done, "finish", "{\"message\": \"done\"}")),
        }
    })
}

/// The tree id of `dir`'s working tree (everything, untracked included), via a scratch index.
fn worktree_id(dir: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let index = scratch.path().join("index");
    let git_env = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_INDEX_FILE", &index)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git_env(&["add", "-A"]);
    git_env(&["write-tree"])
}

/// Applies `patch` to a fresh clone of `repo`'s first-run base (HEAD) and returns its tree id.
fn applied_tree(repo: &Path, patch: &Path) -> String {
    let clone = tempfile::tempdir().unwrap();
    let target = clone.path().join("c");
    git(repo, &["clone", "-q", ".", target.to_str().unwrap()]);
    git(&target, &["apply", "--binary", patch.to_str().unwrap()]);
    worktree_id(&target)
}

/// Checks the outputs of a run over the awkward repository whose final tree is `expected`.
fn check_outputs(out: &Path, expected_tree: &str, repo: &Path) {
    let result = result_json(out);
    assert_eq!(result["status"], "finished", "{result}");
    let patch = out.join("changes.patch");
    assert_eq!(
        applied_tree(repo, &patch),
        expected_tree,
        "the patch rebuilds the tree"
    );
    let files: Vec<&str> = result["changed_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    let blob = &result["changed_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "blob.bin")
        .unwrap()["binary"];
    assert_eq!(blob, &json!(true));
    assert!(files.contains(&"new-link"), "{files:?}");
    assert!(
        files.iter().any(|f| f.contains("sum")),
        "the non-UTF-8 name is listed: {files:?}"
    );
    let patch_text = String::from_utf8_lossy(&std::fs::read(&patch).unwrap()).into_owned();
    assert!(
        patch_text.contains("new file mode 120000") && patch_text.contains("+/etc/hostname"),
        "a link is stored as a link: {patch_text}"
    );
    for file in ["changes.patch", "result.json", "report.md"] {
        let text = String::from_utf8_lossy(&std::fs::read(out.join(file)).unwrap()).into_owned();
        assert!(
            !text.contains(OUTSIDE_CONTENT),
            "{file} holds a file from outside the repo"
        );
    }
}

#[test]
fn the_local_workspace_handles_binary_latin1_odd_names_and_outside_links() {
    let outside = tempfile::tempdir().unwrap();
    let repo = awkward_repo(outside.path());
    let llm = FakeLlm::start(awkward_steps());
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args(["run", "--model", "openai/scripted", "--llm-base-url"])
        .arg(llm.openai_url())
        .args(["--prompt", "go", "--repo-dir"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = worktree_id(repo.path());
    check_outputs(out.path(), &expected, repo.path());
    // The local workspace is no sandbox (README, Security): the agent reads through a link
    // out of the repository like any process of the user. Its output is in the trajectory.
    let trajectory = std::fs::read_to_string(out.path().join("trajectory.jsonl")).unwrap();
    assert!(trajectory.contains(OUTSIDE_CONTENT));
}

#[test]
fn the_docker_workspace_copies_odd_repos_in_and_out_and_links_stay_links() {
    if !engine_or_skip() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let repo = awkward_repo(outside.path());
    let llm = FakeLlm::start(awkward_steps());
    let out = tempfile::tempdir().unwrap();
    let label = format!("sandcrab.test.faults_repo={}", std::process::id());
    let r = run(sandcrab()
        .args(["run", "--workspace", "docker", "--image", git_image()])
        .args(["--label", &label, "--sandbox-binary"])
        .arg(static_binary())
        .args(["--model", "openai/scripted", "--llm-base-url"])
        .arg(llm.openai_url())
        .args(["--prompt", "go", "--repo-dir"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The agent worked on the sandbox's copy: apply its patch to our own checkout to get the
    // tree it made, then check that tree against the patch on another clean clone.
    let mine = tempfile::tempdir().unwrap();
    let target = mine.path().join("c");
    git(repo.path(), &["clone", "-q", ".", target.to_str().unwrap()]);
    git(
        &target,
        &[
            "apply",
            "--binary",
            out.path().join("changes.patch").to_str().unwrap(),
        ],
    );
    let expected = worktree_id(&target);
    check_outputs(out.path(), &expected, repo.path());
    // The link out of the repository went in as a link, not as the host file's content: in
    // the sandbox it points at a path that does not exist there.
    let trajectory = std::fs::read_to_string(out.path().join("trajectory.jsonl")).unwrap();
    assert!(
        !trajectory.contains(OUTSIDE_CONTENT),
        "a host file reached the sandbox"
    );
    assert!(trajectory.contains("No such file"), "{trajectory}");
    let left = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
    assert!(left.is_empty(), "the sandbox is removed");
}
