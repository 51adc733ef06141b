//! The shared retry layer (`sandcrab::http::retry::send`) against a real HTTP server on
//! loopback that counts what it receives: an idempotent call is sent again after a 503 and
//! after a timeout; a non-idempotent POST is sent again after a 429 and when the connection
//! could not be made, but never after a timeout or a 5xx (it may have been carried out).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::any;
use axum::Router;
use sandcrab::http::retry::{send, Idempotency, RetryPolicy};
use sandcrab::http::ClientSpec;

const QUICK: RetryPolicy = RetryPolicy::new(4, Duration::from_millis(5), 2.0);

/// A server whose first `failing` answers are `status` (or, for 0, an answer later than any
/// client waits), then 200; it counts the requests that reach it.
async fn server(failing: usize, status: u16) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = Router::new().route(
        "/",
        any(move || {
            let seen = seen.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if n >= failing {
                    return (StatusCode::OK, "done");
                }
                if status == 0 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return (StatusCode::OK, "too late");
                }
                (StatusCode::from_u16(status).unwrap(), "failed")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

fn client() -> reqwest::Client {
    ClientSpec::new()
        .timeout(Duration::from_millis(300))
        .build("the test")
        .unwrap()
}

#[tokio::test]
async fn an_idempotent_call_is_retried_after_5xx_and_timeouts() {
    let (url, count) = server(2, 503).await;
    let http = client();
    let answer = send(&QUICK, Idempotency::Idempotent, "GET", || http.get(&url))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let (url, count) = server(1, 0).await;
    let answer = send(&QUICK, Idempotency::Idempotent, "PUT", || http.put(&url))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "timed out once, then answered"
    );
}

#[tokio::test]
async fn a_non_idempotent_post_that_timed_out_is_not_sent_again() {
    let (url, count) = server(1, 0).await;
    let http = client();
    let e = send(&QUICK, Idempotency::NonIdempotent, "POST", || {
        http.post(&url)
    })
    .await
    .unwrap_err();
    assert!(e.contains("timed out") || e.contains("timeout"), "{e}");
    assert!(!e.contains("127.0.0.1"), "no URL in the error: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "sent once");
}

#[tokio::test]
async fn a_non_idempotent_post_is_not_sent_again_after_a_5xx_but_is_after_a_429() {
    let (url, count) = server(1, 502).await;
    let http = client();
    let answer = send(&QUICK, Idempotency::NonIdempotent, "POST", || {
        http.post(&url)
    })
    .await
    .unwrap();
    assert_eq!(answer.status(), 502, "the caller judges the answer");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    let (url, count) = server(2, 429).await;
    let answer = send(&QUICK, Idempotency::NonIdempotent, "POST", || {
        http.post(&url)
    })
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_post_that_could_not_connect_is_sent_again() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/");
    let http = client();
    let count = Arc::new(AtomicUsize::new(0));
    let opened = count.clone();
    let serve_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let app = Router::new().route(
            "/",
            any(move || {
                opened.fetch_add(1, Ordering::SeqCst);
                async { "created" }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await
    });
    let policy = RetryPolicy::new(8, Duration::from_millis(20), 1.5);
    let answer = send(&policy, Idempotency::NonIdempotent, "POST", || {
        http.post(&url)
    })
    .await
    .unwrap();
    assert_eq!(answer.text().await.unwrap(), "created");
    assert_eq!(count.load(Ordering::SeqCst), 1, "created once");
    serve_later.abort();
}
