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
    let key = format!("{prefix}:rl:login:60:ip:127.0.0.1");
    let count: u64 = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(count, 5);
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
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
}

async fn login_from(app: &AuthApp, forwarded_for: &str) -> Answer {
    login_as(app, forwarded_for, "alice", "guess").await
}

async fn login_as(app: &AuthApp, forwarded_for: &str, username: &str, password: &str) -> Answer {
    let response = app
        .http
        .post(format!("{}/login", app.address))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    crate::support::answer(response).await
}

#[tokio::test]
async fn refresh_and_logout_are_limited_too() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let limits = [("RATE_LIMIT_REFRESH", "2/minute"), ("RATE_LIMIT_LOGOUT", "1/minute")];
    let app = AuthApp::spawn(&settings(&db, &limits)).await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    for _ in 0..2 {
        assert_eq!(app.call(Method::POST, "/refresh", Some(&refresh), None).await.status, StatusCode::OK);
    }
    // One refresh token no longer mints access tokens by the thousand.
    assert_limited(&app.call(Method::POST, "/refresh", Some(&refresh), None).await, 60);
    assert_eq!(app.call(Method::POST, "/logout", Some(&access), None).await.status, StatusCode::OK);
    let (access, _) = app.tokens("alice", "wonderland-42").await;
    assert_limited(&app.call(Method::POST, "/logout", Some(&access), None).await, 60);
}

#[tokio::test]
async fn an_ipv4_address_counts_once_however_it_is_written_and_ipv6_per_64() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let env = [("RATE_LIMIT_LOGIN", "2/minute"), ("TRUSTED_PROXY_HOPS", "1")];
    let app = AuthApp::spawn(&settings(&db, &env)).await;
    assert_eq!(login_from(&app, "203.0.113.9").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "::ffff:203.0.113.9").await.status, StatusCode::UNAUTHORIZED);
    assert_limited(&login_from(&app, "::ffff:cb00:7109").await, 60);

    // Every address of one /64 is one client; the next /64 is another.
    for address in ["2001:db8:0:7::1", "2001:db8:0:7:ffff:ffff:ffff:ffff"] {
        assert_eq!(login_from(&app, address).await.status, StatusCode::UNAUTHORIZED, "{address}");
    }
    assert_limited(&login_from(&app, "2001:db8:0:7:1234::42").await, 60);
    assert_eq!(login_from(&app, "2001:db8:0:8::1").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_per_user_are_limited_across_clients_for_a_short_while() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    add_user(&db, "bob", "builder-7").await;
    let env = [("RATE_LIMIT_LOGIN_FAILURES_PER_USER", "3/second"), ("TRUSTED_PROXY_HOPS", "1")];
    let app = AuthApp::spawn(&settings(&db, &env)).await;
    // Three guesses from three addresses: each address is far under its own limit.
    for i in 1..=3 {
        let answer = login_as(&app, &format!("198.51.100.{i}"), "alice", "guess").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // The name is now refused before its password is tried, the right one too, from anywhere.
    assert_limited(&login_as(&app, "198.51.100.77", "alice", "wonderland-42").await, 1);
    // Another user is not affected.
    assert_eq!(login_as(&app, "198.51.100.1", "bob", "builder-7").await.status, StatusCode::OK);
    // And the lockout ends with the window.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(login_as(&app, "198.51.100.77", "alice", "wonderland-42").await.status, StatusCode::OK);
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
}
