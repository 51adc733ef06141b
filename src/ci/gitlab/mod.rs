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

/// The job of the unit tests: project 42 `group/app`, merge request !7 (`feature` → `main`)
/// when `mr`, issue `issue` when given.
#[cfg(test)]
pub(crate) fn test_job(
    source: PipelineSource,
    mr: bool,
    issue: Option<u64>,
) -> crate::config::gitlab::GitlabJob {
    crate::config::gitlab::GitlabJob {
        context: GitlabContext {
            project_id: "42".into(),
            project_path: "group/app".into(),
            api_url: "https://gitlab.example/api/v4".into(),
            pipeline_source: source,
            merge_request: mr.then(|| MergeRequest {
                iid: 7,
                project_id: "42".into(),
                source_project_id: Some("42".into()),
                source_branch: "feature".into(),
                target_branch: "main".into(),
            }),
            job_url: None,
            project_dir: "/builds/group/app".into(),
        },
        token: None,
        merge_request_title: None,
        issue_iid: issue,
        job_token: None,
        default_branch: Some("main".into()),
    }
}
