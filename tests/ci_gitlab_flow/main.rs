//! `sandcrab run` in a GitLab CI job: the real binary with the variables GitLab sets, the
//! scripted model, the local workspace on the checkout a GitLab runner really leaves (shallow,
//! detached, the job token in `origin`), and the strict fake GitLab on loopback
//! (tests/fakes/gitlab.rs: the documented REST endpoints, git over smart HTTP behind the
//! token).
//!
//! `job` is the harness; `notes` covers the note and the job's outputs; `resolve` a branch
//! and a merge request for an issue, a push to a merge request's branch, a fork; `review`
//! diff threads on a merge request.

#[path = "../common/mod.rs"]
mod common;
#[path = "../fakes/gitlab.rs"]
mod fake;
mod job;
mod notes;
mod resolve;
mod review;
