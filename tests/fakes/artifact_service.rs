//! A fake GitHub artifact service (Twirp JSON) and a fake blob store, each on its own loopback
//! port, that check what the real ones check and record every request.
//!
//! The results service wants `Authorization: Bearer <TOKEN>`, JSON with the snake_case field
//! names and the backend ids of the token, and on `FinalizeArtifact` a `size` and
//! `sha256:<hex>` that match the bytes the blob store holds (else HTTP 400, as a checksum
//! mismatch is). The blob store wants the signature of the URL it handed out, `x-ms-version`,
//! and `x-ms-blob-type: BlockBlob` on Put Blob; it assembles blocks on Put Block List. Faults
//! (statuses answered before the real answer) are scripted per operation.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const RUN_ID: &str = "3e6a2a1f-run-backend";
pub const JOB_ID: &str = "9b1c7d2e-job-backend";
/// The signature in the signed URL (URL-encoded, as Azure's are) and decoded.
pub const SIG_IN_URL: &str = "SECRETSIG%2Bdo%2FNotLog%3D";
pub const SIG: &str = "SECRETSIG+do/NotLog=";
pub const ARTIFACT_ID: i64 = 4242;

/// A runtime token (JWT) whose `scp` holds `scopes`.
pub fn token_with_scopes(scopes: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let payload = json!({"scp": scopes, "iss": "fake", "exp": 4_102_444_800u64}).to_string();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"typ":"JWT","alg":"RS256"}"#),
        b64(&payload)
    )
}

/// The token of the fake's job.
pub fn token() -> String {
    token_with_scopes(&format!(
        "Actions.GenericRead:x:y Actions.Results:{RUN_ID}:{JOB_ID} Actions.UploadArtifacts:x:y"
    ))
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    /// `CreateArtifact`, `FinalizeArtifact`, `Put Blob`, `Put Block`, `Put Block List`.
    pub operation: String,
    pub headers: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub json: Value,
    pub body_len: usize,
    pub status: u16,
}

/// What the fake was told to do and what it saw.
#[derive(Default)]
pub struct Book {
    pub calls: Vec<Call>,
    /// Statuses to answer, in order, before the real answer, per operation.
    pub faults: HashMap<String, VecDeque<u16>>,
    /// A status answered to every blob PUT.
    pub blob_always: Option<u16>,
    pub blocks: HashMap<String, Vec<u8>>,
    /// The committed blob, per artifact name.
    pub blobs: HashMap<String, Vec<u8>>,
    pub finalized: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    book: Arc<Mutex<Book>>,
    blob_base: Arc<Mutex<String>>,
}

/// Both fakes, serving until dropped.
pub struct FakeArtifactService {
    pub results_url: String,
    pub book: Arc<Mutex<Book>>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeArtifactService {
    pub async fn start() -> Self {
        let shared = Shared {
            book: Arc::new(Mutex::new(Book::default())),
            blob_base: Arc::new(Mutex::new(String::new())),
        };
        let results = Router::new()
            .route(
                "/twirp/github.actions.results.api.v1.ArtifactService/{method}",
                post(twirp),
            )
            .with_state(shared.clone());
        let blobs = Router::new()
            .route("/artifacts/{name}", put(blob))
            .with_state(shared.clone());
        let (results_addr, a) = serve(results).await;
        let (blob_addr, b) = serve(blobs).await;
        *shared.blob_base.lock().unwrap() = format!("http://{blob_addr}");
        FakeArtifactService {
            results_url: format!("http://{results_addr}/some/ignored/path"),
            book: shared.book,
            _tasks: vec![a, b],
        }
    }

    /// Answers `statuses` to `operation` before answering normally.
    pub fn fail(&self, operation: &str, statuses: &[u16]) {
        let mut book = self.book.lock().unwrap();
        book.faults
            .entry(operation.into())
            .or_default()
            .extend(statuses);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.book.lock().unwrap().calls.clone()
    }

    pub fn operations(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.operation).collect()
    }

    pub fn blob(&self, name: &str) -> Option<Vec<u8>> {
        self.book.lock().unwrap().blobs.get(name).cloned()
    }
}

