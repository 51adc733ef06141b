//! A strict fake GitLab on loopback: the REST endpoints sandcrab uses, from an explicit table
//! (method, path, body fields with their types, the docs.gitlab.com page of each), and git over
//! smart HTTP behind the token (tests/fakes/gitlab_git.rs).
//!
//! It judges every request as GitLab does: `PRIVATE-TOKEN` must be the access token (else 401
//! `{"message":"401 Unauthorized"}`); the project must be `42` or `group%2Fapp` (else 404
//! `{"message":"404 Project Not Found"}`); a body is JSON with the documented fields only, of
//! the documented types (else 400 `{"error":"<field> is missing"}` / `"<field> is invalid"`,
//! Grape's shapes; unknown fields are refused too, which GitLab would ignore: a typo must
//! fail here); an open merge request of the same source branch is 409; a diff position that
//! does not name a line of the merge request's diff (or an unchanged line without both
//! `old_line` and `new_line`) is 400 with GitLab's `line_code` message. Every request is
//! recorded; scripted faults answer first.
#![allow(dead_code)]

#[path = "gitlab_git.rs"]
mod git;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use git::Bare;

pub const TOKEN: &str = "glpat-fake-notes-token";
/// The job token git accepts for reads (user `gitlab-ci-token`).
pub const JOB_TOKEN: &str = "glcbt-fake-job-token-5555";
/// The project's id and path.
pub const PROJECT_ID: &str = "42";
pub const PROJECT_PATH: &str = "group/app";

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The raw path, percent-encoding kept.
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub status: u16,
}

/// A merge request the fake knows.
#[derive(Debug, Clone)]
pub struct Mr {
    pub iid: u64,
    pub title: String,
    pub description: String,
    pub source_branch: String,
    pub target_branch: String,
    pub source_project_id: u64,
    pub state: String,
}

#[derive(Default)]
pub struct Book {
    pub requests: Vec<Request>,
    pub faults: VecDeque<u16>,
    /// Notes by (project, kind, iid) → id → body.
    pub notes: HashMap<(String, String, u64), HashMap<u64, String>>,
    pub issues: HashMap<u64, (String, String)>,
    pub merge_requests: Vec<Mr>,
    /// Created diff threads: (mr iid, body, position).
    pub discussions: Vec<(u64, String, Value)>,
    /// Answer every diff thread with GitLab's 400 (a position it cannot place).
    pub refuse_positions: bool,
    next_id: u64,
}

pub struct FakeGitlab {
    pub api_url: String,
    /// `http://127.0.0.1:PORT`.
    pub server_url: String,
    pub book: Arc<Mutex<Book>>,
    /// Where `group/app.git` lives, when the fake serves git.
    pub git_root: PathBuf,
    _root: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    book: Arc<Mutex<Book>>,
    root: PathBuf,
}

// ---- the table -------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Object(&'static [Field]),
}

#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn f(name: &'static str, ty: Ty, required: bool) -> Field {
    Field { name, ty, required }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    CreateNote,
    UpdateNote,
    GetIssue,
    GetMr,
    ListMrs,
    CreateMr,
    CreateDiscussion,
}

struct Endpoint {
    method: &'static str,
    /// Segments after `/api/v4/`; `:x` matches one segment.
    path: &'static [&'static str],
    fields: &'static [Field],
    op: Op,
    /// The page that documents it.
    doc: &'static str,
}

const NOTE: &[Field] = &[f("body", Ty::Str, true)];
const POSITION: &[Field] = &[
    f("position_type", Ty::Str, true),
    f("base_sha", Ty::Str, true),
    f("start_sha", Ty::Str, true),
    f("head_sha", Ty::Str, true),
    f("old_path", Ty::Str, true),
    f("new_path", Ty::Str, true),
    f("old_line", Ty::Int, false),
    f("new_line", Ty::Int, false),
];

