//! The repository's instructions, skills and hooks for one run: loaded on the runner from
//! the source `instructions-from` names (a trusted commit read with the hardened runner git,
//! or the working tree), named in the log and the report, merged with `verify-command`, and
//! handed to the agent as data (`agent.agent_context` and `hook_config` of the create request
//! for a sandbox), so a sandbox never reads instruction files of its own.

use std::path::Path;

use anyhow::Result;

use crate::agent::hooks::HookConfig;
use crate::agent::repo_context::{InstructionsSummary, RepoContext};
use crate::agent::skills::load::{self, InstructionsFrom, Loaded, Source};
use crate::config::RunConfig;
use crate::error::BadInput;

/// The source `config` names for the repository at `repo`.
pub fn source(config: &RunConfig, repo: &Path) -> Source {
    match config.instructions_from {
        InstructionsFrom::None => Source::Nothing,
        InstructionsFrom::Head => Source::WorkTree,
        InstructionsFrom::Base => match &config.instructions_rev {
            Some(rev) => Source::Rev(rev.clone()),
            None if is_git_repo(repo) => Source::Rev("HEAD".into()),
            None => {
                eprintln!("sandcrab: warning: {} is not a git repository, so there is no trusted commit to read instructions from; the agent gets none (use --instructions-from head to read the folder)", repo.display());
                Source::Nothing
            }
        },
    }
}

fn is_git_repo(repo: &Path) -> bool {
    crate::runner_git::command(repo)
        .args(["rev-parse", "--verify", "-q", "HEAD"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Loads, checks and logs what the run's agent gets. A repository folder that does not exist
/// here (a remote workspace's, or a wrong `--repo-dir` the workspace reports) gives nothing.
pub fn prepare(config: &RunConfig, repo: &Path) -> Result<RepoContext> {
    let source = if repo.is_dir() {
        source(config, repo)
    } else {
        Source::Nothing
    };
    let loaded = load::load(repo, &source).map_err(|e| {
        BadInput::new(format!(
            "cannot read the repository's instructions ({e:#}); check the checkout, or set instructions-from: none"
        ))
    })?;
    let repo_hooks = match &loaded.hooks {
        Some(text) => HookConfig::parse_text(text).map_err(|e| {
            BadInput::new(format!(
                "{} (from {}) is not a valid hook file: {e}; fix it, or set instructions-from: none",
                load::HOOKS_FILE,
                loaded.origin
            ))
        })?,
        None => HookConfig::default(),
    };
    let hooks = match &config.verify_command {
        Some(command) => HookConfig::verify(command).merged(repo_hooks),
        None => repo_hooks,
    };
    let found = !loaded.files.is_empty() || loaded.hooks.is_some() || !loaded.mcp.is_empty();
    if found {
        eprintln!("sandcrab: repository context {}", loaded.summary());
    }
    if let Some(command) = &config.verify_command {
        eprintln!("sandcrab: the agent cannot finish while `{command}` fails (verify-command)");
    }
    Ok(RepoContext {
        summary: (source != Source::Nothing).then(|| summary(&loaded)),
        agent_context: loaded.context,
        hooks,
        mcp_files: loaded.mcp,
    })
}

/// Adds the MCP servers of the repository's MCP files (`.mcp.json`, `.openhands/mcp.json`, read
/// from the same trusted source as the instructions) to the run's; a server the run names
/// itself (`--mcp-config`) wins over the repository's of the same name.
pub fn add_repository_mcp_servers(config: &mut RunConfig) -> Result<()> {
    let files = config.repo_context.mcp_files.clone();
    for (path, text) in files {
        let servers = crate::mcp::parse_mcp_config(&text).map_err(|e| {
            BadInput::new(format!(
                "{path} is not a valid MCP configuration ({e}); fix it, or set instructions-from: none"
            ))
        })?;
        let names: Vec<String> = servers.keys().cloned().collect();
        for (name, server) in servers {
            config.mcp.entry(name).or_insert(server);
        }
        if !names.is_empty() {
            eprintln!(
                "sandcrab: MCP servers from the repository's {path}: {}",
                names.join(", ")
            );
        }
    }
    Ok(())
}

fn summary(loaded: &Loaded) -> InstructionsSummary {
    InstructionsSummary {
        from: loaded.origin.clone(),
        files: loaded.files.clone(),
        hooks: loaded.hooks.as_ref().map(|_| load::HOOKS_FILE.to_string()),
        over_cap: loaded.over_cap.clone(),
    }
}
