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
}

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
        let keys = self
            .session_api_key
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect();
        Ok(crate::server::ServerConfig {
            host: self.host,
            port: self.port,
            session_api_keys: keys,
            conversations_dir: self.conversations_dir,
            working_dir,
        })
    }
}
