//! MCP server configuration: OpenHands 1.58's `mcp_config` (a flat map from server name to
//! `MCPServer`), read strictly on the wire, and the Claude-style `{"mcpServers": {...}}` form
//! with `type` accepted only at the CLI/action boundary (`parse_mcp_config`), normalised the way
//! OpenHands' `coerce_mcp_config` does (unwrap `mcpServers`, `type` → `transport`, `shttp` →
//! `http`, drop keys it does not know).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Server name → server, in name order (the order tools are offered in).
pub type McpConfig = BTreeMap<String, McpServer>;

/// How a dump shows `env` and `headers` values (pydantic's masked secret).
pub const MASK: &str = "**********";

/// One MCP server, in OpenHands' `MCPServer` field names. `required` is sandcrab's (as in
/// Codex): a server that cannot start then fails the run instead of being skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables of a stdio server. A value `${NAME}` (or `$NAME`) names a secret of the
    /// conversation; nothing else of the agent's environment reaches the server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `stdio`, `http`, `streamable-http` or `sse`; `None`: stdio with a command, http with a
    /// url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Headers of an HTTP server; values may name secrets like `env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    /// Seconds for start-up (connect and list tools); default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_read_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// How a server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    Http,
    Sse,
}

impl McpServer {
    pub fn transport(&self) -> Transport {
        match self.transport.as_deref() {
            Some("http" | "streamable-http" | "shttp") => Transport::Http,
            Some("sse") => Transport::Sse,
            Some(_) => Transport::Stdio,
            None if self.command.is_none() && self.url.is_some() => Transport::Http,
            None => Transport::Stdio,
        }
    }

    fn validate(&self, name: &str) -> Result<(), String> {
        if let Some(t) = self.transport.as_deref() {
            if !matches!(t, "stdio" | "http" | "streamable-http" | "sse") {
                return Err(format!(
                    "MCP server '{name}': transport '{t}' is not one of stdio, http, streamable-http, sse"
                ));
            }
        }
        match self.transport() {
            Transport::Stdio if self.command.as_deref().is_none_or(str::is_empty) => Err(format!(
                "MCP server '{name}' has no command: a stdio server needs \"command\" (or give \"url\" for an HTTP server)"
            )),
            Transport::Http | Transport::Sse if self.url.as_deref().is_none_or(str::is_empty) => {
                Err(format!("MCP server '{name}' has no url: an HTTP server needs \"url\""))
            }
            _ => Ok(()),
        }
    }
}

/// The wire form (`agent.mcp_config` of a create request): the flat map, strictly, as
/// OpenHands' `Agent` model reads it (`mcpServers` and `type` are rejected there).
pub fn from_wire(value: &Value) -> Result<McpConfig, String> {
    if value.is_null() {
        return Ok(McpConfig::new());
    }
    let config: McpConfig = serde_json::from_value(value.clone())
        .map_err(|e| format!("agent.mcp_config is not a map of MCP servers: {e}"))?;
    validate(&config)?;
    Ok(config)
}

/// The CLI/action form, JSON text: the flat map or Claude's `{"mcpServers": {...}}`, with
/// `type` for the transport; keys OpenHands does not know are dropped. The trusted-ref loader
/// hands the repository's config file here too.
pub fn parse_mcp_config(text: &str) -> Result<McpConfig, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!("the MCP config is not valid JSON ({e}); give a JSON object of servers")
    })?;
    let Value::Object(mut top) = value else {
        return Err("the MCP config is not a JSON object: give {\"name\": {\"command\": ...}} or {\"mcpServers\": {...}}".into());
    };
    if let Some(Value::Object(inner)) = top.remove("mcpServers") {
        top = inner;
    }
    let mut config = McpConfig::new();
    for (name, server) in top {
        let Value::Object(server) = server else {
            return Err(format!("MCP server '{name}' is not a JSON object"));
        };
        config.insert(
            name.clone(),
            coerce(server).map_err(|e| format!("MCP server '{name}': {e}"))?,
        );
    }
    validate(&config)?;
    Ok(config)
}

