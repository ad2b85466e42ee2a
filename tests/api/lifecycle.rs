//! /health, /initialize, /pre-stop, unknown routes, and a database that cannot be reached.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{dead_db_uri, settings_from, CleanerEnv, TestApp, TestDb};

#[tokio::test]
async fn health_answers_without_touching_the_database() {
    let env = [("DB_URI", dead_db_uri()), ("DB_NAME", "x".into()), ("PORT", "0".into())];
    let app = TestApp::spawn(&settings_from(env.into_iter().map(|(k, v)| (k.to_string(), v)).collect())).await;
    let started = Instant::now();
    let answer = app.call(Method::GET, "/health", "".into(), None).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.fc_status.as_deref(), Some("200"));
    assert_eq!(answer.json, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn pre_stop_and_unknown_routes_carry_x_fc_status() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.call(Method::GET, "/pre-stop", "".into(), Some("r1")).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (200, Some("200")));
    let answer = app.call(Method::GET, "/nope", "".into(), None).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (404, Some("404")));
    let answer = app.call(Method::GET, "/invoke", "".into(), None).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (405, Some("405")));
}

#[tokio::test]
async fn initialize_checks_the_database() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.call(Method::POST, "/initialize", "".into(), Some("init-1")).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (200, Some("200")), "{}", answer.json);
    assert_eq!(answer.json["backend"], "mongodb");
}

fn dead_settings() -> jwt_token_cleaner::config::Settings {
    let env =
        [("DB_URI", dead_db_uri()), ("DB_NAME", "x".into()), ("PORT", "0".into()), ("DB_TIMEOUT_SECONDS", "1".into())];
    settings_from(env.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[tokio::test]
async fn initialize_with_the_database_down_is_a_503() {
    let app = TestApp::spawn(&dead_settings()).await;
    let answer = app.call(Method::POST, "/initialize", "".into(), Some("init-2")).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (503, Some("503")), "{}", answer.json);
    assert_eq!(answer.json["status"], "error");
    assert!(answer.json["error"].as_str().unwrap().contains("unreachable"), "{}", answer.json);
}

#[tokio::test]
async fn invoke_with_the_database_down_answers_an_error_within_the_budget() {
    let app = TestApp::spawn(&dead_settings()).await;
    let started = Instant::now();
    let answer = app.invoke("").await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!((answer.status, answer.fc_status.as_deref()), (503, Some("503")), "{}", answer.json);
    let json = &answer.json;
    assert_eq!(json["status"], "error");
    assert!(json["message"].as_str().unwrap().starts_with("Cleanup failed"), "{json}");
    assert!(json["error"].as_str().unwrap().starts_with("database unreachable"), "{json}");
    assert_eq!(json["data"]["success"], false);
    assert_eq!(json["data"]["cleaned_count"], 0);
    assert_eq!(json["data"]["error"], json["error"]);
    assert_eq!(json["data"]["request_id"], "test-request-1");
    assert!(json["data"]["timestamp"].as_str().unwrap().ends_with('Z'));
}

/// The socket address of an app's `http://127.0.0.1:PORT`.
fn socket(app: &TestApp) -> std::net::SocketAddr {
    app.address.trim_start_matches("http://").parse().expect("an address")
}

#[tokio::test]
async fn slow_idle_and_short_bodied_connections_are_closed_while_health_answers() {
    let db = TestDb::new().await;
    let limits = [("HTTP_HEADER_TIMEOUT_SECONDS", "1"), ("HTTP_BODY_TIMEOUT_SECONDS", "1")];
    let app = TestApp::spawn(&db.settings(&limits)).await;
    let give_up = std::time::Duration::from_secs(10);
    let (dribbled, idled, shorted, health) = tokio::join!(
        jtc_test_support::dribble_headers(socket(&app), give_up),
        jtc_test_support::idle_after_one_request(socket(&app), give_up),
        jtc_test_support::short_body(socket(&app), "/invoke", give_up),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            app.call(Method::GET, "/health", "".into(), None).await
        },
    );
    assert_eq!(health.status, 200, "the server answers others meanwhile");
    // Closed by the 1 s deadlines, long before the client would have given up (generous slack for a slow machine).
    for (what, closed) in [("dribbling headers", dribbled), ("idle", idled), ("short body", shorted)] {
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after {give_up:?}"));
        assert!(closed < std::time::Duration::from_secs(5), "{what}: closed after {closed:?}");
    }
}

/// The body deadline is for the whole body: a byte every 250 ms, each gap far under the 2 s deadline, is cut off at
/// the deadline (third review: the deadline was between frames, so such a body held its connection for as long as
/// the client liked). The slack is for a slow machine; before the fix the connection was still open at 20 s.
#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_at_the_body_deadline() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db.settings(&[("HTTP_BODY_TIMEOUT_SECONDS", "2")])).await;
    let give_up = std::time::Duration::from_secs(20);
    let closed = jtc_test_support::dribble_body(socket(&app), "/invoke", give_up).await;
    let closed = closed.unwrap_or_else(|| panic!("still open after {give_up:?}"));
    assert!(closed < std::time::Duration::from_secs(12), "closed after {closed:?}");
    assert_eq!(db.count().await, 0, "nothing ran");
}

/// A request head over `jtc_shared::serve::MAX_HEAD_BYTES` is refused with 431 (a 200 KB header was accepted).
#[tokio::test]
async fn a_huge_request_head_is_refused() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let big = "x".repeat(200_000);
    let status =
        jtc_test_support::raw_request(socket(&app), &format!("GET /health HTTP/1.1\r\nHost: h\r\nX-Big: {big}")).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status:?}");
    // Just over the bound, sent in one write (#39 L9: up to about 112 KiB got 200 when the head came at once).
    for size in [70_000, 100_000] {
        let big = "x".repeat(size);
        let head = format!("GET /health HTTP/1.1\r\nHost: h\r\nX-Big: {big}");
        let status = jtc_test_support::raw_request(socket(&app), &head).await;
        assert!(status.starts_with("HTTP/1.1 431"), "{size}: {status:?}");
    }
    let big = "x".repeat(60_000);
    let head = format!("GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Big: {big}");
    let status = jtc_test_support::raw_request(socket(&app), &head).await;
    assert!(status.starts_with("HTTP/1.1 200"), "under the bound: {status:?}");
    let fine =
        jtc_test_support::raw_request(socket(&app), "GET /health HTTP/1.1\r\nHost: h\r\nConnection: close").await;
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine:?}");
}

#[tokio::test]
async fn at_the_connection_cap_the_next_client_waits_for_a_free_slot() {
    let db = TestDb::new().await;
    let limits = [("HTTP_MAX_CONNECTIONS", "2"), ("HTTP_HEADER_TIMEOUT_SECONDS", "2")];
    let app = TestApp::spawn(&db.settings(&limits)).await;
    // Two silent clients take both slots.
    let _a = tokio::net::TcpStream::connect(socket(&app)).await.unwrap();
    let _b = tokio::net::TcpStream::connect(socket(&app)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let quick = reqwest::Client::builder().timeout(std::time::Duration::from_millis(700)).build().unwrap();
    assert!(quick.get(format!("{}/health", app.address)).send().await.is_err(), "no third connection is served");
    // Their header deadline frees the slots, and the next client is served.
    let answer = app.call(Method::GET, "/health", "".into(), None).await;
    assert_eq!(answer.status, 200);
}
