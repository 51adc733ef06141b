//! `Feedback` on GitHub: one issue/PR comment (`POST .../issues/{n}/comments`), edited in
//! place (`PATCH .../issues/comments/{id}`).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;

use super::api::GithubApi;
use crate::ci::feedback::Feedback;

pub struct GithubComment {
    api: Arc<GithubApi>,
    number: u64,
    id: Option<u64>,
    url: String,
}

impl GithubComment {
    pub fn new(api: Arc<GithubApi>, number: u64) -> Self {
        GithubComment {
            api,
            number,
            id: None,
            url: String::new(),
        }
    }
}

#[async_trait]
impl Feedback for GithubComment {
    async fn create(&mut self, body: &str) -> anyhow::Result<String> {
        let c = self
            .api
            .create_comment(self.number, body)
            .await
            .context("cannot post the progress comment")?;
        self.id = Some(c.id);
        self.url = c.html_url;
        Ok(self.url.clone())
    }

    async fn update(&mut self, body: &str) -> anyhow::Result<()> {
        if let Some(id) = self.id {
            self.api.update_comment(id, body).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, body: &str) -> anyhow::Result<String> {
        match self.id {
            Some(id) => {
                let c = self
                    .api
                    .update_comment(id, body)
                    .await
                    .context("cannot post the final comment")?;
                if !c.html_url.is_empty() {
                    self.url = c.html_url;
                }
                Ok(self.url.clone())
            }
            None => self.create(body).await,
        }
    }
}