/// One Claude-style or OpenHands server object as an `McpServer`.
fn coerce(mut server: Map<String, Value>) -> Result<McpServer, String> {
    if let Some(kind) = server.remove("type") {
        let kind = match kind.as_str() {
            Some("shttp") => "http".to_string(),
            Some(other) => other.to_string(),
            None => return Err("\"type\" is not a string".into()),
        };
        server.entry("transport").or_insert(Value::String(kind));
    }
    const KNOWN: [&str; 15] = [
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "transport",
        "headers",
        "auth",
        "timeout",
        "sse_read_timeout",
        "keep_alive",
        "description",
        "icon",
        "enabled",
        "required",
    ];
    server.retain(|k, _| KNOWN.contains(&k.as_str()));
    serde_json::from_value(Value::Object(server)).map_err(|e| e.to_string())
}

fn validate(config: &McpConfig) -> Result<(), String> {
    for (name, server) in config {
        if name.is_empty() {
            return Err("an MCP server has an empty name".into());
        }
        server.validate(name)?;
    }
    Ok(())
}

/// The config as a dump shows it: `env` and `headers` values and the url's credentials masked.
pub fn masked(config: &McpConfig) -> Value {
    let mut out = Map::new();
    for (name, server) in config {
        let mut server = server.clone();
        server.env.values_mut().for_each(|v| *v = MASK.into());
        server.headers.values_mut().for_each(|v| *v = MASK.into());
        server.url = server.url.as_deref().map(shown_url);
        out.insert(
            name.clone(),
            serde_json::to_value(server).unwrap_or_default(),
        );
    }
    Value::Object(out)
}

