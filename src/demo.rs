//! The bundled example (`--demo`): the `examples/calc` project with its `sub` bug, the task and
//! the scripted model run that fixes it, embedded in the binary and written to a temporary git
//! repository, so a newcomer sees a whole run with no API key and no network.

use std::path::Path;
use std::process::Command;

use crate::error::BadInput;

/// The model string `--demo` uses when no `--model` is given.
pub const MODEL: &str = "scripted:demo";

pub const TASK: &str = include_str!("../examples/calc-task.md");
pub const SCRIPT: &str = include_str!("../examples/calc-fix.yaml");

const FILES: &[(&str, &str)] = &[
    ("calc.sh", include_str!("../examples/calc/calc.sh")),
    ("test.sh", include_str!("../examples/calc/test.sh")),
    ("README.md", include_str!("../examples/calc/README.md")),
];

/// A temporary copy of the example as a git repository with one commit; removed on drop.
pub struct DemoRepo {
    dir: tempfile::TempDir,
}

impl DemoRepo {
    pub fn create() -> Result<Self, BadInput> {
        let dir = tempfile::Builder::new()
            .prefix("sandcrab-demo-")
            .tempdir()
            .map_err(|e| BadInput::new(format!("cannot create the demo repository: {e}")))?;
        let repo = DemoRepo { dir };
        for (name, text) in FILES {
            let path = repo.dir.path().join(name);
            std::fs::write(&path, text)
                .map_err(|e| BadInput::new(format!("cannot write {}: {e}", path.display())))?;
        }
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "-A"],
            &["commit", "-q", "-m", "calc: initial version"],
        ] {
            git(repo.dir.path(), args)?;
        }
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<(), BadInput> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=sandcrab demo",
            "-c",
            "user.email=demo@sandcrab.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| BadInput::new(format!("the demo needs git on PATH: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(BadInput::new(format!(
        "git {} failed in the demo repository: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
