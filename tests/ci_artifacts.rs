//! The GitHub artifact upload client against a fake artifact service and a fake blob store on
//! loopback (tests/fakes/artifact_service.rs), which check what the real ones check: the
//! bearer token, the backend ids of the token, snake_case fields, the signature of the upload
//! URL, and a finalize whose size and sha256 match the bytes received.

#[path = "fakes/artifact_service.rs"]
mod fake;

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fake::{FakeArtifactService, ARTIFACT_ID, JOB_ID, RUN_ID};
use sandcrab::ci::artifacts::{ArtifactError, ArtifactService};
use sandcrab::http::retry::RetryPolicy;
use sha2::{Digest, Sha256};

/// Short waits, so retries do not slow the tests.
const QUICK: RetryPolicy = RetryPolicy::new(5, Duration::from_millis(5), 1.5);

fn service(fake: &FakeArtifactService, retention: Option<u32>) -> ArtifactService {
    captured_log();
    ArtifactService::new(&fake::token(), &fake.results_url, retention)
        .unwrap()
        .with_policy(QUICK)
}

/// Run outputs on disk: (name in the zip, path, content).
fn outputs(dir: &std::path::Path, files: &[(&str, &[u8])]) -> Vec<(String, PathBuf)> {
    files
        .iter()
        .enumerate()
        .map(|(i, (entry, content))| {
            let path = dir.join(format!("file-{i}"));
            std::fs::write(&path, content).unwrap();
            (entry.to_string(), path)
        })
        .collect()
}

/// The entries of a zip, in order, with their contents.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (entry.name().to_string(), content)
        })
        .collect()
}

#[tokio::test]
async fn uploads_a_zip_that_unzips_to_the_files_given() {
    let fake = FakeArtifactService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let report = b"# Run\nfinished\n".repeat(50);
    let files = outputs(
        dir.path(),
        &[
            ("report.md", &report),
            ("changes.patch", b"--- a/x\n+++ b/x\n"),
            ("conversations/abc/events.jsonl", b"{}\n"),
        ],
    );
    let uploaded = service(&fake, Some(3))
        .upload("sandcrab-run", &files)
        .await
        .unwrap();

    let blob = fake
        .blob("sandcrab-run")
        .expect("the zip reached the blob store");
    assert_eq!(uploaded.id, ARTIFACT_ID);
    assert_eq!(uploaded.name, "sandcrab-run");
    assert_eq!(uploaded.size, blob.len() as u64);
    assert_eq!(
        uploaded.sha256,
        format!("sha256:{}", fake::hex(&Sha256::digest(&blob)))
    );
    let entries = unzip(&blob);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "report.md",
            "changes.patch",
            "conversations/abc/events.jsonl"
        ]
    );
    assert_eq!(entries[0].1, report);
    assert_eq!(entries[1].1, b"--- a/x\n+++ b/x\n");

    assert_eq!(
        fake.operations(),
        ["CreateArtifact", "Put Blob", "FinalizeArtifact"]
    );
    let calls = fake.calls();
    let create = &calls[0].json;
    assert_eq!(create["workflow_run_backend_id"], RUN_ID);
    assert_eq!(create["workflow_job_run_backend_id"], JOB_ID);
    assert_eq!(create["version"], 4);
    let expires =
        chrono::DateTime::parse_from_rfc3339(create["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((71..=72).contains(&days), "expires in {days} h");
    assert_eq!(calls[1].headers["x-ms-blob-type"], "BlockBlob");
    assert_eq!(calls[1].headers["x-ms-version"], "2020-10-02");
    let finalize = &calls[2].json;
    assert_eq!(finalize["size"], blob.len().to_string());
    assert_eq!(finalize["hash"], uploaded.sha256);
}

#[tokio::test]
async fn without_retention_no_expiry_is_sent() {
    let fake = FakeArtifactService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("result.json", b"{}")]);
    service(&fake, None).upload("r", &files).await.unwrap();
    let create = &fake.calls()[0].json;
    assert!(create.get("expires_at").is_none(), "{create}");
}

#[tokio::test]
async fn a_large_zip_goes_up_in_blocks() {
    let fake = FakeArtifactService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let noise: Vec<u8> = (0..20_000).map(|_| fastrand::u8(..)).collect();
    let files = outputs(dir.path(), &[("trajectory.jsonl", &noise)]);
    let uploaded = service(&fake, None)
        .with_block_size(4096)
        .upload("big", &files)
        .await
        .unwrap();

    let ops = fake.operations();
    let blocks = ops.iter().filter(|o| *o == "Put Block").count();
    assert_eq!(blocks, (uploaded.size as usize).div_ceil(4096), "{ops:?}");
    assert_eq!(ops.last().unwrap(), "FinalizeArtifact");
    assert_eq!(ops[ops.len() - 2], "Put Block List");
    assert!(!ops.contains(&"Put Blob".to_string()));
    let blob = fake.blob("big").unwrap();
    assert_eq!(blob.len() as u64, uploaded.size);
    assert_eq!(unzip(&blob), [("trajectory.jsonl".to_string(), noise)]);
}

#[tokio::test]
async fn a_failed_block_stops_the_upload_before_the_block_list() {
    let fake = FakeArtifactService::start().await;
    fake.fail("Put Block", &[403]);
    let dir = tempfile::tempdir().unwrap();
    let noise: Vec<u8> = (0..20_000).map(|_| fastrand::u8(..)).collect();
    let files = outputs(dir.path(), &[("trajectory.jsonl", &noise)]);
    let e = service(&fake, None)
        .with_block_size(4096)
        .upload("big", &files)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::BlobUpload {
                status: 403,
                operation: "Put Block",
                ..
            }
        ),
        "{e}"
    );
    let ops = fake.operations();
    assert!(
        !ops.iter()
            .any(|o| o == "Put Block List" || o == "FinalizeArtifact"),
        "{ops:?}"
    );
}

