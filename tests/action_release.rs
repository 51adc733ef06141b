//! What a release ships and what users pin: the action pulls the released image (never builds),
//! its tag is Cargo.toml's version (one `.ci/bump` moves both), the development action is the
//! released one built from ./Dockerfile with the same inputs and outputs, and the Dockerfile takes
//! the release's per-architecture binaries.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

fn yaml(name: &str) -> Value {
    serde_yaml::from_str(&repo_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_action_pulls_the_image_of_this_version() {
    let image = yaml("action.yml")["runs"]["image"].clone();
    let image = image.as_str().expect("runs.image is a string");
    let version = env!("CARGO_PKG_VERSION");
    let (name, tag) = image
        .strip_prefix("docker://")
        .and_then(|r| r.rsplit_once(':'))
        .unwrap_or_else(|| panic!("runs.image is a docker:// reference with a tag: {image}"));
    assert!(
        name.starts_with("ghcr.io/") && name == name.to_lowercase() && name.ends_with("/sandcrab"),
        "a lower-case ghcr.io name (GHCR refuses capitals): {name}"
    );
    assert_eq!(
        tag, version,
        "action.yml pulls {tag} but Cargo.toml is {version}: run .ci/bump {version}"
    );
}

#[test]
fn the_bump_check_agrees_and_refuses_a_mismatch() {
    let bump = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/bump");
    let ok = Command::new(&bump).arg("--check").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = Command::new(&bump)
        .args(["--check", "99.0.0"])
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "a tag that is not the version passes"
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("run .ci/bump 99.0.0"));
}

#[test]
fn the_bump_moves_cargo_toml_and_action_yml_together() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    for f in ["Cargo.toml", "Cargo.lock", "action.yml"] {
        std::fs::copy(root.join(f), copy.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(copy.path().join(".ci")).unwrap();
    std::fs::create_dir_all(copy.path().join("src")).unwrap();
    std::fs::write(copy.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::copy(root.join(".ci/bump"), copy.path().join(".ci/bump")).unwrap();
    let out = Command::new(copy.path().join(".ci/bump"))
        .arg("7.8.9")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cargo = std::fs::read_to_string(copy.path().join("Cargo.toml")).unwrap();
    let action = std::fs::read_to_string(copy.path().join("action.yml")).unwrap();
    assert!(cargo.contains("\nversion = \"7.8.9\"\n"), "{cargo}");
    assert!(
        action.contains("/sandcrab:7.8.9\n"),
        "action.yml not bumped"
    );
    let lock = std::fs::read_to_string(copy.path().join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"sandcrab\"\nversion = \"7.8.9\""),
        "Cargo.lock not bumped"
    );
}

#[test]
fn the_dev_action_is_the_released_one_built_from_source() {
    let released = yaml("action.yml");
    let dev = yaml(".github/actions/dev/action.yml");
    assert_eq!(
        dev["inputs"], released["inputs"],
        "the dev action's inputs differ from action.yml's: run .ci/dev-action"
    );
    assert_eq!(
        dev["outputs"], released["outputs"],
        "the dev action's outputs differ from action.yml's: run .ci/dev-action"
    );
    assert_eq!(dev["runs"]["using"], "docker");
    // Relative to the metadata file; the runner builds with the Dockerfile's folder (the
    // repository root) as the context.
    assert_eq!(dev["runs"]["image"], "../../../Dockerfile");
    let dockerfile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/actions/dev/../../../Dockerfile");
    assert!(dockerfile.is_file());
}

#[test]
fn the_dockerfile_takes_each_platforms_prebuilt_binary() {
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains("ARG TARGETARCH"));
    assert!(dockerfile.contains("prebuilt/${TARGETARCH}/sandcrab"));
    // The release workflow lays the binaries out that way.
    let release = repo_file(".github/workflows/release.yml");
    assert!(release.contains("prebuilt/${ARCH}/sandcrab"));
    assert!(release.contains("platforms: linux/amd64,linux/arm64"));
}
