//! What a GitLab job does, from what started its pipeline: a merge request pipeline
//! (`merge_request_event`) reviews the merge request; a pipeline given an issue
//! (`SANDCRAB_ISSUE_IID`: a manual run, a schedule, the pipeline trigger API) resolves it; any
//! other pipeline runs the job's prompt and keeps the results in the artifacts. `--mode`
//! overrides the choice (resolve on a merge request pushes to its branch).

use crate::config::ci::Mode;
use crate::config::gitlab::{GitlabJob, ISSUE_IID_VARIABLE};
use crate::error::BadInput;

/// What the run is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The merge request of a merge request pipeline, by iid.
    MergeRequest(u64),
    /// The issue named by `SANDCRAB_ISSUE_IID`.
    Issue(u64),
    /// Neither: with `--mode resolve` a branch and a merge request; else nothing is published.
    Project,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub target: Target,
}

pub fn decide(job: &GitlabJob, mode: Mode) -> Result<Plan, BadInput> {
    let target = match (&job.context.merge_request, job.issue_iid) {
        (Some(mr), _) => Target::MergeRequest(mr.iid),
        (None, Some(iid)) => Target::Issue(iid),
        (None, None) => Target::Project,
    };
    let mode = match (mode, target) {
        (Mode::Auto, Target::MergeRequest(_)) => Mode::Review,
        (Mode::Auto, Target::Issue(_)) => Mode::Resolve,
        (Mode::Review, Target::Issue(_) | Target::Project) => {
            return Err(BadInput::new(format!(
                "GitLab CI: review mode needs a merge request pipeline (CI_PIPELINE_SOURCE=merge_request_event); run the job in `rules: - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"` or use mode resolve with {ISSUE_IID_VARIABLE}"
            )))
        }
        (mode, _) => mode,
    };
    Ok(Plan { mode, target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::gitlab::PipelineSource;

    fn job(mr: bool, issue: Option<u64>) -> GitlabJob {
        crate::ci::gitlab::test_job(PipelineSource::Web, mr, issue)
    }

    #[test]
    fn the_pipeline_picks_the_mode_unless_the_job_does() {
        let plan = |mr, issue, mode| decide(&job(mr, issue), mode).map(|p| (p.mode, p.target));
        assert_eq!(
            plan(true, None, Mode::Auto).unwrap(),
            (Mode::Review, Target::MergeRequest(7))
        );
        assert_eq!(
            plan(false, Some(5), Mode::Auto).unwrap(),
            (Mode::Resolve, Target::Issue(5))
        );
        assert_eq!(
            plan(false, None, Mode::Auto).unwrap(),
            (Mode::Auto, Target::Project)
        );
        assert_eq!(
            plan(true, None, Mode::Resolve).unwrap(),
            (Mode::Resolve, Target::MergeRequest(7))
        );
        assert_eq!(
            plan(true, Some(5), Mode::Auto).unwrap(),
            (Mode::Review, Target::MergeRequest(7)),
            "a merge request pipeline is about its merge request"
        );
        let e = plan(false, Some(5), Mode::Review).unwrap_err().to_string();
        assert!(
            e.contains("review mode needs a merge request pipeline"),
            "{e}"
        );
    }
}
