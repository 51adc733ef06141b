//! The Docker engine over TLS, as GitLab's `docker:dind` serves it by default
//! (`DOCKER_HOST=tcp://docker:2376`, `DOCKER_TLS_VERIFY=1`, the client certificates in
//! `DOCKER_CERT_PATH=/certs/client`): sandcrab's engine connection (bollard with its rustls
//! `ssl` feature) must present the client certificate and verify the engine's against
//! `ca.pem`.
//!
//! The engine is a stand-in: `openssl s_server` with a CA, a server and a client certificate
//! made here by the openssl CLI, requiring a client certificate and answering
//! `GET /version` from a file. It proves the TLS setup, not the rest of the API (a real
//! second engine is tests/docker_remote_engine.rs, without TLS).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// `ca.pem`; the server's `server.pem`/`server-key.pem` (for 127.0.0.1); a client pair
/// `cert.pem`/`key.pem` signed by the CA in `client/`, and one signed by another CA in
/// `stranger/`.
fn make_certs(dir: &Path) {
    let ca = |name: &str| {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    };
    ca("ca");
    ca("other-ca");
    let sign = |name: &str, ca: &str, ext: &str| {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}-key.pem"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    };
    sign(
        "server",
        "ca",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    sign("client", "ca", "extendedKeyUsage=clientAuth\n");
    sign("stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
    for who in ["client", "stranger"] {
        let d = dir.join(who);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(dir.join("ca.pem"), d.join("ca.pem")).unwrap();
        std::fs::copy(dir.join(format!("{who}.pem")), d.join("cert.pem")).unwrap();
        std::fs::copy(dir.join(format!("{who}-key.pem")), d.join("key.pem")).unwrap();
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The stand-in engine on `port`, serving `www/` over mutual TLS.
fn serve(dir: &Path, port: u16) -> Server {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let version = r#"{"Version":"27.3.1","ApiVersion":"1.47","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#;
    // `-HTTP` sends the file as the whole response: status line and headers included.
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{version}",
        version.len()
    );
    std::fs::write(www.join("version"), response).unwrap();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-HTTP", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("server.pem"))
        .arg("-key")
        .arg(dir.join("server-key.pem"))
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .args(["-Verify", "1", "-verify_return_error"])
        .current_dir(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server(child)
}

#[tokio::test]
async fn the_engine_is_reached_over_tls_with_the_client_certificate() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: no openssl CLI to make certificates and the TLS stand-in");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = free_port();
    let _server = serve(dir.path(), port);
    // The only test in this binary: the process environment is its own.
    std::env::set_var("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"));
    std::env::set_var("DOCKER_TLS_VERIFY", "1");
    std::env::set_var("DOCKER_CERT_PATH", dir.path().join("client"));
    let docker = sandcrab::workspace::docker::engine::connect()
        .await
        .expect("the TLS engine answers");
    assert_eq!(
        docker.client_version().to_string(),
        "1.47",
        "negotiated with the engine"
    );

    // A client certificate of another CA is refused by the engine.
    std::env::set_var("DOCKER_CERT_PATH", dir.path().join("stranger"));
    let e = sandcrab::workspace::docker::engine::connect().await.err();
    assert!(e.is_some(), "a stranger's certificate must not get through");
    // ... while the right one still does (the refusal was the certificate's).
    std::env::set_var("DOCKER_CERT_PATH", dir.path().join("client"));
    assert!(sandcrab::workspace::docker::engine::connect().await.is_ok());
}
