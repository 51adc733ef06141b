//! GitHub webhook payloads (`GITHUB_EVENT_PATH`): the first byte picks the event name, the
//! rest is the payload text. Any input must parse or give an error, never panic; a payload
//! that parses goes through the prompt builder, which quotes its untrusted text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandcrab::ci::github::{event::GithubEvent, prompt};
use sandcrab::config::ci::Mode;

const NAMES: [&str; 9] = [
    "issue_comment",
    "pull_request_review_comment",
    "pull_request_review",
    "issues",
    "pull_request",
    "workflow_dispatch",
    "repository_dispatch",
    "schedule",
    "push",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = NAMES[pick as usize % NAMES.len()];
    if let Ok(event) = GithubEvent::parse(name, text) {
        let pr = event.pull_request().cloned();
        let _ = prompt::build(Some("task"), Mode::Resolve, &event, "o/r", pr.as_ref());
    }
});