const TABLE: &[Endpoint] = &[
    Endpoint {
        method: "POST",
        path: &["projects", ":id", ":kind", ":iid", "notes"],
        fields: NOTE,
        op: Op::CreateNote,
        doc: "https://docs.gitlab.com/api/notes/#create-new-merge-request-note (and #create-new-issue-note)",
    },
    Endpoint {
        method: "PUT",
        path: &["projects", ":id", ":kind", ":iid", "notes", ":note_id"],
        fields: NOTE,
        op: Op::UpdateNote,
        doc: "https://docs.gitlab.com/api/notes/#modify-existing-merge-request-note",
    },
    Endpoint {
        method: "GET",
        path: &["projects", ":id", "issues", ":iid"],
        fields: &[],
        op: Op::GetIssue,
        doc: "https://docs.gitlab.com/api/issues/#single-project-issue",
    },
    Endpoint {
        method: "GET",
        path: &["projects", ":id", "merge_requests", ":iid"],
        fields: &[],
        op: Op::GetMr,
        doc: "https://docs.gitlab.com/api/merge_requests/#get-single-mr",
    },
    Endpoint {
        method: "GET",
        path: &["projects", ":id", "merge_requests"],
        fields: &[],
        op: Op::ListMrs,
        doc: "https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests",
    },
    Endpoint {
        method: "POST",
        path: &["projects", ":id", "merge_requests"],
        fields: &[
            f("source_branch", Ty::Str, true),
            f("target_branch", Ty::Str, true),
            f("title", Ty::Str, true),
            f("description", Ty::Str, false),
            f("remove_source_branch", Ty::Bool, false),
            f("squash", Ty::Bool, false),
            f("labels", Ty::Str, false),
            f("assignee_id", Ty::Int, false),
            f("target_project_id", Ty::Int, false),
        ],
        op: Op::CreateMr,
        doc: "https://docs.gitlab.com/api/merge_requests/#create-mr",
    },
    Endpoint {
        method: "POST",
        path: &["projects", ":id", "merge_requests", ":iid", "discussions"],
        fields: &[
            f("body", Ty::Str, true),
            f("position", Ty::Object(POSITION), false),
        ],
        op: Op::CreateDiscussion,
        doc: "https://docs.gitlab.com/api/discussions/#create-a-new-thread-in-the-merge-request-diff",
    },
];

/// The first of `fields` missing or of the wrong type in `body` (Grape's 400 text).
fn check_fields(fields: &[Field], body: &Value, prefix: &str) -> Result<(), String> {
    let Some(map) = body.as_object() else {
        return Err(format!("{}body is invalid", prefix));
    };
    for key in map.keys() {
        if !fields.iter().any(|f| f.name == key) {
            return Err(format!("{prefix}{key} does not have a valid value"));
        }
    }
    for field in fields {
        let name = if prefix.is_empty() {
            field.name.to_string()
        } else {
            format!("{}[{}]", prefix.trim_end_matches('.'), field.name)
        };
        match map.get(field.name) {
            None | Some(Value::Null) if field.required => return Err(format!("{name} is missing")),
            None | Some(Value::Null) => {}
            Some(v) => {
                let ok = match field.ty {
                    Ty::Str => v.is_string(),
                    Ty::Int => v.is_u64(),
                    Ty::Bool => v.is_boolean(),
                    Ty::Object(inner) => {
                        check_fields(inner, v, &format!("{name}."))?;
                        true
                    }
                };
                if !ok {
                    return Err(format!("{name} is invalid"));
                }
            }
        }
    }
    Ok(())
}

fn message(status: u16, message: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({ "message": message })),
    )
        .into_response()
}

fn grape_error(text: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": text }))).into_response()
}

impl FakeGitlab {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let book = Arc::new(Mutex::new(Book {
            next_id: 1000,
            ..Book::default()
        }));
        let shared = Shared {
            book: book.clone(),
            root: root.path().to_path_buf(),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitlab {
            api_url: format!("http://{addr}/api/v4"),
            server_url: format!("http://{addr}"),
            book,
            git_root: root.path().to_path_buf(),
            _root: root,
            _task: task,
        }
    }

