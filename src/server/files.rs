//! `/api/file`: upload (multipart field `file`, streamed to disk, parents created) and download
//! (streamed) of files by absolute path, answered as OpenHands does: `{"success": true,
//! "file_size": n}`; 400 for a relative path or the wrong kind of file; 404 for a missing one.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use super::error::ApiError;
use super::validation::{missing, required, Answer};
use super::AppState;

/// Bytes read or written at a time.
const BLOCK: usize = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/file/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/file/download", get(download))
}

/// The `path` parameter, which must be absolute.
fn absolute(query: &HashMap<String, String>) -> Answer<PathBuf> {
    let path = PathBuf::from(required(query, "path")?);
    if !path.is_absolute() {
        return Err(ApiError::bad_request("Path must be absolute").into());
    }
    Ok(path)
}

/// OpenHands' `FileUploadResult`.
#[derive(Serialize)]
struct UploadResult {
    success: bool,
    file_size: u64,
}

/// `POST /file/upload?path=ABS`: writes the `file` field to `path`.
async fn upload(
    Query(query): Query<HashMap<String, String>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Answer<Json<UploadResult>> {
    let path = absolute(&query)?;
    if path.is_dir() {
        return Err(ApiError::bad_request("Path is a directory").into());
    }
    let mut multipart = multipart.map_err(|_| missing("body", "file"))?;
    while let Some(field) = multipart.next_field().await.map_err(bad_upload)? {
        if field.name() == Some("file") {
            let size = save(&path, field).await?;
            return Ok(Json(UploadResult {
                success: true,
                file_size: size,
            }));
        }
    }
    Err(missing("body", "file"))
}

fn bad_upload(e: MultipartError) -> ApiError {
    ApiError::bad_request(format!("cannot read the upload: {}", e.body_text()))
}

/// Writes `field` next to `path` then moves it there, so a failed upload leaves no half file.
/// A symlink is written through; an existing file keeps its permissions.
async fn save(path: &Path, field: Field<'_>) -> Answer<u64> {
    let target = tokio::fs::canonicalize(path)
        .await
        .unwrap_or_else(|_| path.to_path_buf());
    let parent = target.parent().unwrap_or(Path::new("/"));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists | ErrorKind::NotADirectory => {
                ApiError::bad_request("A parent of the path is not a directory")
            }
            _ => ApiError::from(e),
        })?;
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temp = parent.join(format!(".{name}.upload-{}", uuid::Uuid::new_v4().simple()));
    let written = write_field(&temp, field).await;
    let moved = match written {
        Ok(size) => keep_mode(&target, &temp)
            .await
            .and(tokio::fs::rename(&temp, &target).await)
            .map(|()| size)
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if moved.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    Ok(moved?)
}

async fn write_field(temp: &Path, mut field: Field<'_>) -> Result<u64, ApiError> {
    let mut file = BufWriter::with_capacity(BLOCK, File::create(temp).await?);
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(bad_upload)? {
        file.write_all(&chunk).await?;
        size += chunk.len() as u64;
    }
    file.flush().await?;
    Ok(size)
}

/// Gives `temp` the permissions of `target`, when `target` exists.
async fn keep_mode(target: &Path, temp: &Path) -> std::io::Result<()> {
    match tokio::fs::metadata(target).await {
        Ok(meta) => tokio::fs::set_permissions(temp, meta.permissions()).await,
        Err(_) => Ok(()),
    }
}

/// `GET /file/download?path=ABS`: the file's bytes, streamed.
async fn download(Query(query): Query<HashMap<String, String>>) -> Answer<Response> {
    let path = absolute(&query)?;
    let meta = match tokio::fs::metadata(&path).await {
        Ok(meta) => meta,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Err(ApiError::not_found("File not found").into())
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    if !meta.is_file() {
        return Err(ApiError::bad_request("Path is not a file").into());
    }
    let file = File::open(&path).await.map_err(ApiError::from)?;
    let mut response = Body::from_stream(blocks(file)).into_response();
    let headers = response.headers_mut();
    let values = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, meta.len().to_string()),
        (header::CONTENT_DISPOSITION, disposition(&path)),
    ];
    let modified = meta.modified().ok().map(http_date);
    for (name, value) in values
        .into_iter()
        .chain(modified.map(|m| (header::LAST_MODIFIED, m)))
    {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// The file's content, a block at a time.
fn blocks(file: File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut block = vec![0u8; BLOCK];
        let n = file.read(&mut block).await?;
        if n == 0 {
            return Ok(None);
        }
        block.truncate(n);
        Ok(Some((Bytes::from(block), file)))
    })
}

/// `attachment; filename="name"`, or the RFC 5987 form for names that need escaping.
fn disposition(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let escaped = percent_encode(&name);
    if escaped == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("attachment; filename*=utf-8''{escaped}")
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn http_date(time: std::time::SystemTime) -> String {
    let time: chrono::DateTime<chrono::Utc> = time.into();
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_escapes_only_when_needed() {
        assert_eq!(
            disposition(Path::new("/a/report-1.txt")),
            "attachment; filename=\"report-1.txt\""
        );
        assert_eq!(
            disposition(Path::new("/a/r é.txt")),
            "attachment; filename*=utf-8''r%20%C3%A9.txt"
        );
    }
}
