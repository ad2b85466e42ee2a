//! HTTPS with rustls: a self-signed certificate made for the test, a real handshake, and the refusals around it.

use auth_api::server::{Application, StartError};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{add_user, settings};
use jtc_test_support::{TempDir, TestDb};

struct Certificate {
    dir: TempDir,
    cert_pem: String,
}

impl Certificate {
    fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let dir = TempDir::new("auth-api-tls");
        let cert_pem = made.cert.pem();
        std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        Self { dir, cert_pem }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let cert = Certificate::new();
    let (cert_file, key_file) = (cert.path("cert.pem"), cert.path("key.pem"));
    let app = Application::build(&settings(&db, &[("TLS_CERT_FILE", &cert_file), ("TLS_KEY_FILE", &key_file)]))
        .await
        .expect("build");
    assert!(app.is_tls());
    let port = app.port();
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .https_only(true)
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}");
    let response = trusting.get(format!("{url}/health")).send().await.expect("handshake with the trusted cert");
    assert_eq!(response.status(), StatusCode::OK);
    let login = trusting
        .post(format!("{url}/login"))
        .json(&json!({ "username": "alice", "password": "wonderland-42" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);

    // A client that does not trust the certificate refuses the handshake...
    let stranger = reqwest::Client::new();
    let error = stranger.get(format!("{url}/health")).send().await.expect_err("untrusted certificate accepted");
    assert!(error.is_connect(), "{error:?}");
    // ...and plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::Client::new().get(format!("http://localhost:{port}/health")).send().await;
    assert!(plain.is_err() || plain.as_ref().is_ok_and(|r| r.status() != StatusCode::OK), "{plain:?}");
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start_with_a_clear_error() {
    let db = TestDb::new().await;
    let cert = Certificate::new();
    let other = Certificate::new();
    let missing = cert.path("missing.pem");
    let cases = [
        (missing.clone(), cert.path("key.pem"), "TLS_CERT_FILE"),
        (cert.path("cert.pem"), missing.clone(), "TLS_KEY_FILE"),
        (cert.path("key.pem"), cert.path("key.pem"), "TLS_CERT_FILE"),
        (cert.path("cert.pem"), other.path("key.pem"), "do not make a usable pair"),
    ];
    for (cert_file, key_file, expected) in cases {
        let result =
            Application::build(&settings(&db, &[("TLS_CERT_FILE", &cert_file), ("TLS_KEY_FILE", &key_file)])).await;
        match result {
            Err(e @ StartError::Tls(_)) => assert!(e.to_string().contains(expected), "{e}"),
            Err(e) => panic!("{cert_file} {key_file}: {e}"),
            Ok(_) => panic!("{cert_file} {key_file}: started"),
        }
    }
}