#[tokio::test]
async fn retries_on_503_and_429() {
    let fake = FakeArtifactService::start().await;
    fake.fail("CreateArtifact", &[503, 503]);
    fake.fail("Put Blob", &[429]);
    fake.fail("FinalizeArtifact", &[502]);
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    let uploaded = service(&fake, None)
        .upload("retried", &files)
        .await
        .unwrap();
    assert_eq!(uploaded.id, ARTIFACT_ID);
    let seen: Vec<(String, u16)> = fake
        .calls()
        .into_iter()
        .map(|c| (c.operation, c.status))
        .collect();
    let want = [
        ("CreateArtifact", 503),
        ("CreateArtifact", 503),
        ("CreateArtifact", 200),
        ("Put Blob", 429),
        ("Put Blob", 200),
        ("FinalizeArtifact", 502),
        ("FinalizeArtifact", 200),
    ];
    let want: Vec<(String, u16)> = want.iter().map(|(o, s)| (o.to_string(), *s)).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn a_token_without_the_results_scope_is_a_clear_error() {
    let token = fake::token_with_scopes("Actions.GenericRead:a:b Actions.UploadArtifacts:a:b");
    let e = ArtifactService::new(&token, "https://results.example/", None)
        .err()
        .expect("refused");
    assert!(matches!(e, ArtifactError::NoResultsScope));
    let text = e.to_string();
    assert!(
        text.contains("Actions.Results") && text.contains("runs.using: docker"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    let e = ArtifactService::new("not-a-jwt", "https://results.example/", None)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("ACTIONS_RUNTIME_TOKEN is not a JWT"),
        "{e}"
    );
}

#[tokio::test]
async fn a_token_the_service_does_not_accept_fails_at_create() {
    let fake = FakeArtifactService::start().await;
    let other = fake::token_with_scopes(&format!("Actions.Results:{RUN_ID}:{JOB_ID} extra"));
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    let service = ArtifactService::new(&other, &fake.results_url, None)
        .unwrap()
        .with_policy(QUICK);
    let e = service.upload("x", &files).await.unwrap_err();
    assert!(
        matches!(e, ArtifactError::Service { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("unauthenticated"), "{e}");
    assert_eq!(
        fake.operations(),
        ["CreateArtifact"],
        "no retry on 401, no upload"
    );
}

#[tokio::test]
async fn a_failed_blob_put_is_a_clear_error_and_nothing_is_finalized() {
    let fake = FakeArtifactService::start().await;
    fake.book.lock().unwrap().blob_always = Some(403);
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    let e = service(&fake, None)
        .upload("denied", &files)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ArtifactError::BlobUpload { status: 403, .. }),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("HTTP 403") && text.contains("Put Blob"),
        "{text}"
    );
    assert!(
        !text.contains("SECRETSIG") && !text.contains("sig="),
        "{text}"
    );
    assert_eq!(fake.operations(), ["CreateArtifact", "Put Blob"]);
    assert!(fake.book.lock().unwrap().finalized.is_empty());
}

#[tokio::test]
async fn a_blob_store_that_keeps_failing_is_retried_then_given_up() {
    let fake = FakeArtifactService::start().await;
    fake.book.lock().unwrap().blob_always = Some(500);
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    let e = service(&fake, None)
        .upload("flaky", &files)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ArtifactError::BlobUpload { status: 500, .. }),
        "{e}"
    );
    let ops = fake.operations();
    assert_eq!(
        ops.iter().filter(|o| *o == "Put Blob").count(),
        5,
        "{ops:?}"
    );
    assert!(!ops.contains(&"FinalizeArtifact".to_string()));
}

#[tokio::test]
async fn an_existing_artifact_is_a_clear_error_and_nothing_is_uploaded() {
    let fake = FakeArtifactService::start().await;
    fake.fail("CreateArtifact", &[409]);
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    let e = service(&fake, None)
        .upload("dup", &files)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::Service {
                status: 409,
                method: "CreateArtifact",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("may already exist"), "{e}");
    assert_eq!(fake.operations(), ["CreateArtifact"]);
}

#[tokio::test]
async fn bad_names_are_refused_before_any_request() {
    let fake = FakeArtifactService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    let s = service(&fake, None);
    let e = s.upload("run:1/out", &files).await.unwrap_err();
    assert!(matches!(e, ArtifactError::InvalidName { .. }), "{e}");
    let escape = outputs(dir.path(), &[("../outside", b"a")]);
    let e = s.upload("ok", &escape).await.unwrap_err();
    assert!(matches!(e, ArtifactError::InvalidEntry { .. }), "{e}");
    let missing = vec![("a".to_string(), dir.path().join("missing"))];
    let e = s.upload("ok", &missing).await.unwrap_err();
    assert!(matches!(e, ArtifactError::ReadFile { .. }), "{e}");
    assert!(fake.operations().is_empty());
}

/// Every log line (trace and up) of this test binary, from every test: each test's uploads log
/// here, so the check below covers them all (a subscriber per thread would miss callsites
/// another test registered first).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

#[tokio::test]
async fn the_signed_url_never_reaches_the_log() {
    let fake = FakeArtifactService::start().await;
    fake.fail("Put Blob", &[503]);
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), &[("a.txt", b"a")]);
    service(&fake, None).upload("logged", &files).await.unwrap();
    let log = String::from_utf8(captured_log().0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("Put Blob: HTTP 503; retrying"), "{log}");
    assert!(log.contains("uploaded artifact \"logged\""), "{log}");
    assert!(!log.contains("SECRETSIG"), "{log}");
    assert!(!log.contains(&fake::token()), "{log}");
}
