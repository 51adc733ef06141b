//! GitLab CI settings from the job's predefined variables (`CI_*`) and the notes token. The
//! functions take a lookup (`std::env::var` in the binary, a map in tests) and return plain
//! values: the [`GitlabContext`] (where the job runs: the project, the API, the merge request
//! of a merge request pipeline, the pipeline source, the job's URL and the checkout), the
//! token, and the [`GitlabJob`] that `sandcrab run` takes.

use std::path::PathBuf;

use crate::config::RunArgs;
use crate::error::BadInput;

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
    /// The output folder under the checkout (so `artifacts: paths:` can collect it).
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.project_dir.join(name)
    }
}

/// The output folder's name under `CI_PROJECT_DIR` (where `artifacts: paths:` collects it).
pub const OUT_DIR_NAME: &str = "sandcrab-out";

/// What `sandcrab run` needs from a GitLab CI job.
#[derive(Debug, Clone)]
pub struct GitlabJob {
    pub context: GitlabContext,
    /// The notes token (see [`gitlab_token`]); `None`: the run goes on without notes.
    pub token: Option<String>,
    /// `CI_MERGE_REQUEST_TITLE`: text written by a GitLab user, untrusted; only ever quoted
    /// as data in the agent's prompt.
    pub merge_request_title: Option<String>,
    /// `SANDCRAB_ISSUE_IID`: the issue a manual, scheduled or triggered pipeline resolves.
    pub issue_iid: Option<u64>,
    /// `CI_JOB_TOKEN`: never used for the API; kept to redact it (the runner's clone URL
    /// carries it) and to take it out of the checkout's `origin` before the agent runs.
    pub job_token: Option<String>,
    /// `CI_DEFAULT_BRANCH`: where a merge request opened for an issue goes.
    pub default_branch: Option<String>,
}

/// The variable naming the issue a pipeline resolves (set on a manual run, a schedule or the
/// pipeline trigger API: `variables[SANDCRAB_ISSUE_IID]=5`).
pub const ISSUE_IID_VARIABLE: &str = "SANDCRAB_ISSUE_IID";

/// The job, for `sandcrab run --ci-platform gitlab` (or `GITLAB_CI=true`): the context as if
/// `GITLAB_CI` were `true` (the platform was chosen already), the token and the MR's title.
pub fn gitlab_job(var: impl Fn(&str) -> Option<String>) -> Result<GitlabJob, BadInput> {
    let on_gitlab = |name: &str| match name {
        "GITLAB_CI" => Some("true".to_string()),
        other => var(other),
    };
    let context = gitlab_context(on_gitlab)?.expect("GITLAB_CI is set above");
    let merge_request_title = context
        .merge_request
        .as_ref()
        .and_then(|_| var("CI_MERGE_REQUEST_TITLE"))
        .filter(|t| !t.trim().is_empty());
    let present = |name: &str| {
        var(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let issue_iid = match present(ISSUE_IID_VARIABLE) {
        None => None,
        Some(iid) => Some(iid.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            BadInput::new(format!(
                "GitLab CI: {ISSUE_IID_VARIABLE} {iid:?} is not an issue number; set it to the issue's iid (the number after #)"
            ))
        })?),
    };
    Ok(GitlabJob {
        context,
        token: gitlab_token(&var),
        merge_request_title,
        issue_iid,
        job_token: present("CI_JOB_TOKEN"),
        default_branch: present("CI_DEFAULT_BRANCH"),
    })
}

/// The GitLab defaults of a run: the checkout is `CI_PROJECT_DIR` and the outputs go to
/// `CI_PROJECT_DIR/sandcrab-out`, unless `--repo-dir` / `--out` (or their variables) say
/// otherwise (`*_given`).
pub fn apply_job_defaults(args: &mut RunArgs, job: &GitlabJob, out_given: bool, repo_given: bool) {
    if !out_given {
        args.out = job.context.out_dir(OUT_DIR_NAME);
    }
    if !repo_given {
        args.repo_dir = job.context.project_dir.clone();
    }
}

