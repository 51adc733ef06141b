//! One connection to an MCP server through the official Rust SDK (`rmcp`): a stdio server is a
//! child process started where the agent runs, with a cleared environment (a few harmless
//! variables plus the server's own `env`, whose secrets come from the conversation by name);
//! an HTTP server is reached over MCP's streamable-HTTP transport (`super::http`), with the
//! server's `headers` (secrets by name too). Start-up (spawn or connect, initialize,
//! `tools/list`) has a deadline; so has every call. A server's url shows only through
//! `shown_url`: it may carry a token.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, Tool as RemoteTool};
use rmcp::service::{ClientInitializeError, Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::Value;

use super::config::{resolve, shown_url, McpServer, Transport};
use super::http::{HttpClient, RESERVED};

/// Start-up deadline (connect and list tools) when the server sets none: OpenHands' 30 s.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one tool call: OpenHands' `MCP_TOOL_TIMEOUT_SECONDS`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables of the agent's environment a stdio server gets; nothing else is inherited.
const INHERITED: [&str; 7] = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER"];

/// A started server: its tools and the handle calls go through.
pub struct Connection {
    pub tools: Vec<RemoteTool>,
    peer: Peer<RoleClient>,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, ()>>>,
    call_timeout: Duration,
}

/// What a call returned: MCP content blocks (as JSON) and whether the server flagged an error.
pub struct CallResult {
    pub content: Vec<Value>,
    pub is_error: bool,
}

impl Connection {
    /// Starts `server` in `working_dir` and lists its tools, within its start-up deadline.
    pub async fn start(
        name: &str,
        server: &McpServer,
        working_dir: &Path,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Connection, String> {
        let deadline = server
            .timeout
            .filter(|t| t.is_finite() && *t > 0.0)
            .map_or(STARTUP_TIMEOUT, Duration::from_secs_f64);
        let start = async {
            let service = match server.transport() {
                Transport::Stdio => start_stdio(name, server, working_dir, secrets).await?,
                Transport::Http => start_http(name, server, secrets).await?,
                // rmcp 3 has no client for the old HTTP+SSE transport (MCP 2024-11-05).
                Transport::Sse => {
                    return Err(format!(
                        "MCP server '{name}' uses the old SSE transport, which sandcrab's MCP client (rmcp 3) does not speak: serve it over streamable HTTP (\"transport\": \"http\") or run it as a stdio command"
                    ))
                }
            };
            let tools = service
                .list_all_tools()
                .await
                .map_err(|e| format!("MCP server '{name}' did not list its tools: {e}"))?;
            Ok::<_, String>((service, tools))
        };
        let (service, tools) = tokio::time::timeout(deadline, start).await.map_err(|_| {
            match server.transport() {
                Transport::Stdio => format!(
                    "MCP server '{name}' did not start within {} s: check its command, or raise its \"timeout\" (first runs of npx/uvx download packages)",
                    deadline.as_secs()
                ),
                _ => format!(
                    "MCP server '{name}' at {} did not answer within {} s: check that it is up and reachable from where the agent runs, or raise its \"timeout\"",
                    shown_url(server.url.as_deref().unwrap_or_default()),
                    deadline.as_secs()
                ),
            }
        })??;
        Ok(Connection {
            tools,
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            call_timeout: CALL_TIMEOUT,
        })
    }

    /// Calls `tool` with `arguments`; `Err` is a message for the model (timeout, server gone).
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<CallResult, String> {
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(args) = arguments {
            params.arguments = Some(args);
        }
        let result = tokio::time::timeout(self.call_timeout, self.peer.call_tool(params))
            .await
            .map_err(|_| {
                format!(
                    "The MCP tool '{tool}' did not answer within {} s.",
                    self.call_timeout.as_secs()
                )
            })?
            .map_err(|e| format!("The MCP tool '{tool}' failed: {e}"))?;
        let content = match serde_json::to_value(&result.content) {
            Ok(Value::Array(blocks)) => blocks,
            _ => Vec::new(),
        };
        Ok(CallResult {
            content,
            is_error: result.is_error.unwrap_or(false),
        })
    }

    /// Stops the server (closes its stdin, then signals it).
    pub async fn close(&self) {
        if let Some(service) = self.service.lock().await.take() {
            let _ = service.cancel().await;
        }
    }
}

async fn start_stdio(
    name: &str,
    server: &McpServer,
    working_dir: &Path,
    secrets: &BTreeMap<String, String>,
) -> Result<RunningService<RoleClient, ()>, String> {
    let env = resolve(&server.env, secrets).map_err(|missing| {
        format!(
            "MCP server '{name}' needs the secret {missing}, which this conversation does not have: pass it by name (sandcrab run --forward-env {missing}, or the create request's secrets)"
        )
    })?;
    let command = server.command.as_deref().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(command);
    // Killed when dropped: a server that misses its start-up deadline (or outlives the run)
    // must not linger, holding the run's stderr open after sandcrab has exited.
    cmd.args(&server.args).env_clear().kill_on_drop(true);
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env);
    cmd.current_dir(match &server.cwd {
        Some(dir) => working_dir.join(dir),
        None => working_dir.to_path_buf(),
    });
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("MCP server '{name}': cannot start '{command}': {e}"))?;
    // `()` answers no sampling request and declines every elicitation: nothing waits for a
    // person.
    ().serve(transport).await.map_err(|e| {
        format!(
            "MCP server '{name}' did not complete the MCP handshake: {}",
            handshake_error(&e)
        )
    })
}

async fn start_http(
    name: &str,
    server: &McpServer,
    secrets: &BTreeMap<String, String>,
) -> Result<RunningService<RoleClient, ()>, String> {
    let url = server.url.as_deref().unwrap_or_default();
    let shown = shown_url(url);
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        _ => {
            return Err(format!(
                "MCP server '{name}': its url {shown} is not an http(s) URL: give the server's endpoint, like http://127.0.0.1:8000/mcp"
            ))
        }
    }
    let values = resolve(&server.headers, secrets).map_err(|missing| {
        format!(
            "MCP server '{name}' needs the secret {missing}, which this conversation does not have: pass it by name (sandcrab run --forward-env {missing}, or the create request's secrets)"
        )
    })?;
    let mut headers = std::collections::HashMap::new();
    for (key, value) in values {
        let header = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| format!("MCP server '{name}': '{key}' is not an HTTP header name"))?;
        if RESERVED.contains(&header.as_str()) {
            return Err(format!(
                "MCP server '{name}': the header '{key}' is set by the MCP transport itself: remove it from the server's \"headers\""
            ));
        }
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            format!("MCP server '{name}': the value of the header '{key}' is not a valid HTTP header value (a line break in a secret?)")
        })?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    let client = HttpClient::new().map_err(|e| format!("MCP server '{name}': {e}"))?;
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers);
    let transport = StreamableHttpClientTransport::with_client(client, config);
    ().serve(transport).await.map_err(|e| {
        format!(
            "MCP server '{name}' at {shown} did not complete the MCP handshake: {}; check its url and \"headers\", and that it is up and reachable from where the agent runs",
            handshake_error(&e)
        )
    })
}

/// Why a handshake failed, in words: without rmcp's transport type names, and with a reqwest
/// error's causes (connection refused, TLS) spelled out.
fn handshake_error(e: &ClientInitializeError) -> String {
    let ClientInitializeError::TransportError { error, .. } = e else {
        return e.to_string();
    };
    match error
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        Some(StreamableHttpError::Client(e)) => {
            let mut out = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                out = format!("{out}: {c}");
                cause = c.source();
            }
            out
        }
        _ => error.error.to_string(),
    }
}