    /// The project's repository (bare), served at `{server}/group/app.git`.
    pub fn bare(&self) -> Bare {
        Bare(self.git_root.join(format!("{PROJECT_PATH}.git")))
    }

    /// The clone URL as the runner writes it for `origin`: the job token in it.
    pub fn runner_remote(&self) -> String {
        let host = self.server_url.trim_start_matches("http://");
        format!("http://gitlab-ci-token:{JOB_TOKEN}@{host}/{PROJECT_PATH}.git")
    }

    /// Answers these statuses, in order, before answering normally.
    pub fn fail(&self, statuses: &[u16]) {
        self.book.lock().unwrap().faults.extend(statuses);
    }

    /// Forgets the requests so far (the runner's own clone, before the job starts).
    pub fn forget_requests(&self) {
        self.book.lock().unwrap().requests.clear();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.book.lock().unwrap().requests.clone()
    }

    pub fn note(&self, project: &str, kind: &str, iid: u64, id: u64) -> Option<String> {
        let book = self.book.lock().unwrap();
        let key = (project.to_string(), kind.to_string(), iid);
        book.notes.get(&key)?.get(&id).cloned()
    }

    pub fn add_issue(&self, iid: u64, title: &str, description: &str) {
        let mut book = self.book.lock().unwrap();
        book.issues.insert(iid, (title.into(), description.into()));
    }

    pub fn add_merge_request(&self, mr: Mr) {
        self.book.lock().unwrap().merge_requests.push(mr);
    }

    pub fn merge_requests(&self) -> Vec<Mr> {
        self.book.lock().unwrap().merge_requests.clone()
    }

    pub fn discussions(&self) -> Vec<(u64, String, Value)> {
        self.book.lock().unwrap().discussions.clone()
    }

    pub fn refuse_positions(&self) {
        self.book.lock().unwrap().refuse_positions = true;
    }
}

/// `diff_refs` of a merge request, from the repository: the head of
/// `refs/merge-requests/<iid>/head`, the target branch's tip, their merge base.
fn diff_refs(bare: &Bare, mr: &Mr) -> Option<Value> {
    let head = bare.rev(&format!("refs/merge-requests/{}/head", mr.iid))?;
    let start = bare.rev(&format!("refs/heads/{}", mr.target_branch))?;
    let base = bare.merge_base(&head, &start)?;
    Some(json!({"base_sha": base, "head_sha": head, "start_sha": start}))
}

