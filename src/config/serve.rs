//! `ServeArgs`: the flags of `sandcrab serve`, resolved into the server's configuration.

use std::path::PathBuf;

use clap::Args;

use crate::error::BadInput;

/// Flags of `sandcrab serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to bind. Only loopback unless told otherwise: the API runs commands.
    #[arg(long, default_value = "127.0.0.1", env = "SANDCRAB_HOST")]
    pub host: String,

    /// Port to bind (0 picks a free one; the address is printed on stdout).
    #[arg(long, default_value_t = 8000, env = "SANDCRAB_PORT")]
    pub port: u16,

    /// The session key clients must send as X-Session-API-Key (also SESSION_API_KEY).
    #[arg(long, env = "SESSION_API_KEY", hide_env_values = true)]
    pub session_api_key: Option<String>,

    /// Where conversations persist; they survive a restart.
    #[arg(
        long,
        default_value = "workspace/conversations",
        env = "SANDCRAB_CONVERSATIONS_DIR"
    )]
    pub conversations_dir: PathBuf,

    /// Working directory of commands and conversations [default: the current directory]
    #[arg(long, env = "SANDCRAB_WORKING_DIR")]
    pub working_dir: Option<PathBuf>,

    /// Serve a non-loopback --host without a session key: anyone who reaches it runs commands.
    #[arg(long)]
    pub insecure_no_auth: bool,

    /// Exit after this many minutes with no API request (0: never). Runners set it on the
    /// sandboxes they start, so a runner that dies leaves nothing running for long.
    #[arg(long, env = "SANDCRAB_IDLE_TIMEOUT_MINUTES")]
    pub idle_timeout_minutes: Option<f64>,

    /// Exit when the process that started this one exits (a sandbox started as a child).
    #[arg(long)]
    pub exit_when_parent_gone: bool,
}

/// OpenHands' session key variables: `OH_SESSION_API_KEYS_0`, `_1`, … (any of them valid).
const OH_KEYS_PREFIX: &str = "OH_SESSION_API_KEYS_";

impl ServeArgs {
    /// The server's configuration, or what is wrong with the flags.
    pub fn into_config(self) -> Result<crate::server::ServerConfig, BadInput> {
        let working_dir = match self.working_dir {
            Some(dir) => dir,
            None => std::env::current_dir()
                .map_err(|e| BadInput::new(format!("cannot read the current directory: {e}")))?,
        };
        if !working_dir.is_dir() {
            return Err(BadInput::new(format!(
                "--working-dir {} is not a directory",
                working_dir.display()
            )));
        }
        let keys: Vec<String> = self
            .session_api_key
            .into_iter()
            .chain(openhands_keys(std::env::vars()))
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() && !is_loopback(&self.host) && !self.insecure_no_auth {
            return Err(BadInput::new(format!(
                "serve --host {}: refusing to serve a non-loopback address without a session key (anyone reaching it could run commands); set SESSION_API_KEY or OH_SESSION_API_KEYS_0, bind 127.0.0.1, or pass --insecure-no-auth",
                self.host
            )));
        }
        let idle_timeout = match self.idle_timeout_minutes {
            None | Some(0.0) => None,
            Some(m) => {
                Some(crate::duration::minutes("--idle-timeout-minutes", m).map_err(BadInput::new)?)
            }
        };
        Ok(crate::server::ServerConfig {
            host: self.host,
            port: self.port,
            session_api_keys: keys,
            conversations_dir: self.conversations_dir,
            working_dir,
            idle_timeout,
            exit_when_parent_gone: self.exit_when_parent_gone,
        })
    }
}

/// The values of `OH_SESSION_API_KEYS_<N>` among `vars`, in the order of N.
fn openhands_keys(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut found: Vec<(u64, String)> = vars
        .filter_map(|(name, value)| {
            let n = name.strip_prefix(OH_KEYS_PREFIX)?.parse().ok()?;
            Some((n, value))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, key)| key).collect()
}

/// Whether `host` names only this machine (`127.0.0.0/8`, `::1`, `localhost`).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "example.com", ""] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn openhands_key_variables() {
        let vars = [
            ("OH_SESSION_API_KEYS_1", "b"),
            ("OH_SESSION_API_KEYS_0", "a"),
            ("OH_SESSION_API_KEYS_X", "no"),
            ("OTHER", "no"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(openhands_keys(vars.into_iter()), vec!["a", "b"]);
    }
}
