//! `report.html`: the run as one self-contained page — the task, the conversation step by step
//! (thought, action, observation folded to head and tail, errors, condensation summaries), the
//! task list, the diff per file, tokens, cost and cache hits per model call as an inline SVG
//! chart, timings, workspace and model.
//!
//! Rendered server-side with a template engine (minijinja, HTML autoescaping on for the
//! `.html` template) from templates compiled into the binary; the little script only folds and
//! switches the theme. The page loads nothing: its Content-Security-Policy allows no source but
//! its own inline style and script, by hash, so even a tag that slipped through could neither
//! run nor fetch. Texts are cleaned of terminal escapes and control characters first
//! ([`text::clean`]); secrets are redacted from the inputs before rendering (escaping could
//! otherwise hide one from the redactor) and from the page after it.

pub mod chart;
pub mod diff;
pub mod load;
pub mod page;
pub mod steps;
pub mod text;

use anyhow::{Context, Result};
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

const TEMPLATE: &str = include_str!("page.html");
const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The page for `events` (each event's JSON), `result` (`result.json`, when there is one) and
/// `patch`. The inputs must already be redacted; `redact` is applied to the page once more.
pub fn render(
    events: &[Value],
    result: Option<&Value>,
    patch: &str,
    redact: &dyn Fn(&str) -> String,
) -> Result<String> {
    let page = page::page(events, result, patch);
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", TEMPLATE)
        .context("the report template is invalid")?;
    let html = env
        .get_template("page.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                page => minijinja::Value::from(minijinja::value::Serde(&page)),
                css => CSS,
                js => JS,
                csp => csp(),
            })
        })
        .map_err(|e| anyhow::anyhow!("cannot render report.html: {e:#}"))?;
    Ok(redact(&html))
}

/// Nothing may load; the inline style and script run because their hashes are listed.
pub fn csp() -> String {
    format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; img-src 'none'; base-uri 'none'; form-action 'none'",
        sha256_source(CSS),
        sha256_source(JS)
    )
}

fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests;
