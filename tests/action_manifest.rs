//! action.yml against what the binary reads: every input the action declares is one the binary
//! reads (as `INPUT_<NAME>`, hyphens kept) and the other way round; each input says what it
//! does and has a default it documents; the outputs are the ones the run writes; the image's
//! entrypoint is `sandcrab run` in exec form.
//!
//! [`INPUTS_THE_BINARY_READS`] is the list src/config/ci.rs exports (and asserts on each read).

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

/// The inputs `sandcrab run` reads in a GitHub Action, as the CI configuration declares them.
pub const INPUTS_THE_BINARY_READS: &[&str] = sandcrab::config::ci::ACTION_INPUTS;

/// The outputs the run writes to GITHUB_OUTPUT.
pub const OUTPUTS_THE_BINARY_WRITES: &[&str] = &[
    "conclusion",
    "branch",
    "pr-url",
    "comment-url",
    "cost",
    "result-file",
];

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

fn manifest() -> Value {
    serde_yaml::from_str(&repo_file("action.yml")).expect("action.yml is YAML")
}

fn keys(mapping: &Value) -> BTreeSet<String> {
    let mapping = mapping.as_mapping().expect("a mapping");
    mapping
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_inputs_are_the_ones_the_binary_reads() {
    let declared = keys(&manifest()["inputs"]);
    let read: BTreeSet<String> = INPUTS_THE_BINARY_READS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let not_read: Vec<_> = declared.difference(&read).collect();
    let not_declared: Vec<_> = read.difference(&declared).collect();
    assert!(
        not_read.is_empty(),
        "declared in action.yml, read by nobody: {not_read:?}"
    );
    assert!(
        not_declared.is_empty(),
        "read by the binary, missing in action.yml: {not_declared:?}"
    );
}

#[test]
fn every_input_is_described_with_its_default() {
    let manifest = manifest();
    for (name, input) in manifest["inputs"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let description = input["description"].as_str().unwrap_or_default();
        assert!(description.len() > 20, "{name}: no real description");
        let default = input["default"].as_str();
        assert!(default.is_some(), "{name}: no default (write '' for none)");
        assert!(
            description.contains("Default") || description.contains("default"),
            "{name}: the description does not say its default"
        );
        assert!(
            !name.contains('_') && name == name.to_lowercase(),
            "{name}: inputs are kebab-case"
        );
    }
    let inputs = &manifest["inputs"];
    assert_eq!(inputs["github-token"]["default"], "${{ github.token }}");
    assert_eq!(inputs["trigger-phrase"]["default"], "@sandcrab");
    assert_eq!(inputs["branch-prefix"]["default"], "sandcrab/");
    assert_eq!(inputs["mode"]["default"], "auto");
    assert_eq!(inputs["runner-requirements"]["default"], "auto");
    for mode in ["auto", "resolve", "review", "ask"] {
        assert!(
            inputs["mode"]["description"]
                .as_str()
                .unwrap()
                .contains(mode),
            "mode {mode}"
        );
    }
}

#[test]
fn the_outputs_are_the_ones_the_run_writes() {
    let manifest = manifest();
    let declared = keys(&manifest["outputs"]);
    let written: BTreeSet<String> = OUTPUTS_THE_BINARY_WRITES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(declared, written);
    for (name, output) in manifest["outputs"].as_mapping().unwrap() {
        assert!(
            output["description"].as_str().is_some_and(|d| d.len() > 10),
            "{name:?}"
        );
    }
}

#[test]
fn the_image_runs_sandcrab_run_as_exec_entrypoint() {
    // The released image and the development action's are both built from ./Dockerfile
    // (tests/action_release.rs checks which image each action names).
    assert_eq!(manifest()["runs"]["using"], "docker");
    let dockerfile = repo_file("Dockerfile");
    let entrypoints: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("ENTRYPOINT"))
        .collect();
    assert_eq!(entrypoints.len(), 1, "{entrypoints:?}");
    let json = entrypoints[0].trim_start_matches("ENTRYPOINT").trim();
    let argv: Vec<String> = serde_json::from_str(json)
        .expect("exec form (a JSON array): inputs with hyphens survive no shell");
    assert_eq!(argv, ["/usr/local/bin/sandcrab", "run"]);
    assert!(
        !dockerfile.lines().any(|l| l.starts_with("CMD")),
        "no CMD: runs.args are the only arguments"
    );
}

#[test]
fn the_readme_lists_every_input_and_output() {
    let readme = repo_file("README.md");
    let section = readme
        .split("## Use it in GitHub Actions")
        .nth(1)
        .expect("README has the GitHub Actions section");
    for name in INPUTS_THE_BINARY_READS
        .iter()
        .chain(OUTPUTS_THE_BINARY_WRITES)
    {
        assert!(
            section.contains(&format!("`{name}`")),
            "README does not list `{name}`"
        );
    }
}
