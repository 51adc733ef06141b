//! The HTTP side of rmcp's streamable-HTTP MCP client (`StreamableHttpClient`) over the
//! crate's reqwest 0.12. rmcp's ready-made reqwest client needs reqwest 0.13; this adapter
//! lets one HTTP stack serve the whole binary.
//!
//! What it does, per the MCP streamable-HTTP transport: every client message is a POST that
//! accepts JSON or an SSE stream back; `GET` opens the server's own SSE stream; `DELETE` ends
//! the session. rmcp's worker does the rest (sessions, protocol-version headers, reconnects).
//! Errors never carry the request's URL (`reqwest::Error::without_url`): a URL may hold a
//! token, and rmcp logs transport errors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::http_header::{
    EVENT_STREAM_MIME_TYPE, HEADER_LAST_EVENT_ID, HEADER_SESSION_ID, JSON_MIME_TYPE,
};
use rmcp::transport::streamable_http_client::{
    HttpStatusError, SseError, StreamableHttpClient, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::{Sse, SseStream};

type Error = StreamableHttpError<reqwest::Error>;
type Events = BoxStream<'static, Result<Sse, SseError>>;

/// Headers the transport sets itself; a server's config may not set them.
pub const RESERVED: [&str; 3] = ["accept", "mcp-session-id", "last-event-id"];

/// How many bytes of a failed response's body an error quotes.
const QUOTED: usize = 300;

/// A reqwest 0.12 client as rmcp's streamable-HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
}

