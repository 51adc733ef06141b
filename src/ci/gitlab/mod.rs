//! GitLab CI: the job's context (built from plain values; src/config/gitlab.rs reads them from
//! the environment), the REST client, the note as `Feedback`, the checkout, the plan, the
//! prompt, publishing (branch, merge request, diff threads) and the flow of `sandcrab run` in
//! a GitLab job.

pub mod api;
pub mod checkout;
pub mod flow;
pub mod note;
pub mod plan;
pub mod prompt;
pub mod publish;
pub mod review;

pub use crate::config::gitlab::{GitlabContext, MergeRequest, PipelineSource};
pub use api::{GitlabClient, GitlabError, Note, NoteTarget};

/// Where a note about this job goes: the merge request of a merge request pipeline (in the
/// merge request's project), or `issue_iid` (a pipeline triggered for an issue), else nowhere.
pub fn note_target(ctx: &GitlabContext, issue_iid: Option<u64>) -> Option<(String, NoteTarget)> {
    if let Some(mr) = &ctx.merge_request {
        return Some((mr.project_id.clone(), NoteTarget::MergeRequest(mr.iid)));
    }
    issue_iid.map(|iid| (ctx.project_id.clone(), NoteTarget::Issue(iid)))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_go_to_the_merge_request_or_the_issue_or_nowhere() {
        let mut job = test_job(PipelineSource::MergeRequestEvent, true, None);
        job.context.merge_request.as_mut().unwrap().project_id = "41".into();
        assert_eq!(
            note_target(&job.context, Some(3)),
            Some(("41".into(), NoteTarget::MergeRequest(7))),
            "a merge request pipeline notes its merge request, in the merge request's project"
        );
        let job = test_job(PipelineSource::Trigger, false, None);
        assert_eq!(note_target(&job.context, None), None);
        assert_eq!(
            note_target(&job.context, Some(3)),
            Some(("42".into(), NoteTarget::Issue(3)))
        );
    }
}