/// Where the notes token is read, first found wins: a project access token with the `api`
/// scope, stored as a masked CI/CD variable.
pub const GITLAB_TOKEN_VARIABLES: &[&str] = &["SANDCRAB_GITLAB_TOKEN", "GITLAB_TOKEN"];

/// The job's context when `GITLAB_CI=true`; `None` outside GitLab CI.
pub fn gitlab_context(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<GitlabContext>, BadInput> {
    let get = |name: &str| {
        var(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if get("GITLAB_CI").as_deref() != Some("true") {
        return Ok(None);
    }
    let required = |name: &str| {
        get(name).ok_or_else(|| {
            BadInput::new(format!(
                "GitLab CI: {name} is not set; run sandcrab as a GitLab CI job, which sets it"
            ))
        })
    };
    let project_id = required("CI_PROJECT_ID")?;
    let api_url = match get("CI_API_V4_URL") {
        Some(url) => url,
        None => format!(
            "{}/api/v4",
            required("CI_SERVER_URL")?.trim_end_matches('/')
        ),
    };
    let merge_request = match get("CI_MERGE_REQUEST_IID") {
        None => None,
        Some(iid) => Some(MergeRequest {
            iid: iid.parse().map_err(|_| {
                BadInput::new(format!(
                    "GitLab CI: CI_MERGE_REQUEST_IID {iid:?} is not a number"
                ))
            })?,
            project_id: get("CI_MERGE_REQUEST_PROJECT_ID").unwrap_or_else(|| project_id.clone()),
            source_project_id: get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID"),
            source_branch: get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME").unwrap_or_default(),
            target_branch: get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME").unwrap_or_default(),
        }),
    };
    Ok(Some(GitlabContext {
        project_path: required("CI_PROJECT_PATH")?,
        project_id,
        api_url,
        pipeline_source: PipelineSource::parse(&get("CI_PIPELINE_SOURCE").unwrap_or_default()),
        merge_request,
        job_url: get("CI_JOB_URL"),
        project_dir: PathBuf::from(required("CI_PROJECT_DIR")?),
    }))
}

/// The notes token: the first of [`GITLAB_TOKEN_VARIABLES`] that is set, unless it is the job
/// token (`CI_JOB_TOKEN` cannot post notes: better the clear "missing token" error than a 401).
pub fn gitlab_token(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let job_token = var("CI_JOB_TOKEN").filter(|t| !t.is_empty());
    GITLAB_TOKEN_VARIABLES
        .iter()
        .filter_map(|name| var(name).map(|v| v.trim().to_string()))
        .find(|v| !v.is_empty())
        .filter(|token| job_token.as_deref() != Some(token.as_str()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const MR_JOB: &[(&str, &str)] = &[
        ("GITLAB_CI", "true"),
        ("CI_PROJECT_ID", "42"),
        ("CI_PROJECT_PATH", "group/app"),
        ("CI_API_V4_URL", "https://gitlab.example/api/v4"),
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_MERGE_REQUEST_IID", "7"),
        ("CI_MERGE_REQUEST_PROJECT_ID", "41"),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature"),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
        ("CI_JOB_URL", "https://gitlab.example/group/app/-/jobs/9"),
        ("CI_PROJECT_DIR", "/builds/group/app"),
    ];

    #[test]
    fn a_merge_request_pipeline() {
        let ctx = gitlab_context(lookup(MR_JOB)).unwrap().unwrap();
        assert_eq!(ctx.project_id, "42");
        assert_eq!(ctx.project_path, "group/app");
        assert_eq!(ctx.pipeline_source, PipelineSource::MergeRequestEvent);
        let mr = ctx.merge_request.clone().unwrap();
        assert_eq!((mr.iid, mr.project_id.as_str()), (7, "41"));
        assert_eq!(
            (mr.source_branch.as_str(), mr.target_branch.as_str()),
            ("feature", "main")
        );
        assert_eq!(
            ctx.job_url.as_deref(),
            Some("https://gitlab.example/group/app/-/jobs/9")
        );
        assert_eq!(
            ctx.out_dir("sandcrab-out"),
            PathBuf::from("/builds/group/app/sandcrab-out")
        );
    }

    #[test]
    fn a_branch_pipeline_without_api_url_uses_the_server_url() {
        let ctx = gitlab_context(lookup(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_ID", "42"),
            ("CI_PROJECT_PATH", "group/app"),
            ("CI_SERVER_URL", "https://gitlab.example/"),
            ("CI_PIPELINE_SOURCE", "trigger"),
            ("CI_PROJECT_DIR", "/builds/group/app"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(ctx.api_url, "https://gitlab.example/api/v4");
        assert_eq!(ctx.pipeline_source, PipelineSource::Trigger);
        assert!(ctx.merge_request.is_none());
    }

    #[test]
    fn outside_gitlab_there_is_no_context_and_missing_variables_are_named() {
        assert!(gitlab_context(lookup(&[("CI", "true")])).unwrap().is_none());
        let e = gitlab_context(lookup(&[("GITLAB_CI", "true")])).unwrap_err();
        assert!(e.to_string().contains("CI_PROJECT_ID is not set"), "{e}");
        let mut bad_iid = MR_JOB.to_vec();
        bad_iid.retain(|(k, _)| *k != "CI_MERGE_REQUEST_IID");
        bad_iid.push(("CI_MERGE_REQUEST_IID", "seven"));
        let e = gitlab_context(lookup(&bad_iid)).unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
    }

    #[test]
    fn a_job_reads_the_token_and_the_title_only_of_a_merge_request() {
        let mut vars = MR_JOB.to_vec();
        vars.retain(|(k, _)| *k != "GITLAB_CI");
        vars.push(("CI_MERGE_REQUEST_TITLE", "Fix sub"));
        vars.push(("SANDCRAB_GITLAB_TOKEN", "glpat-z"));
        let job = gitlab_job(lookup(&vars)).unwrap();
        assert_eq!(job.token.as_deref(), Some("glpat-z"));
        assert_eq!(job.merge_request_title.as_deref(), Some("Fix sub"));
        assert_eq!(job.issue_iid, None);
        vars.push(("SANDCRAB_ISSUE_IID", " 5 "));
        vars.push(("CI_JOB_TOKEN", "job-tok"));
        vars.push(("CI_DEFAULT_BRANCH", "main"));
        let job = gitlab_job(lookup(&vars)).unwrap();
        assert_eq!(job.issue_iid, Some(5));
        assert_eq!(job.job_token.as_deref(), Some("job-tok"));
        assert_eq!(job.default_branch.as_deref(), Some("main"));
        for bad in ["five", "0", "-1"] {
            let mut with_bad = vars.clone();
            with_bad.retain(|(k, _)| *k != "SANDCRAB_ISSUE_IID");
            with_bad.push(("SANDCRAB_ISSUE_IID", bad));
            let e = gitlab_job(lookup(&with_bad)).unwrap_err().to_string();
            assert!(
                e.contains("SANDCRAB_ISSUE_IID") && e.contains("not an issue number"),
                "{e}"
            );
        }
        vars.retain(|(k, _)| !["SANDCRAB_ISSUE_IID"].contains(k));
        vars.retain(|(k, _)| *k != "CI_MERGE_REQUEST_IID");
        let job = gitlab_job(lookup(&vars)).unwrap();
        assert_eq!(job.merge_request_title, None);
        assert!(gitlab_job(lookup(&[])).is_err());
    }

    #[test]
    fn the_job_token_is_not_taken_for_a_notes_token() {
        let token = gitlab_token(lookup(&[
            ("SANDCRAB_GITLAB_TOKEN", "glpat-x"),
            ("GITLAB_TOKEN", "other"),
        ]));
        assert_eq!(token.as_deref(), Some("glpat-x"));
        let token = gitlab_token(lookup(&[("GITLAB_TOKEN", "glpat-y")]));
        assert_eq!(token.as_deref(), Some("glpat-y"));
        let token = gitlab_token(lookup(&[
            ("SANDCRAB_GITLAB_TOKEN", "job-tok"),
            ("CI_JOB_TOKEN", "job-tok"),
        ]));
        assert_eq!(token, None);
        assert_eq!(gitlab_token(lookup(&[("CI_JOB_TOKEN", "job-tok")])), None);
    }
}