fn mr_json(server: &str, bare: &Bare, mr: &Mr) -> Value {
    json!({
        "id": 5000 + mr.iid, "iid": mr.iid, "project_id": 42, "title": mr.title,
        "description": mr.description, "state": mr.state,
        "source_branch": mr.source_branch, "target_branch": mr.target_branch,
        "source_project_id": mr.source_project_id, "target_project_id": 42,
        "draft": mr.title.starts_with("Draft:"),
        "sha": bare.rev(&format!("refs/heads/{}", mr.source_branch)),
        "diff_refs": diff_refs(bare, mr),
        "web_url": format!("{server}/{PROJECT_PATH}/-/merge_requests/{}", mr.iid),
    })
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.0.path().to_string();
    let query = uri.0.query().unwrap_or("").to_string();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let server = format!("http://{host}");
    let record_headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let record = |book: &mut Book, status: u16| {
        book.requests.push(Request {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: record_headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            status,
        });
    };
    let Some(api_path) = path.strip_prefix("/api/v4/") else {
        // Git over smart HTTP.
        let auth = git::git_auth(&headers, TOKEN, JOB_TOKEN);
        let response = git::serve(
            &shared.root,
            method.as_str(),
            &path,
            &query,
            &headers,
            body.to_vec(),
            auth,
        )
        .await;
        let mut book = shared.book.lock().unwrap();
        book.requests.push(Request {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: record_headers.clone(),
            body: String::new(),
            status: response.status().as_u16(),
        });
        return response;
    };
    let segments: Vec<&str> = api_path.split('/').collect();
    let mut book = shared.book.lock().unwrap();
    let found = TABLE.iter().find(|e| {
        e.method == method.as_str()
            && e.path.len() == segments.len()
            && e.path
                .iter()
                .zip(&segments)
                .all(|(p, s)| p.starts_with(':') || p == s)
    });
    let Some(endpoint) = found else {
        record(&mut book, 404);
        return message(404, "404 Not Found".into());
    };
    let param = |name: &str| {
        endpoint
            .path
            .iter()
            .position(|p| *p == name)
            .map(|i| segments[i].to_string())
    };
    let answer = (|| -> Response {
        if let Some(fault) = book.faults.pop_front() {
            return message(fault, "scripted fault".into());
        }
        if record_headers.get("private-token").map(String::as_str) != Some(TOKEN) {
            return message(401, "401 Unauthorized".into());
        }
        let project = param(":id").unwrap_or_default();
        if project != PROJECT_ID && !project.eq_ignore_ascii_case("group%2Fapp") {
            return message(404, "404 Project Not Found".into());
        }
        let payload: Value = if endpoint.fields.is_empty() {
            Value::Null
        } else {
            let json_type = record_headers
                .get("content-type")
                .is_some_and(|c| c.starts_with("application/json"));
            if !json_type {
                return message(415, "415 Unsupported Media Type".into());
            }
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => return grape_error("body is invalid JSON".into()),
            }
        };
        if !endpoint.fields.is_empty() {
            if let Err(e) = check_fields(endpoint.fields, &payload, "") {
                return grape_error(e);
            }
        }
        let iid = || param(":iid").and_then(|s| s.parse::<u64>().ok());
        let bare = Bare(shared.root.join(format!("{PROJECT_PATH}.git")));
        match endpoint.op {
            Op::CreateNote | Op::UpdateNote => {
                let kind = param(":kind").unwrap_or_default();
                let Some(iid) = iid().filter(|_| kind == "merge_requests" || kind == "issues")
                else {
                    return message(404, "404 Not Found".into());
                };
                let text = payload["body"].as_str().unwrap_or("").to_string();
                let decoded = project.replace("%2F", "/").replace("%2f", "/");
                let key = (decoded, kind.clone(), iid);
                let id = if endpoint.op == Op::CreateNote {
                    book.next_id += 1;
                    book.next_id
                } else {
                    let id: u64 = param(":note_id").and_then(|s| s.parse().ok()).unwrap_or(0);
                    if !book.notes.get(&key).is_some_and(|n| n.contains_key(&id)) {
                        return message(404, "404 Not found".into());
                    }
                    id
                };
                book.notes.entry(key).or_default().insert(id, text.clone());
                let noteable = if kind == "issues" {
                    "Issue"
                } else {
                    "MergeRequest"
                };
                let status = if endpoint.op == Op::CreateNote {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let note = json!({"id": id, "body": text, "noteable_type": noteable,
                                  "noteable_iid": iid, "system": false});
                (status, Json(note)).into_response()
            }
            Op::GetIssue => {
                match iid().and_then(|i| book.issues.get(&i).cloned().map(|t| (i, t))) {
                    Some((iid, (title, description))) => Json(json!({
                        "id": 9000 + iid, "iid": iid, "project_id": 42, "title": title,
                        "description": description, "state": "opened",
                        "web_url": format!("{server}/{PROJECT_PATH}/-/issues/{iid}"),
                    }))
                    .into_response(),
                    None => message(404, "404 Issue Not Found".into()),
                }
            }
            Op::GetMr => match book.merge_requests.iter().find(|m| Some(m.iid) == iid()) {
                Some(mr) => Json(mr_json(&server, &bare, mr)).into_response(),
                None => message(404, "404 Merge Request Not Found".into()),
            },
            Op::ListMrs => {
                let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let list: Vec<Value> = book
                    .merge_requests
                    .iter()
                    .filter(|m| q.get("source_branch").is_none_or(|b| *b == m.source_branch))
                    .filter(|m| q.get("target_branch").is_none_or(|b| *b == m.target_branch))
                    .filter(|m| q.get("state").is_none_or(|s| *s == m.state))
                    .map(|m| mr_json(&server, &bare, m))
                    .collect();
                Json(Value::Array(list)).into_response()
            }
            Op::CreateMr => {
                let text = |k: &str| payload[k].as_str().unwrap_or("").to_string();
                let (source, target) = (text("source_branch"), text("target_branch"));
                for branch in [&source, &target] {
                    if bare.rev(&format!("refs/heads/{branch}")).is_none() {
                        return message(
                            400,
                            json!([format!("Branch \"{branch}\" does not exist")]),
                        );
                    }
                }
                if let Some(open) = book.merge_requests.iter().find(|m| {
                    m.state == "opened" && m.source_branch == source && m.target_branch == target
                }) {
                    return message(
                        409,
                        json!([format!(
                            "Another open merge request already exists for this source branch: !{}",
                            open.iid
                        )]),
                    );
                }
                let iid = book.merge_requests.iter().map(|m| m.iid).max().unwrap_or(0) + 1;
                let mr = Mr {
                    iid,
                    title: text("title"),
                    description: text("description"),
                    source_branch: source,
                    target_branch: target,
                    source_project_id: 42,
                    state: "opened".into(),
                };
                // GitLab keeps the head of every merge request under refs/merge-requests/.
                let head = bare
                    .rev(&format!("refs/heads/{}", mr.source_branch))
                    .unwrap();
                bare.git(&[
                    "update-ref",
                    &format!("refs/merge-requests/{iid}/head"),
                    &head,
                ]);
                let value = mr_json(&server, &bare, &mr);
                book.merge_requests.push(mr);
                (StatusCode::CREATED, Json(value)).into_response()
            }
            Op::CreateDiscussion => {
                let Some(mr) = book
                    .merge_requests
                    .iter()
                    .find(|m| Some(m.iid) == iid())
                    .cloned()
                else {
                    return message(404, "404 Merge Request Not Found".into());
                };
                let position = payload.get("position").cloned().unwrap_or(Value::Null);
                if !position.is_null() {
                    if let Err(why) = judge_position(&bare, &mr, &position, book.refuse_positions) {
                        return message(400, why.into());
                    }
                }
                let body = payload["body"].as_str().unwrap_or("").to_string();
                book.discussions
                    .push((mr.iid, body.clone(), position.clone()));
                book.next_id += 1;
                let id = book.next_id;
                let discussion = json!({
                    "id": format!("{id:040x}"), "individual_note": false,
                    "notes": [{"id": id, "type": "DiffNote", "body": body, "position": position}],
                });
                (StatusCode::CREATED, Json(discussion)).into_response()
            }
        }
    })();
    let status = answer.status().as_u16();
    record(&mut book, status);
    answer
}