/// The secret a whole value names (`${NAME}` or `$NAME`), if it names one.
pub fn secret_name(value: &str) -> Option<&str> {
    let name = value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .or_else(|| value.strip_prefix('$'))?;
    valid_name(name).then_some(name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The pieces of a value: literal text and the secrets it names. A whole value `$NAME` names
/// one; otherwise every `${NAME}` in it does (a header `Bearer ${TOKEN}`, as Claude's
/// `.mcp.json` writes it). Anything else is literal.
enum Piece<'a> {
    Text(&'a str),
    Secret(&'a str),
}

fn pieces(value: &str) -> Vec<Piece<'_>> {
    if let Some(name) = value.strip_prefix('$').filter(|n| valid_name(n)) {
        return vec![Piece::Secret(name)];
    }
    let mut out = Vec::new();
    let mut rest = value;
    let mut literal = 0;
    while let Some(at) = rest[literal..].find("${").map(|i| i + literal) {
        let after = &rest[at + 2..];
        match after.find('}').filter(|end| valid_name(&after[..*end])) {
            Some(end) => {
                out.push(Piece::Text(&rest[..at]));
                out.push(Piece::Secret(&after[..end]));
                rest = &after[end + 1..];
                literal = 0;
            }
            None => literal = at + 2,
        }
    }
    out.push(Piece::Text(rest));
    out.retain(|p| !matches!(p, Piece::Text("")));
    out
}

/// The secrets a value names (see `pieces`).
pub fn secret_refs(value: &str) -> Vec<&str> {
    pieces(value)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Secret(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Every secret name the config refers to.
pub fn secret_names(config: &McpConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .values()
        .flat_map(|s| s.env.values().chain(s.headers.values()))
        .flat_map(|v| secret_refs(v))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `values` with every secret reference replaced by the secret's value, or the name of the
/// first secret the conversation does not have.
pub fn resolve(
    values: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    values
        .iter()
        .map(|(k, v)| {
            let mut out = String::new();
            for piece in pieces(v) {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Secret(name) => {
                        out.push_str(secrets.get(name).ok_or_else(|| name.to_string())?)
                    }
                }
            }
            Ok((k.clone(), out))
        })
        .collect()
}

/// An HTTP server's url as messages and dumps show it: a user name, password and query
/// values (where tokens hide) masked; text that is not a URL is masked whole.
pub fn shown_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return MASK.into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
    }
    if !parsed.username().is_empty() {
        let _ = parsed.set_username(MASK);
    }
    if parsed.query().is_some() {
        let pairs: Vec<String> = parsed
            .query_pairs()
            .map(|(k, _)| format!("{k}={MASK}"))
            .collect();
        parsed.set_query(Some(&pairs.join("&")));
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_form_is_normalised_like_coerce_mcp_config() {
        // agent-depth.md A5: coerce_mcp_config({"mcpServers":{"r":{"url":..,"type":"shttp","foo":1}}})
        let config = parse_mcp_config(
            r#"{"mcpServers":{"r":{"url":"https://e/mcp","type":"shttp","foo":1}}}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            json!({"r": {"url": "https://e/mcp", "transport": "http", "enabled": true}})
        );
        assert_eq!(config["r"].transport(), Transport::Http);
        let flat =
            parse_mcp_config(r#"{"fetch":{"command":"uvx","args":["mcp-server-fetch"]}}"#).unwrap();
        assert_eq!(flat["fetch"].transport(), Transport::Stdio);
    }

    #[test]
    fn the_wire_form_is_strict() {
        let ok = from_wire(&json!({"fetch": {"command": "uvx", "args": ["x"]}})).unwrap();
        assert_eq!(ok["fetch"].command.as_deref(), Some("uvx"));
        assert!(from_wire(&json!({"mcpServers": {"fetch": {"command": "uvx"}}})).is_err());
        assert!(from_wire(&json!({"r": {"url": "https://e/mcp", "type": "shttp"}})).is_err());
        assert!(from_wire(&json!({"s": {"args": ["x"]}})).is_err());
        assert!(from_wire(&json!({"s": {"url": "https://e", "transport": "ws"}})).is_err());
        assert!(from_wire(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_server_and_the_fix() {
        let e = parse_mcp_config(r#"{"mcpServers":{"gh":{"type":"stdio"}}}"#).unwrap_err();
        assert!(e.contains("'gh'") && e.contains("command"), "{e}");
        let e = parse_mcp_config("[1]").unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn secrets_are_referenced_by_name_and_masked_in_dumps() {
        assert_eq!(secret_name("${GH_TOKEN}"), Some("GH_TOKEN"));
        assert_eq!(secret_name("$GH_TOKEN"), Some("GH_TOKEN"));
        assert_eq!(secret_name("literal"), None);
        assert_eq!(secret_name("${a b}"), None);
        let config = parse_mcp_config(
            r#"{"s":{"command":"x","env":{"TOKEN":"${GH}","MODE":"ro"},"required":true}}"#,
        )
        .unwrap();
        assert_eq!(secret_names(&config), vec!["GH".to_string()]);
        let secrets = BTreeMap::from([("GH".to_string(), "v".to_string())]);
        assert_eq!(
            resolve(&config["s"].env, &secrets).unwrap(),
            vec![("MODE".into(), "ro".into()), ("TOKEN".into(), "v".into())]
        );
        assert_eq!(
            resolve(&config["s"].env, &BTreeMap::new()).unwrap_err(),
            "GH"
        );
        assert_eq!(masked(&config)["s"]["env"]["MODE"], MASK);
        assert!(config["s"].required);
    }

    #[test]
    fn a_header_may_embed_secrets_by_name() {
        let config = parse_mcp_config(
            r#"{"h":{"url":"http://127.0.0.1:1/mcp","headers":{"Authorization":"Bearer ${TOKEN}","X":"${A}-${B}","Y":"$5 ${not a name} ${C"}}}"#,
        )
        .unwrap();
        assert_eq!(secret_names(&config), vec!["A", "B", "TOKEN"]);
        let secrets = BTreeMap::from([
            ("TOKEN".to_string(), "t0k".to_string()),
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string()),
        ]);
        assert_eq!(
            resolve(&config["h"].headers, &secrets).unwrap(),
            vec![
                ("Authorization".into(), "Bearer t0k".into()),
                ("X".into(), "1-2".into()),
                ("Y".into(), "$5 ${not a name} ${C".into()),
            ]
        );
        let missing = BTreeMap::from([("TOKEN".to_string(), "t".to_string())]);
        assert_eq!(resolve(&config["h"].headers, &missing).unwrap_err(), "A");
    }

    #[test]
    fn url_credentials_never_show() {
        let shown = shown_url("https://bob:hunter2@mcp.example/mcp?key=s3cret&x=1#frag");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(!shown.contains("bob"), "{shown}");
        assert!(
            shown.starts_with("https://") && shown.contains("mcp.example/mcp?key="),
            "{shown}"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:8/mcp"),
            "http://127.0.0.1:8/mcp"
        );
        assert_eq!(shown_url("not a url with a token"), MASK);
        let config = parse_mcp_config(r#"{"r":{"url":"https://u:p@e/mcp"}}"#).unwrap();
        assert!(!masked(&config)["r"]["url"]
            .as_str()
            .unwrap()
            .contains(":p@"));
    }
}
