//! Rate limits per client IP: in memory, in a real Redis shared by two instances, and with Redis down.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{add_user, env, redis_url, settings, Answer, AuthApp};
use jtc_test_support::TestDb;

fn assert_limited(answer: &Answer, max_retry_after: u64) {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.json);
    assert_eq!(answer.json, json!({ "message": "Too Many Requests" }));
    let retry_after: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=max_retry_after).contains(&retry_after), "Retry-After {retry_after}");
}

fn unique_prefix() -> String {
    format!("auth-api-test-{}", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn login_is_limited_to_3_a_minute_in_memory() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let app = AuthApp::spawn(&settings(&db, &[("RATE_LIMIT_LOGIN", "3/minute")])).await;
    for _ in 0..3 {
        assert_eq!(app.login("alice", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    // The fourth attempt is refused before the password is even looked at: the right one too.
    assert_limited(&app.login("alice", "wonderland-42").await, 60);
    // Other routes have their own counters.
    assert_eq!(app.call(Method::GET, "/health", None, None).await.status, StatusCode::OK);
    db.drop_db().await;
}

#[tokio::test]
async fn protected_is_limited_to_5_a_minute_by_default() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    // The suite's environment raises every limit; without RATE_LIMIT_PROTECTED the default holds.
    let mut vars = env(&db, &[]);
    vars.remove("RATE_LIMIT_PROTECTED");
    let s = auth_api::config::AuthSettings::from_lookup(|k| vars.get(k).cloned()).expect("settings");
    let app = AuthApp::spawn(&s).await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    for i in 0..5 {
        assert_eq!(app.protected(&access).await.status, StatusCode::OK, "call {i}");
    }
    assert_limited(&app.protected(&access).await, 60);
    // Counted per route: refreshing is not limited by /protected's count.
    assert_eq!(app.call(Method::POST, "/refresh", Some(&refresh), None).await.status, StatusCode::OK);
    db.drop_db().await;
}

#[tokio::test]
async fn redis_counts_are_shared_by_every_instance() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let prefix = unique_prefix();
    let url = redis_url();
    let env = [("RATE_LIMIT_LOGIN", "3/minute"), ("REDIS_URL", url.as_str()), ("RATE_LIMIT_KEY_PREFIX", &prefix)];
    let a = AuthApp::spawn(&settings(&db, &env)).await;
    let b = AuthApp::spawn(&settings(&db, &env)).await;
    assert_eq!(a.login("alice", "wonderland-42").await.status, StatusCode::OK);
    assert_eq!(a.login("alice", "guess").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.login("alice", "wonderland-42").await.status, StatusCode::OK);
    // B has seen one attempt, but the client has made three: the fourth is refused, on either instance.
    assert_limited(&b.login("alice", "wonderland-42").await, 60);
    assert_limited(&a.login("alice", "wonderland-42").await, 60);

    // The count really lives in Redis, with the window's expiry.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}:rl:login:60:127.0.0.1");
    let count: u64 = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(count, 5);
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
    db.drop_db().await;
}

#[tokio::test]
async fn with_redis_down_the_limit_still_holds_in_memory() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("redis://127.0.0.1:{port}/0");
    let app = AuthApp::spawn(&settings(&db, &[("RATE_LIMIT_LOGIN", "2/minute"), ("REDIS_URL", &dead)])).await;
    let started = std::time::Instant::now();
    assert_eq!(app.login("alice", "wonderland-42").await.status, StatusCode::OK);
    assert_eq!(app.login("alice", "wonderland-42").await.status, StatusCode::OK);
    assert_limited(&app.login("alice", "wonderland-42").await, 60);
    assert!(started.elapsed().as_secs() < 10, "an unreachable Redis must not stall logins");
    db.drop_db().await;
}

async fn login_from(app: &AuthApp, forwarded_for: &str) -> Answer {
    let response = app
        .http
        .post(format!("{}/login", app.address))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "username": "alice", "password": "guess" }))
        .send()
        .await
        .unwrap();
    crate::support::answer(response).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_count() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let proxied =
        AuthApp::spawn(&settings(&db, &[("RATE_LIMIT_LOGIN", "1/minute"), ("TRUSTED_PROXY_HOPS", "1")])).await;
    assert_eq!(login_from(&proxied, "198.51.100.1").await.status, StatusCode::UNAUTHORIZED);
    // A client that writes its own header gains nothing: the proxy's entry (the last one) is what counts.
    assert_eq!(login_from(&proxied, "6.6.6.6, 198.51.100.2").await.status, StatusCode::UNAUTHORIZED);
    assert_limited(&login_from(&proxied, "7.7.7.7, 198.51.100.1").await, 60);

    // Without trusted proxies the header is ignored: everyone here is 127.0.0.1.
    let direct = AuthApp::spawn(&settings(&db, &[("RATE_LIMIT_LOGIN", "1/minute")])).await;
    assert_eq!(login_from(&direct, "198.51.100.1").await.status, StatusCode::UNAUTHORIZED);
    assert_limited(&login_from(&direct, "198.51.100.2").await, 60);
    db.drop_db().await;
}
