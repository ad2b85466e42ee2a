//! CORS: preflights from listed origins are allowed, others get no CORS headers (the browser then refuses).

use reqwest::StatusCode;

use crate::support::{settings, AuthApp};
use jtc_test_support::TestDb;

async fn preflight(app: &AuthApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, format!("{}/login", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn only_listed_origins_are_allowed() {
    let db = TestDb::new().await;
    let s = settings(&db, &[("CORS_ALLOWED_ORIGINS", "https://app.example,http://localhost:3000")]);
    let app = AuthApp::spawn(&s).await;

    let allowed = preflight(&app, "https://app.example").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let methods = allowed.headers()["access-control-allow-methods"].to_str().unwrap().to_string();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(headers.contains("content-type") && headers.contains("authorization"), "{headers}");

    for refused in ["https://evil.example", "https://app.example.evil.example", "http://app.example"] {
        let response = preflight(&app, refused).await;
        assert!(response.headers().get("access-control-allow-origin").is_none(), "{refused} was allowed");
    }

    // A simple request from an allowed origin is answered with the header too.
    let response =
        app.http.get(format!("{}/health", app.address)).header("origin", "http://localhost:3000").send().await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "http://localhost:3000");
}

#[tokio::test]
async fn no_origin_is_allowed_by_default() {
    let db = TestDb::new().await;
    let app = AuthApp::spawn(&settings(&db, &[])).await;
    let response = preflight(&app, "https://app.example").await;
    assert!(response.headers().get("access-control-allow-origin").is_none());
}
