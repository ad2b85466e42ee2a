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
    db.drop_db().await;
}
