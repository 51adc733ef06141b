//! `Feedback` on GitLab: one note on the merge request (`POST .../merge_requests/{iid}/notes`),
//! edited in place (`PUT .../notes/{id}`) and turned into the final report.
//!
//! A note that cannot be posted never fails the run. A refused token (401/403) or an unknown
//! merge request (404) is said once, by the caller, and the note gives up: no more calls that
//! would fail the same way. Other failures (the API down after retries) are tried again at the
//! end, so the final report still gets through when the API comes back.

use std::sync::Arc;

use async_trait::async_trait;

use super::{GitlabClient, GitlabError, NoteTarget};
use crate::ci::feedback::Feedback;

pub struct GitlabNote {
    client: Arc<GitlabClient>,
    /// The merge request's project (id or path).
    project: String,
    target: NoteTarget,
    /// `https://gitlab.example/group/app/-/merge_requests/7`: the page the note's link points into.
    page_url: String,
    id: Option<u64>,
    gave_up: bool,
}

impl GitlabNote {
    pub fn new(
        client: Arc<GitlabClient>,
        project: String,
        target: NoteTarget,
        page_url: String,
    ) -> Self {
        GitlabNote {
            client,
            project,
            target,
            page_url,
            id: None,
            gave_up: false,
        }
    }

    fn url(&self) -> String {
        match self.id {
            Some(id) => format!("{}#note_{id}", self.page_url),
            None => String::new(),
        }
    }

    /// Gives up on errors that the next call would meet again.
    fn judge(&mut self, e: GitlabError) -> anyhow::Error {
        if matches!(
            e,
            GitlabError::Unauthorized { .. } | GitlabError::NotFound { .. }
        ) {
            self.gave_up = true;
        }
        anyhow::Error::new(e)
    }
}

#[async_trait]
impl Feedback for GitlabNote {
    async fn create(&mut self, body: &str) -> anyhow::Result<String> {
        if self.gave_up {
            return Ok(String::new());
        }
        match self
            .client
            .create_note(&self.project, self.target, body)
            .await
        {
            Ok(note) => {
                self.id = Some(note.id);
                Ok(self.url())
            }
            Err(e) => Err(self.judge(e)),
        }
    }

    async fn update(&mut self, body: &str) -> anyhow::Result<()> {
        let (Some(id), false) = (self.id, self.gave_up) else {
            return Ok(());
        };
        match self
            .client
            .update_note(&self.project, self.target, id, body)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.judge(e)),
        }
    }

    async fn finish(&mut self, body: &str) -> anyhow::Result<String> {
        match (self.id, self.gave_up) {
            (_, true) => Ok(String::new()),
            (Some(id), false) => match self
                .client
                .update_note(&self.project, self.target, id, body)
                .await
            {
                Ok(_) => Ok(self.url()),
                Err(e) => Err(self.judge(e)),
            },
            (None, false) => self.create(body).await,
        }
    }
}

/// Feedback for pipelines without a merge request, or without a token: none.
pub struct NoNote;

#[async_trait]
impl Feedback for NoNote {
    async fn create(&mut self, _body: &str) -> anyhow::Result<String> {
        Ok(String::new())
    }
    async fn update(&mut self, _body: &str) -> anyhow::Result<()> {
        Ok(())
    }
    async fn finish(&mut self, _body: &str) -> anyhow::Result<String> {
        Ok(String::new())
    }
}
