//! GitLab CI: the job's context (built from plain values; src/config/gitlab.rs reads them from
//! the environment) and a client for merge request and issue notes.

pub mod api;
pub mod context;

pub use api::{GitlabClient, GitlabError, Note, NoteTarget};
pub use context::{GitlabContext, MergeRequest, PipelineSource};
