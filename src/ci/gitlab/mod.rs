//! GitLab CI: the job's context (built from plain values; src/config/gitlab.rs reads them from
//! the environment), a client for merge request and issue notes, the note as `Feedback`, and
//! the flow of `sandcrab run` in a GitLab job.

pub mod api;
pub mod context;
pub mod flow;
pub mod note;

pub use api::{GitlabClient, GitlabError, Note, NoteTarget};
pub use context::{GitlabContext, MergeRequest, PipelineSource};
