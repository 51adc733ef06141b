//! Where a GitLab CI job runs: the project, the API, the merge request of a merge request
//! pipeline, the pipeline source, the job's URL and the checkout. Built from plain values by
//! src/config/gitlab.rs (the only reader of the environment).

use std::path::PathBuf;

use super::NoteTarget;

/// What started the pipeline (`CI_PIPELINE_SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineSource {
    /// `merge_request_event`: a merge request pipeline (the `CI_MERGE_REQUEST_*` variables are set).
    MergeRequestEvent,
    Push,
    Web,
    Schedule,
    /// `trigger` (a trigger token), the usual route of a webhook that reacts to a mention.
    Trigger,
    Api,
    /// Any other value (`pipeline`, `parent_pipeline`, `chat`...), kept as given.
    Other(String),
}

impl PipelineSource {
    pub fn parse(value: &str) -> Self {
        match value {
            "merge_request_event" => PipelineSource::MergeRequestEvent,
            "push" => PipelineSource::Push,
            "web" => PipelineSource::Web,
            "schedule" => PipelineSource::Schedule,
            "trigger" => PipelineSource::Trigger,
            "api" => PipelineSource::Api,
            other => PipelineSource::Other(other.to_string()),
        }
    }
}

/// The merge request of a merge request pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// The merge request's number in its project (`CI_MERGE_REQUEST_IID`).
    pub iid: u64,
    /// The project the merge request belongs to (`CI_MERGE_REQUEST_PROJECT_ID`): the target
    /// project, which differs from the job's for a merge request from a fork.
    pub project_id: String,
    /// `CI_MERGE_REQUEST_SOURCE_PROJECT_ID`: the project the source branch lives in (a fork's
    /// for a merge request from a fork; then nothing is ever pushed).
    pub source_project_id: Option<String>,
    pub source_branch: String,
    pub target_branch: String,
}

impl MergeRequest {
    /// Whether the source branch lives in the merge request's own project (an unknown source
    /// project counts as a fork: no push).
    pub fn same_project(&self) -> bool {
        self.source_project_id.as_deref() == Some(self.project_id.as_str())
    }
}

/// One GitLab CI job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitlabContext {
    /// `CI_PROJECT_ID` (numeric).
    pub project_id: String,
    /// `CI_PROJECT_PATH` (`group/project`).
    pub project_path: String,
    /// `CI_API_V4_URL` (`https://gitlab.example/api/v4`).
    pub api_url: String,
    pub pipeline_source: PipelineSource,
    pub merge_request: Option<MergeRequest>,
    /// `CI_JOB_URL`, for "see the job" links.
    pub job_url: Option<String>,
    /// `CI_PROJECT_DIR`: the checkout; `artifacts:` paths are relative to it.
    pub project_dir: PathBuf,
}

impl GitlabContext {
    /// Where a note about this job goes: the merge request of a merge request pipeline, or
    /// `issue_iid` (a pipeline triggered for an issue), else nowhere.
    pub fn note_target(&self, issue_iid: Option<u64>) -> Option<(String, NoteTarget)> {
        if let Some(mr) = &self.merge_request {
            return Some((mr.project_id.clone(), NoteTarget::MergeRequest(mr.iid)));
        }
        issue_iid.map(|iid| (self.project_id.clone(), NoteTarget::Issue(iid)))
    }

    /// The output folder under the checkout (so `artifacts: paths:` can collect it).
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.project_dir.join(name)
    }
}
