//! A fake GitLab notes API on loopback: `POST/PUT /api/v4/projects/:id/(merge_requests|issues)/
//! :iid/notes[/:note_id]`. It wants `PRIVATE-TOKEN: <TOKEN>` (else 401, as GitLab answers),
//! JSON with a `body`, and an existing note to update (else 404); it records every request and
//! answers scripted faults first.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const TOKEN: &str = "glpat-fake-notes-token";

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The raw path, percent-encoding kept.
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub status: u16,
}

#[derive(Default)]
pub struct Book {
    pub requests: Vec<Request>,
    pub faults: VecDeque<u16>,
    /// Notes by (project, kind, iid) → id → body.
    pub notes: HashMap<(String, String, u64), HashMap<u64, String>>,
    next_id: u64,
}

pub struct FakeGitlab {
    pub api_url: String,
    pub book: Arc<Mutex<Book>>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeGitlab {
    pub async fn start() -> Self {
        let book = Arc::new(Mutex::new(Book {
            next_id: 1000,
            ..Book::default()
        }));
        let app = Router::new()
            .route(
                "/api/v4/projects/{project}/{kind}/{iid}/notes",
                post(create),
            )
            .route(
                "/api/v4/projects/{project}/{kind}/{iid}/notes/{id}",
                put(update),
            )
            .with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitlab {
            api_url: format!("http://{addr}/api/v4"),
            book,
            _task: task,
        }
    }

    /// Answers these statuses, in order, before answering normally.
    pub fn fail(&self, statuses: &[u16]) {
        self.book.lock().unwrap().faults.extend(statuses);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.book.lock().unwrap().requests.clone()
    }

    pub fn note(&self, project: &str, kind: &str, iid: u64, id: u64) -> Option<String> {
        let book = self.book.lock().unwrap();
        let key = (project.to_string(), kind.to_string(), iid);
        book.notes.get(&key)?.get(&id).cloned()
    }
}

/// Records the request; returns the answer to give before the real one, if any.
fn screen(
    book: &mut Book,
    method: &Method,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let fault = book.faults.pop_front();
    let unauthorized = headers.get("private-token").map(String::as_str) != Some(TOKEN);
    let not_json = !headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"));
    let status = fault.unwrap_or(if unauthorized {
        401
    } else if not_json {
        415
    } else {
        200
    });
    book.requests.push(Request {
        method: method.to_string(),
        path: uri.0.path().to_string(),
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
        status,
    });
    let message = match status {
        200 => return None,
        401 => "401 Unauthorized",
        415 => "415 Unsupported Media Type",
        _ => "scripted fault",
    };
    Some(
        (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"message": message})),
        )
            .into_response(),
    )
}

fn note_body(body: &Bytes) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("body")?.as_str().map(String::from)
}

fn answer(id: u64, body: &str, kind: &str, iid: u64) -> Response {
    let noteable = if kind == "issues" {
        "Issue"
    } else {
        "MergeRequest"
    };
    let note = json!({"id": id, "body": body, "noteable_type": noteable, "noteable_iid": iid, "system": false});
    (StatusCode::CREATED, Json(note)).into_response()
}

async fn create(
    State(book): State<Arc<Mutex<Book>>>,
    Path((project, kind, iid)): Path<(String, String, u64)>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = book.lock().unwrap();
    if let Some(response) = screen(&mut book, &method, &uri, &headers, &body) {
        return response;
    }
    let Some(text) = note_body(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "body is missing"})),
        )
            .into_response();
    };
    book.next_id += 1;
    let id = book.next_id;
    book.notes
        .entry((project, kind.clone(), iid))
        .or_default()
        .insert(id, text.clone());
    answer(id, &text, &kind, iid)
}

async fn update(
    State(book): State<Arc<Mutex<Book>>>,
    Path((project, kind, iid, id)): Path<(String, String, u64, u64)>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = book.lock().unwrap();
    if let Some(response) = screen(&mut book, &method, &uri, &headers, &body) {
        return response;
    }
    let Some(text) = note_body(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "body is missing"})),
        )
            .into_response();
    };
    let notes = book.notes.entry((project, kind.clone(), iid)).or_default();
    let Some(existing) = notes.get_mut(&id) else {
        book.requests.last_mut().unwrap().status = 404;
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Not found"})),
        )
            .into_response();
    };
    *existing = text.clone();
    let mut response = answer(id, &text, &kind, iid);
    *response.status_mut() = StatusCode::OK;
    response
}
