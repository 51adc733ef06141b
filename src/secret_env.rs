//! The one list of what in this process's environment never reaches an agent's shell: the
//! runner's secrets (model keys, CI tokens, the agent-server's own session keys). Every place
//! that starts a command for the agent (the local workspace, the terminal tool, the
//! agent-server's bash routes) removes them through [`names_to_remove`]; the run redacts their
//! values wherever they show up.

/// Environment variables that hold secrets of the runner, by exact name.
pub const NAMES: &[&str] = &[
    "LLM_API_KEY",
    "SANDCRAB_LLM_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "SESSION_API_KEY",
    "SANDCRAB_SESSION_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "INPUT_GITHUB-TOKEN",
    "INPUT_LLM-API-KEY",
    "INPUT_GITHUB_TOKEN",
    "INPUT_LLM_API_KEY",
    "INPUT_CLOUD-API-KEY",
    "INPUT_CLOUD_API_KEY",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "CI_JOB_TOKEN",
    "GITLAB_TOKEN",
    "SANDCRAB_GITLAB_TOKEN",
    "SANDCRAB_CLOUD_API_KEY",
    "SANDCRAB_RUNTIME_API_KEY",
];

/// Name prefixes of secret variables: OpenHands' session keys `OH_SESSION_API_KEYS_0`, `_1`, ….
pub const PREFIXES: &[&str] = &["OH_SESSION_API_KEYS"];

/// Whether `name` is a secret variable of the runner.
pub fn is_secret(name: &str) -> bool {
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The variables a command for the agent must not inherit: every name of [`NAMES`], and the
/// variables of this process that match a prefix.
pub fn names_to_remove() -> Vec<String> {
    let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    names.extend(
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| PREFIXES.iter().any(|p| k.starts_with(p))),
    );
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes_are_secret() {
        assert!(is_secret("GITHUB_TOKEN"));
        assert!(is_secret("OH_SESSION_API_KEYS_3"));
        assert!(!is_secret("GITHUB_TOKEN_URL"));
        assert!(!is_secret("PATH"));
    }
}
