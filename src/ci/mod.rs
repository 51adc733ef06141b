//! CI integrations: GitHub Actions (artifacts) and GitLab CI (merge request and issue notes).

pub mod artifacts;
pub mod gitlab;
pub mod retry;
