//! `sandcrab run` as a GitHub Action: the real binary with the environment GitHub sets, real
//! webhook payloads (tests/fixtures/github-events), the scripted model, the local workspace on
//! a clone of a bare `origin`, and a fake GitHub API on loopback that records every request.
//!
//! `job` is the harness; `gates` covers who and what starts a run (permissions, bots,
//! triggers, injections, inputs); `publishing` what a run leaves on GitHub and in the job;
//! `duplicates` that a failed POST GitHub carried out is not posted twice; `untrusted` that
//! the agent's changes and text are checked before they leave.

#[path = "../common/mod.rs"]
mod common;
mod duplicates;
#[path = "../fakes/artifact_service.rs"]
mod fake_artifacts;
mod gates;
mod instructions;
mod job;
mod publishing;
mod untrusted;
