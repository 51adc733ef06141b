//! The Cloud account's settings, as `OpenHandsCloudWorkspace` reads them (1.58.2):
//! - `get_llm()`: `GET /api/v1/users/me?expose_secrets=true` with both the Bearer key and the
//!   sandbox's `X-Session-API-Key` (the service checks the session belongs to the user); the
//!   account's `llm_model`, `llm_api_key` and `llm_base_url`;
//! - `get_secrets()`: `GET /api/v1/sandboxes/{id}/settings/secrets` with only the session key
//!   → `{"secrets": [{"name", "description"}]}`: names, never values. Each becomes a
//!   `LookupSecret` whose `url` is `.../settings/secrets/{name}` with the session key as header;
//!   the agent-server in the sandbox fetches the value when a command needs it, so secret
//!   values never pass through this process.

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::CloudWorkspace;
use crate::workspace::WorkspaceError;

/// The account's model settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudLlm {
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
}

/// OpenHands' `LookupSecret`: a secret fetched from `url` (with `headers`) where it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupSecret {
    pub kind: &'static str,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub description: Option<String>,
}

impl LookupSecret {
    pub fn to_json(&self) -> Value {
        json!(self)
    }
}

impl CloudWorkspace {
    /// The account's LLM settings (model, key, base URL) from `GET /api/v1/users/me`.
    pub async fn get_llm(&self) -> Result<CloudLlm, WorkspaceError> {
        let rb = self
            .api
            .request(Method::GET, "/api/v1/users/me")
            .query(&[("expose_secrets", "true")])
            .header("X-Session-API-Key", &self.session_key);
        let me = self.api.send_json("GET /api/v1/users/me", rb).await?;
        let field = |name: &str| {
            me[name]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        Ok(CloudLlm {
            model: field("llm_model"),
            api_key: field("llm_api_key"),
            base_url: field("llm_base_url"),
        })
    }

    /// References to the account's secrets (all, or those in `names`), resolved in the
    /// sandbox: the values are never fetched here.
    pub async fn get_secrets(
        &self,
        names: Option<&[String]>,
    ) -> Result<BTreeMap<String, LookupSecret>, WorkspaceError> {
        let base = format!("/api/v1/sandboxes/{}/settings", self.sandbox_id);
        let path = format!("{base}/secrets");
        let rb = self
            .api
            .bare(Method::GET, &path)
            .header("X-Session-API-Key", &self.session_key);
        let listed = self.api.send_json(&format!("GET {path}"), rb).await?;
        let mut secrets = BTreeMap::new();
        for item in listed["secrets"].as_array().into_iter().flatten() {
            let Some(name) = item["name"].as_str() else {
                continue;
            };
            if names.is_some_and(|wanted| !wanted.iter().any(|n| n == name)) {
                continue;
            }
            let headers =
                BTreeMap::from([("X-Session-API-Key".to_string(), self.session_key.clone())]);
            secrets.insert(
                name.to_string(),
                LookupSecret {
                    kind: "LookupSecret",
                    url: format!("{}{base}/secrets/{name}", self.api.base_url()),
                    headers,
                    description: item["description"].as_str().map(String::from),
                },
            );
        }
        Ok(secrets)
    }
}
