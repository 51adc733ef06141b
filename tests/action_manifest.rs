//! action.yml against what the binary reads: every input the action declares is one the binary
//! reads (as `INPUT_<NAME>`, hyphens kept) and the other way round; each input says what it
//! does and has a default it documents; the outputs are the ones the run writes; the image's
//! entrypoint is `sandcrab run` in exec form.
//!
//! [`INPUTS_THE_BINARY_READS`] is the list src/config/ci.rs exports (and asserts on each read);
//! the outputs and the values of `conclusion` are the code's own enums
//! (`sandcrab::ci::github::outputs`), which are the only way the run writes an output. The
//! README's inputs table, its output lists and action.yml must say the same, both ways.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

/// The inputs `sandcrab run` reads in a GitHub Action, as the CI configuration declares them.
pub const INPUTS_THE_BINARY_READS: &[&str] = sandcrab::config::ci::ACTION_INPUTS;

use sandcrab::ci::github::outputs::{Conclusion, Output};

/// The outputs the run writes to GITHUB_OUTPUT.
fn outputs_the_binary_writes() -> BTreeSet<String> {
    Output::ALL.iter().map(|o| o.name().to_string()).collect()
}

/// The values the run writes as `conclusion`.
fn conclusions() -> BTreeSet<String> {
    Conclusion::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// The `backticked` words of `text`.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The README's GitHub Actions section.
fn actions_section() -> String {
    let readme = repo_file("README.md");
    let section = readme
        .split("## Use it in GitHub Actions")
        .nth(1)
        .expect("README has the GitHub Actions section");
    section.split("\n## ").next().unwrap().to_string()
}

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
    assert_eq!(declared, outputs_the_binary_writes());
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
fn the_readme_inputs_table_is_action_yml_inputs() {
    let section = actions_section();
    let table = section
        .split("| input | default | meaning |")
        .nth(1)
        .expect("the inputs table");
    let rows = table.lines().skip(2).take_while(|l| l.starts_with('|'));
    let listed: BTreeSet<String> = rows
        .flat_map(|row| backticked(row.split('|').nth(1).unwrap_or("")))
        .collect();
    let declared = keys(&manifest()["inputs"]);
    assert_eq!(
        listed, declared,
        "README's inputs table (left) against action.yml's inputs (right)"
    );
}

#[test]
fn the_readme_outputs_and_conclusions_are_the_codes() {
    let section = actions_section();
    let outputs_line = section
        .split("\nOutputs: ")
        .nth(1)
        .expect("an `Outputs:` line under the inputs table");
    let outputs_line = outputs_line.split("\n\n").next().unwrap();
    let conclusion_values = |text: &str| {
        let after = text
            .split("`conclusion` (")
            .nth(1)
            .expect("`conclusion` (values...)");
        backticked(after.split(')').next().unwrap())
    };
    assert_eq!(conclusion_values(outputs_line), conclusions());
    let names: BTreeSet<String> = backticked(outputs_line)
        .difference(&conclusions())
        .cloned()
        .collect();
    assert_eq!(names, outputs_the_binary_writes(), "the Outputs: line");
    let readme = repo_file("README.md");
    let paragraph = readme
        .split("**Outputs** (`GITHUB_OUTPUT`): ")
        .nth(1)
        .expect("the Outputs paragraph");
    let paragraph = paragraph.split("\n\n").next().unwrap();
    assert_eq!(conclusion_values(paragraph), conclusions());
    for name in outputs_the_binary_writes() {
        assert!(
            paragraph.contains(&format!("`{name}`")),
            "the Outputs paragraph leaves out `{name}`"
        );
    }
}

#[test]
fn action_yml_lists_the_conclusions_the_code_writes() {
    let description = manifest()["outputs"]["conclusion"]["description"]
        .as_str()
        .unwrap()
        .to_string();
    let list = description
        .split("One of: ")
        .nth(1)
        .expect("the description says `One of: a, b, c.`");
    let listed: BTreeSet<String> = list
        .split('.')
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.trim().to_string())
        .collect();
    assert_eq!(listed, conclusions());
}

#[test]
fn enumerated_inputs_name_every_value_the_binary_accepts() {
    use clap::ValueEnum;
    let manifest = manifest();
    let described = |input: &str| {
        manifest["inputs"][input]["description"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let names = |variants: Vec<Option<clap::builder::PossibleValue>>| -> Vec<String> {
        variants
            .into_iter()
            .flatten()
            .map(|p| p.get_name().to_string())
            .collect()
    };
    let modes = names(
        sandcrab::config::ci::Mode::value_variants()
            .iter()
            .map(|v| v.to_possible_value())
            .collect(),
    );
    let requirements = names(
        sandcrab::config::RunnerRequirements::value_variants()
            .iter()
            .map(|v| v.to_possible_value())
            .collect(),
    );
    for (input, values) in [("mode", modes), ("runner-requirements", requirements)] {
        for value in values {
            assert!(
                described(input).contains(&value),
                "action.yml's {input} does not describe '{value}'"
            );
        }
    }
    let bots = described("allow-bots");
    for value in ["'true'", "'*'", "'false'", "logins"] {
        assert!(
            bots.contains(value),
            "allow-bots does not describe {value}: {bots}"
        );
    }
    assert!(
        described("allowed-users").contains("narrows"),
        "allowed-users narrows the users with write access, and says so"
    );
}
