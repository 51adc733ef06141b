//! The minimum supported Rust version, checked without a second toolchain (this machine can
//! install only its own): every package of the locked graph must declare a `rust-version` no
//! newer than sandcrab's, or sandcrab's claim is false. Our own use of the standard library is
//! held to the same version by clippy's `incompatible_msrv` lint (on by default; `.ci/run` runs
//! clippy with `-D warnings`), which reads `rust-version` from Cargo.toml.

use std::process::Command;

use serde_json::Value;

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_sandcrab_declares() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|p| p["name"] == "sandcrab")
        .and_then(|p| p["rust_version"].as_str())
        .expect("Cargo.toml declares rust-version");
    let floor = version(ours);
    let newer: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            let (name, at) = (p["name"].as_str()?, p["version"].as_str()?);
            (version(needs) > floor).then(|| format!("{name} {at} needs {needs}"))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version = \"{ours}\" is not true of the locked dependencies: {newer:?}; raise \
         rust-version or pin those crates to versions that build on {ours}"
    );
}

#[test]
fn versions_compare_by_number() {
    assert!(version("1.89.0") > version("1.88"));
    assert!(version("1.100") > version("1.99.9"));
    assert_eq!(version("1.88"), version("1.88.0"));
}

/// `1.88` / `1.88.0` → (1, 88, 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}