impl HttpClient {
    /// A client that follows only same-origin 307/308 redirects (they keep the POST's body;
    /// another origin would receive the server's headers, its token among them).
    pub fn new() -> Result<Self, String> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            let keeps_body = matches!(
                attempt.status(),
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            );
            if !same_origin || !keeps_body || attempt.previous().len() > 5 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .redirect(policy)
            .user_agent(concat!("sandcrab/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        Ok(HttpClient { http })
    }

    fn request(
        &self,
        method: Method,
        uri: &str,
        accept: &'static str,
        session_id: Option<&str>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<RequestBuilder, Error> {
        let mut request = self.http.request(method, uri).header(ACCEPT, accept);
        for (name, value) in headers {
            // rmcp adds the negotiated protocol version the same way; the rest are ours.
            if RESERVED.contains(&name.as_str()) {
                return Err(StreamableHttpError::ReservedHeaderConflict(
                    name.to_string(),
                ));
            }
            request = request.header(name, value);
        }
        if let Some(token) = auth_header {
            request = request.bearer_auth(token);
        }
        if let Some(id) = session_id {
            request = request.header(HEADER_SESSION_ID, id);
        }
        Ok(request)
    }
}

async fn send(request: RequestBuilder) -> Result<Response, Error> {
    request
        .send()
        .await
        .map_err(|e| StreamableHttpError::Client(e.without_url()))
}

fn is(response: &Response, mime: &str) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

fn content_type(response: &Response) -> Option<String> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The body, or `ResponseBodyTooLarge` past `limit` bytes.
async fn body(mut response: Response, limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| StreamableHttpError::Client(e.without_url()))?
    {
        if out.len() + chunk.len() > limit {
            return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The first `limit` bytes of the body, for an error message; a body that cannot be read is
/// left out.
async fn head(mut response: Response, limit: usize) -> String {
    let mut out = Vec::new();
    while out.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            _ => break,
        }
    }
    out.truncate(limit);
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Status metadata rmcp classifies (rate limits and server errors).
fn status_error(status: StatusCode, headers: &HeaderMap) -> Option<HttpStatusError> {
    (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()).then(|| {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        HttpStatusError::new(status.as_u16(), retry_after)
    })
}

/// A response's SSE events, each at most `max_event` bytes of data.
fn events(response: Response, max_event: usize) -> Events {
    let bytes = response.bytes_stream().map_err(reqwest::Error::without_url);
    SseStream::from_bytes_stream(bytes)
        .map(move |event| match event {
            Ok(sse) if sse.data.as_ref().is_some_and(|d| d.len() > max_event) => Err(
                SseError::Body(format!("an SSE event is larger than {max_event} bytes").into()),
            ),
            other => other,
        })
        .boxed()
}

/// A failed response as rmcp's error, with a short quote of what the server said.
async fn failure(response: Response) -> Error {
    let status = response.status();
    let said = head(response, QUOTED).await;
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    StreamableHttpError::UnexpectedServerResponse(Cow::Owned(format!("HTTP {status}{said}")))
}

impl StreamableHttpClient for HttpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Error> {
        let limits = StreamableHttpResponseLimits::default();
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            headers,
            limits,
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, Error> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Error> {
        let accept = "application/json, text/event-stream";
        let with_session = session_id.is_some();
        let request = self
            .request(
                Method::POST,
                &uri,
                accept,
                session_id.as_deref(),
                auth_header,
                headers,
            )?
            .json(&message);
        let response = send(request).await?;
        let status = response.status();
        if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == StatusCode::NOT_FOUND && with_session {
            return Err(StreamableHttpError::SessionExpired);
        }
        let session = response
            .headers()
            .get(HEADER_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Nothing is awaited after a notification, response or error: any 2xx will do.
        let awaits_nothing = !matches!(message, ClientJsonRpcMessage::Request(_));
        if !status.is_success() {
            let statused = status_error(status, response.headers());
            if is(&response, JSON_MIME_TYPE) && status != StatusCode::TOO_MANY_REQUESTS {
                // A JSON-RPC error is the server's answer to the request: rmcp hands it on.
                let text = body(response, limits.max_json_response_size).await?;
                if let Ok(error @ ServerJsonRpcMessage::Error(_)) = serde_json::from_slice(&text) {
                    return Ok(StreamableHttpPostResponse::Json(error, session));
                }
                if let Some(statused) = statused {
                    return Err(statused.into());
                }
                let said = String::from_utf8_lossy(&text[..text.len().min(QUOTED)]).into_owned();
                return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                    format!("HTTP {status}: {}", said.trim()),
                )));
            }
            return Err(match statused {
                Some(statused) => statused.into(),
                None => failure(response).await,
            });
        }
        if is(&response, EVENT_STREAM_MIME_TYPE) {
            let stream = events(response, limits.max_sse_event_size);
            return Ok(StreamableHttpPostResponse::Sse(stream, session));
        }
        if is(&response, JSON_MIME_TYPE) {
            let text = body(response, limits.max_json_response_size).await?;
            return match serde_json::from_slice(&text) {
                Ok(answer) => Ok(StreamableHttpPostResponse::Json(answer, session)),
                Err(_) if awaits_nothing => Ok(StreamableHttpPostResponse::Accepted),
                Err(e) => Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                    format!("the answer is not a JSON-RPC message: {e}"),
                ))),
            };
        }
        if awaits_nothing {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(content_type(
            &response,
        )))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Error> {
        let request = self.request(
            Method::DELETE,
            &uri,
            JSON_MIME_TYPE,
            Some(&session_id),
            auth_header,
            headers,
        )?;
        let response = send(request).await?;
        // 405: the server keeps sessions until they expire; nothing to end.
        if response.status().is_success() || response.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(());
        }
        Err(failure(response).await)
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<Events, Error> {
        let limit = StreamableHttpResponseLimits::default().max_sse_event_size;
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            headers,
            limit,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<Events, Error> {
        let mut request = self.request(
            Method::GET,
            &uri,
            EVENT_STREAM_MIME_TYPE,
            session_id.as_deref(),
            auth_header,
            headers,
        )?;
        if let Some(id) = last_event_id {
            request = request.header(HEADER_LAST_EVENT_ID, id);
        }
        let response = send(request).await?;
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if !response.status().is_success() {
            return Err(match status_error(response.status(), response.headers()) {
                Some(statused) => statused.into(),
                None => failure(response).await,
            });
        }
        if !is(&response, EVENT_STREAM_MIME_TYPE) {
            return Err(StreamableHttpError::UnexpectedContentType(content_type(
                &response,
            )));
        }
        Ok(events(response, max_sse_event_size))
    }
}