async fn serve(app: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

fn headers_map(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn twirp_error(status: u16, code: &str, msg: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, Json(json!({"code": code, "msg": msg}))).into_response()
}

/// Records the call and pops a scripted fault, if any.
fn record(book: &mut Book, mut call: Call, verdict: Result<(), (u16, String)>) -> Option<u16> {
    let fault = book
        .faults
        .get_mut(&call.operation)
        .and_then(VecDeque::pop_front);
    call.status = fault.unwrap_or(match &verdict {
        Ok(()) => 200,
        Err((status, _)) => *status,
    });
    book.calls.push(call);
    fault
}

async fn twirp(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = Call {
        operation: method.clone(),
        headers: headers_map(&headers),
        query: HashMap::new(),
        json: json.clone(),
        body_len: body.len(),
        status: 0,
    };
    let mut book = shared.book.lock().unwrap();
    let verdict = check_twirp(&book, &method, &call.headers, &json);
    if let Some(fault) = record(&mut book, call, verdict.clone()) {
        return twirp_error(fault, "unavailable", "scripted fault");
    }
    if let Err((status, msg)) = verdict {
        let code = if status == 401 {
            "unauthenticated"
        } else {
            "invalid_argument"
        };
        return twirp_error(status, code, &msg);
    }
    let name = json["name"].as_str().unwrap().to_string();
    match method.as_str() {
        "CreateArtifact" => {
            let base = shared.blob_base.lock().unwrap().clone();
            let url = format!("{base}/artifacts/{name}?sv=2020-10-02&sr=b&sp=cw&sig={SIG_IN_URL}");
            Json(json!({"ok": true, "signed_upload_url": url, "unknown_field": 1})).into_response()
        }
        _ => {
            book.finalized.push(name);
            Json(json!({"ok": true, "artifact_id": ARTIFACT_ID.to_string()})).into_response()
        }
    }
}

/// What the real service would refuse.
fn check_twirp(
    book: &Book,
    method: &str,
    headers: &HashMap<String, String>,
    json: &Value,
) -> Result<(), (u16, String)> {
    let bad = |msg: String| Err((400, msg));
    if headers.get("authorization") != Some(&format!("Bearer {}", token())) {
        return Err((401, "bad bearer token".into()));
    }
    if !headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return bad("content-type is not JSON".into());
    }
    let allowed: &[&str] = match method {
        "CreateArtifact" => &[
            "workflow_run_backend_id",
            "workflow_job_run_backend_id",
            "name",
            "version",
            "expires_at",
        ],
        "FinalizeArtifact" => &[
            "workflow_run_backend_id",
            "workflow_job_run_backend_id",
            "name",
            "size",
            "hash",
        ],
        _ => return Err((404, format!("no method {method}"))),
    };
    let Some(fields) = json.as_object() else {
        return bad("body is not a JSON object".into());
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return bad(format!("unknown field {unknown}"));
    }
    if json["workflow_run_backend_id"] != RUN_ID || json["workflow_job_run_backend_id"] != JOB_ID {
        return bad("backend ids do not match the token".into());
    }
    let Some(name) = json["name"].as_str() else {
        return bad("no name".into());
    };
    if method == "CreateArtifact" {
        if json["version"] != 4 {
            return bad("version must be 4".into());
        }
        return Ok(());
    }
    let Some(blob) = book.blobs.get(name) else {
        return bad("no blob uploaded".into());
    };
    let want_hash = format!("sha256:{}", hex(&Sha256::digest(blob)));
    let size = blob.len().to_string();
    if json["size"].as_str() != Some(size.as_str()) || json["hash"] != want_hash.as_str() {
        return bad(format!(
            "size or hash mismatch: want {} {want_hash}",
            blob.len()
        ));
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn blob(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = match query.get("comp").map(String::as_str) {
        None => "Put Blob",
        Some("block") => "Put Block",
        Some("blocklist") => "Put Block List",
        Some(_) => "unknown",
    };
    let call = Call {
        operation: operation.into(),
        headers: headers_map(&headers),
        query: query.clone(),
        json: Value::Null,
        body_len: body.len(),
        status: 0,
    };
    let mut book = shared.book.lock().unwrap();
    let verdict = check_blob(&call);
    let always = book.blob_always;
    if let Some(status) = record(&mut book, call, verdict.clone()).or(always) {
        book.calls.last_mut().unwrap().status = status;
        return (
            StatusCode::from_u16(status).unwrap(),
            [("x-ms-error-code", "ScriptedFault")],
        )
            .into_response();
    }
    if let Err((status, code)) = verdict {
        return (
            StatusCode::from_u16(status).unwrap(),
            [("x-ms-error-code", code)],
        )
            .into_response();
    }
    match operation {
        "Put Blob" => {
            book.blobs.insert(name, body.to_vec());
        }
        "Put Block" => {
            book.blocks.insert(query["blockid"].clone(), body.to_vec());
        }
        _ => {
            let text = String::from_utf8_lossy(&body).into_owned();
            let mut assembled = Vec::new();
            for id in text
                .split("<Latest>")
                .skip(1)
                .filter_map(|s| s.split("</Latest>").next())
            {
                match book.blocks.get(id) {
                    Some(bytes) => assembled.extend_from_slice(bytes),
                    None => {
                        return (
                            StatusCode::BAD_REQUEST,
                            [("x-ms-error-code", "InvalidBlockList".to_string())],
                        )
                            .into_response()
                    }
                }
            }
            book.blobs.insert(name, assembled);
        }
    }
    StatusCode::CREATED.into_response()
}

/// What Azure would refuse.
fn check_blob(call: &Call) -> Result<(), (u16, String)> {
    if call.query.get("sig").map(String::as_str) != Some(SIG) {
        return Err((403, "AuthenticationFailed".into()));
    }
    if !call.headers.contains_key("x-ms-version") {
        return Err((400, "MissingRequiredHeader".into()));
    }
    if call.operation == "Put Blob"
        && call.headers.get("x-ms-blob-type").map(String::as_str) != Some("BlockBlob")
    {
        return Err((400, "MissingRequiredHeader".into()));
    }
    if call.operation == "Put Block" && !call.query.contains_key("blockid") {
        return Err((400, "InvalidQueryParameterValue".into()));
    }
    Ok(())
}
