//! Putting the zip at the signed upload URL `CreateArtifact` returned (an Azure block blob).
//!
//! Up to one block size: one Put Blob (`x-ms-blob-type: BlockBlob`). Larger: Put Block for each
//! chunk (`comp=block`, ids of one length, 5 at a time), then Put Block List (in order) (`comp=blocklist`), as GitHub's
//! own client does. `x-ms-version` is explicit: versions before 2019-12-12 cap one body at
//! 256 MiB or 4 MiB. The URL carries a signature (`sig`): it never reaches a log line or an
//! error message.

use base64::Engine;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::CONTENT_TYPE;

use super::ArtifactError;
use crate::http::retry::{self, Idempotency, RetryPolicy};

/// The storage API version sent.
pub const X_MS_VERSION: &str = "2020-10-02";

/// GitHub's client uploads in 8 MiB blocks, 5 at a time.
pub const DEFAULT_BLOCK_SIZE: usize = 8 * 1024 * 1024;
const BLOCK_CONCURRENCY: usize = 5;

/// Where and how to put the bytes.
pub struct BlobTarget<'a> {
    pub http: &'a reqwest::Client,
    pub url: url::Url,
    pub policy: RetryPolicy,
    pub block_size: usize,
}

impl BlobTarget<'_> {
    /// Uploads `bytes` (a zip) in one request or in blocks.
    pub async fn upload(&self, bytes: &[u8]) -> Result<(), ArtifactError> {
        if bytes.len() <= self.block_size {
            return self.put_blob(bytes).await;
        }
        let blocks: Vec<(String, &[u8])> = bytes
            .chunks(self.block_size.max(1))
            .enumerate()
            .map(|(index, chunk)| (block_id(index), chunk))
            .collect();
        stream::iter(&blocks)
            .map(|(id, chunk)| self.put_block(id, chunk))
            .buffer_unordered(BLOCK_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        let ids: Vec<String> = blocks.into_iter().map(|(id, _)| id).collect();
        self.put_block_list(&ids).await
    }

    async fn put_blob(&self, bytes: &[u8]) -> Result<(), ArtifactError> {
        self.put(
            "Put Blob",
            self.url.clone(),
            bytes.to_vec(),
            &[
                ("x-ms-blob-type", "BlockBlob"),
                (CONTENT_TYPE.as_str(), "application/zip"),
            ],
        )
        .await
    }

    async fn put_block(&self, id: &str, chunk: &[u8]) -> Result<(), ArtifactError> {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair("blockid", id);
        self.put("Put Block", url, chunk.to_vec(), &[]).await
    }

    async fn put_block_list(&self, ids: &[String]) -> Result<(), ArtifactError> {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("comp", "blocklist");
        let mut xml = String::from(r#"<?xml version="1.0" encoding="utf-8"?><BlockList>"#);
        for id in ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        self.put(
            "Put Block List",
            url,
            xml.into_bytes(),
            &[
                ("x-ms-blob-content-type", "application/zip"),
                (CONTENT_TYPE.as_str(), "application/xml"),
            ],
        )
        .await
    }

    /// One PUT (idempotent: the same bytes at the same place) with retries; any answer but 2xx fails with its status and the storage error
    /// code (never the URL).
    async fn put(
        &self,
        operation: &'static str,
        url: url::Url,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<(), ArtifactError> {
        let what = format!("artifact blob {operation}");
        let response = retry::send(&self.policy, Idempotency::Idempotent, &what, || {
            let mut request = self
                .http
                .put(url.clone())
                .header("x-ms-version", X_MS_VERSION)
                .body(body.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request
        })
        .await
        .map_err(|reason| ArtifactError::Unreachable { what, reason })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no error code")
            .to_string();
        Err(ArtifactError::BlobUpload {
            operation,
            status,
            code,
        })
    }
}

/// Block ids: base64 of a fixed-width counter (all ids of a blob must have one length).
fn block_id(index: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("sandcrab-block-{index:08}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_one_length() {
        let ids: Vec<String> = [0, 9, 10, 12345].into_iter().map(block_id).collect();
        assert!(ids.iter().all(|id| id.len() == ids[0].len()), "{ids:?}");
        assert_ne!(ids[0], ids[1]);
    }
}
