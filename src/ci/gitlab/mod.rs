//! GitLab CI: the job's context (built from plain values; src/config/gitlab.rs reads them from
//! the environment), the REST client, the note as `Feedback`, the checkout, the plan, the
//! prompt, publishing (branch, merge request, diff threads) and the flow of `sandcrab run` in
//! a GitLab job.

pub mod api;
pub mod checkout;
pub mod context;
pub mod flow;
pub mod note;
pub mod plan;
pub mod prompt;
pub mod publish;
pub mod review;

pub use api::{GitlabClient, GitlabError, Note, NoteTarget};
pub use context::{GitlabContext, MergeRequest, PipelineSource};