/// GitLab's refusal of a diff position it cannot turn into a line code.
const LINE_CODE: &str =
    "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}";

fn judge_position(
    bare: &Bare,
    mr: &Mr,
    position: &Value,
    refuse: bool,
) -> Result<(), &'static str> {
    if refuse {
        return Err(LINE_CODE);
    }
    if position["position_type"] != "text" {
        return Err("400 Bad request - position_type must be text for a line");
    }
    let refs = diff_refs(bare, mr).ok_or(LINE_CODE)?;
    for sha in ["base_sha", "start_sha", "head_sha"] {
        if position[sha] != refs[sha] {
            return Err(LINE_CODE);
        }
    }
    let diff = bare.diff(
        refs["base_sha"].as_str().unwrap(),
        refs["head_sha"].as_str().unwrap(),
    );
    let (old, new) = (position["old_line"].as_u64(), position["new_line"].as_u64());
    let path = position["new_path"].as_str().unwrap_or("");
    if position["old_path"].as_str() != Some(path) {
        return Err(LINE_CODE);
    }
    let ok = git::diff_lines(&diff)
        .into_iter()
        .any(|(p, o, n)| p == path && (o, n) == (old, new));
    if ok {
        Ok(())
    } else {
        Err(LINE_CODE)
    }
}
