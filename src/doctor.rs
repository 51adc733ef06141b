//! `sandcrab doctor`: checks what runs need on this machine (git, a Docker engine, a static
//! binary to copy into sandboxes) and, with `--sweep`, removes the containers and networks that
//! crashed runs left behind (everything labelled `sandcrab.managed=true`).

use std::process::Command;

use clap::Args;

use crate::error::ExitCode;
use crate::workspace::docker::{elf, engine, sweep};

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Remove every sandcrab-managed container and network on the Docker engine.
    #[arg(long)]
    pub sweep: bool,
}

/// Prints one line per check; exit 0 when everything a run may need is there, else 1.
pub async fn doctor(args: DoctorArgs) -> ExitCode {
    let mut ok = true;
    ok &= report("git", git_version());
    let engine = engine::connect().await;
    let docker_line = match &engine {
        Ok(docker) => docker
            .version()
            .await
            .map(|v| format!("Docker engine {}", v.version.unwrap_or_default()))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let docker_ok = report("docker", docker_line);
    ok &= docker_ok;
    // A dynamic binary only matters for --workspace docker: a warning, not a failure.
    if let Err(why) = this_binary_is_static() {
        println!("warn  sandbox binary: {why}");
    } else {
        report("sandbox binary", this_binary_is_static());
    }
    if args.sweep && docker_ok {
        ok &= report("sweep", sweep_line().await);
    }
    if ok {
        ExitCode::Finished
    } else {
        ExitCode::AgentFailed
    }
}

fn report(what: &str, result: Result<String, String>) -> bool {
    match result {
        Ok(line) => {
            println!("ok    {what}: {line}");
            true
        }
        Err(why) => {
            println!("FAIL  {what}: {why}");
            false
        }
    }
}

fn git_version() -> Result<String, String> {
    let out = Command::new("git")
        .arg("--version")
        .output()
        .map_err(|e| format!("git not found on PATH ({e}): install git"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn this_binary_is_static() -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    elf::check_static(&exe)
        .map(|()| {
            format!(
                "{} is static: it can be copied into any image",
                exe.display()
            )
        })
        .map_err(|e| format!("{e} (only needed for --workspace docker; or pass --sandbox-binary)"))
}

async fn sweep_line() -> Result<String, String> {
    let report = sweep::sweep().await.map_err(|e| e.to_string())?;
    if !report.failures.is_empty() {
        return Err(format!("could not remove {:?}", report.failures));
    }
    Ok(format!(
        "removed {} container(s) and {} network(s)",
        report.containers.len(),
        report.networks.len()
    ))
}
