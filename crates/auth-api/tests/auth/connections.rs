//! Slow, idle and short-bodied connections are closed by their deadlines, over plain HTTP, while the API answers
//! others (the same `jtc_shared::serve` loop as the cleaner's).

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::{settings, AuthApp};
use jtc_test_support::TestDb;

#[tokio::test]
async fn slow_idle_and_short_bodied_connections_are_closed_while_health_answers() {
    let db = TestDb::new().await;
    let limits = [("HTTP_HEADER_TIMEOUT_SECONDS", "1"), ("HTTP_BODY_TIMEOUT_SECONDS", "1")];
    let app = AuthApp::spawn(&settings(&db, &limits)).await;
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let give_up = Duration::from_secs(10);
    let (dribbled, idled, shorted, health) = tokio::join!(
        jtc_test_support::dribble_headers(address, give_up),
        jtc_test_support::idle_after_one_request(address, give_up),
        jtc_test_support::short_body(address, "/login", give_up),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            app.call(Method::GET, "/health", None, None).await
        },
    );
    assert_eq!(health.status, StatusCode::OK, "the API answers others meanwhile");
    for (what, closed) in [("dribbling headers", dribbled), ("idle", idled), ("short body", shorted)] {
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after {give_up:?}"));
        assert!(closed < Duration::from_secs(5), "{what}: closed after {closed:?}");
    }
}

/// Every slot held by bodies sent a byte at a time (3 logins, 5 logouts): each is cut off at the body deadline, and
/// `/health` is answered once a slot frees. Before the fix the deadline ran between bytes: all 8 were still open
/// after 60 s (third review). The slack is for a slow machine.
#[tokio::test]
async fn bodies_sent_a_byte_at_a_time_are_cut_off_and_the_slots_free() {
    let db = TestDb::new().await;
    let limits = [("HTTP_MAX_CONNECTIONS", "8"), ("HTTP_BODY_TIMEOUT_SECONDS", "2")];
    let app = AuthApp::spawn(&settings(&db, &limits)).await;
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let give_up = Duration::from_secs(20);
    let slow = ["/login", "/login", "/login", "/logout", "/logout", "/logout", "/logout", "/logout"]
        .map(|path| jtc_test_support::dribble_body(address, path, give_up));
    let (closed, health) = tokio::join!(futures_util::future::join_all(slow), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.call(Method::GET, "/health", None, None).await
    });
    for (i, closed) in closed.into_iter().enumerate() {
        let closed = closed.unwrap_or_else(|| panic!("slow body {i}: still open after {give_up:?}"));
        assert!(closed < Duration::from_secs(12), "slow body {i}: closed after {closed:?}");
    }
    assert_eq!(health.status, StatusCode::OK);
}

/// `/logout` checks the token before it reads a body: without one it answers 401 at once, although the body it
/// announced never comes (before, it waited for the body first, for the whole body deadline).
#[tokio::test]
async fn logout_refuses_a_missing_token_before_reading_the_body() {
    let db = TestDb::new().await;
    let app = AuthApp::spawn(&settings(&db, &[("HTTP_BODY_TIMEOUT_SECONDS", "60")])).await;
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let head = "POST /logout HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 16000";
    let answered = tokio::time::timeout(Duration::from_secs(20), jtc_test_support::raw_request(address, head)).await;
    let status = answered.expect("no answer within 20 s: the body was awaited first");
    assert!(status.starts_with("HTTP/1.1 401"), "{status:?}");
}
