//! Hardening III: what an adversarial HTTP API peer tries. A redirect to another host (the key must not follow),
//! an answer larger than any real one (memory must stay flat), a `deletedCount` nobody deleted (the report must not
//! claim it), and a server that keeps a call open byte by byte (the run must still end near its budget).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use futures_util::stream;
use mongodb::bson::doc;

use crate::helpers::{expired_and_valid, settings_from, CleanerEnv, TestApp, TestDb};
use jtc_test_support::data_api::{DataApi, Fault};

/// Serves `router` on a free loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("address").port());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// `n` expired entries and 5 valid ones; returns the expired count.
async fn seed(db: &TestDb, n: i64) -> u64 {
    let now = Utc::now().timestamp_millis();
    db.insert(expired_and_valid(now, n, 120_000, 1000, 5)).await;
    n as u64
}

/// Every request a server received: the path and query, and its headers.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, HeaderMap)>>>);

impl Recorded {
    fn router(&self) -> Router {
        let seen = self.clone();
        Router::new().fallback(move |uri: Uri, headers: HeaderMap, _body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.0.lock().expect("lock").push((uri.to_string(), headers));
                (StatusCode::OK, "{\"documents\": []}")
            }
        })
    }

    fn count(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
}

/// A server that redirects every request to `target` (with a path and a query that must not be echoed).
async fn redirector(target: &str, status: StatusCode) -> String {
    let location = format!("{target}/api/v1/action/find?token=leak-me-query");
    serve(Router::new().fallback(move || {
        let location = location.clone();
        async move { (status, [("location", location)], "") }
    }))
    .await
}

#[tokio::test]
async fn the_key_never_follows_a_redirect_to_another_host() {
    for status in [StatusCode::TEMPORARY_REDIRECT, StatusCode::PERMANENT_REDIRECT, StatusCode::FOUND] {
        let db = TestDb::new().await;
        let expired = seed(&db, 30).await;
        let recorder = Recorded::default();
        let recorder_url = serve(recorder.router()).await;
        let api_url = redirector(&recorder_url, status).await;
        let key = "secret-api-key-3xx";

        // With the direct connection behind it: the chain falls back and says why, naming only the origin.
        let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api_url), ("MONGODB_API_KEY", key)])).await;
        let answer = app.invoke("").await;
        assert_eq!(answer.status, 200, "{status}: {}", answer.json);
        let data = &answer.json["data"];
        assert_eq!(data["backend"], "http_api+mongodb", "{status}");
        assert_eq!(data["cleaned_count"], expired);
        let why = data["fallback_reason"].as_str().unwrap_or_default();
        assert!(why.contains(&format!("HTTP {} redirect to {recorder_url}", status.as_u16())), "{why}");
        assert!(!why.contains("leak-me-query") && !why.contains("/api/v1"), "no path or query: {why}");
        assert!(!answer.json.to_string().contains(key));

        // The API alone: a clear error, nothing deleted.
        seed(&db, 10).await;
        let mut env = db.env(&[("MONGODB_API_URL", &api_url), ("MONGODB_API_KEY", key)]);
        env.remove("DB_URI");
        let app = TestApp::spawn(&settings_from(env)).await;
        let answer = app.invoke("").await;
        assert_eq!((answer.status, answer.fc_status.as_deref()), (500, Some("500")), "{}", answer.json);
        let error = answer.json["error"].as_str().unwrap_or_default();
        assert!(error.contains("does not follow the Data API contract") && error.contains("redirect"), "{error}");
        assert_eq!(answer.json["data"]["cleaned_count"], 0);
        assert_eq!(db.count().await, 20, "nothing deleted through a redirect");

        assert_eq!(recorder.count(), 0, "{status}: the other host saw a request");
    }
}

/// An answer of `bytes` zeros in 64 KiB chunks; with `declared`, its `Content-Length` says so up front.
fn huge(bytes: u64, declared: bool) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunks = bytes.div_ceil(CHUNK as u64);
    let body = Body::from_stream(stream::iter(
        (0..chunks).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&[b'0'; CHUNK]))),
    ));
    let mut response = (StatusCode::OK, body).into_response();
    if declared {
        response.headers_mut().insert("content-length", (chunks * CHUNK as u64).into());
    }
    response
}

/// Runs `jwt-token-cleaner sweep` with `env`; returns its report and its peak resident set, in bytes.
fn sweep_with_peak_rss(env: &HashMap<String, String>) -> (serde_json::Value, u64) {
    let (out, peak) = crate::helpers::run_with_peak_rss(env, &["sweep"]);
    (serde_json::from_str(&out).unwrap_or_else(|_| out.into()), peak)
}

#[tokio::test]
async fn an_answer_far_over_the_cap_is_refused_and_memory_stays_flat() {
    for declared in [false, true] {
        let db = TestDb::new().await;
        let expired = seed(&db, 20).await;
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        // 256 MiB: read whole, it would take the process far past 64 MB.
        let api_url = serve(Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { huge(256 * 1024 * 1024, declared) }
        }))
        .await;
        let env =
            db.env(&[("MONGODB_API_URL", &api_url), ("MONGODB_API_MAX_ANSWER_BYTES", "1048576"), ("RUST_LOG", "warn")]);
        let (report, peak) = tokio::task::spawn_blocking(move || sweep_with_peak_rss(&env)).await.expect("join");
        let data = &report["data"];
        assert_eq!(report["status"], "success", "{report}");
        assert_eq!(data["backend"], "http_api+mongodb");
        assert_eq!(data["cleaned_count"], expired);
        let why = data["fallback_reason"].as_str().unwrap_or_default();
        assert!(why.contains("larger than 1048576 bytes"), "{why}");
        assert!(sent.load(Ordering::SeqCst) >= 1);
        assert!(peak < 64 * 1024 * 1024, "declared {declared}: peak RSS {} MB", peak / 1024 / 1024);
    }
}

#[tokio::test]
async fn a_lying_deleted_count_is_a_contract_failure_and_never_reported() {
    let db = TestDb::new().await;
    let expired = seed(&db, 40).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::DeletedCountLie);

    // The API alone: the run fails without claiming anything.
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let answer = app.invoke(r#"{"batch_size": 10}"#).await;
    assert_eq!(answer.status, 500, "{}", answer.json);
    let error = answer.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("deletedCount 9223372036854775807 is more than the 10 entries"), "{error}");
    assert_eq!(answer.json["data"]["cleaned_count"], 0, "an unproven count is not claimed");

    // With the direct connection behind it: it finishes the run, and the total never exceeds what there was.
    seed(&db, 40).await;
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api.url)])).await;
    let answer = app.invoke(r#"{"batch_size": 10}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], "http_api+mongodb");
    assert!(data["fallback_reason"].as_str().unwrap_or_default().contains("deletedCount"), "{data}");
    assert!(data["cleaned_count"].as_u64().unwrap() <= 2 * expired, "{data}");
    assert!(data["memory_saved_mb"].as_f64().unwrap() < 1.0, "{data}");
    assert_eq!(db.count().await, 10, "the valid entries of both seeds");
}

#[tokio::test]
async fn estimate_mode_bounds_an_unmeasured_delete_by_the_batch_size() {
    let db = TestDb::new().await;
    let expired = seed(&db, 60).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::DeletedCountLie);
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api.url), ("CLEANUP_EXACT_BYTES", "false")])).await;
    let answer = app.invoke(r#"{"batch_size": 10}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], "http_api+mongodb");
    assert!(data["cleaned_count"].as_u64().unwrap() <= expired, "{data}");
    assert_eq!(db.count().await, 5);
}

#[tokio::test]
async fn a_call_kept_open_byte_by_byte_ends_at_the_budget_plus_the_margin() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    // One byte a second, forever: each read keeps the 120 s request timeout from ever firing early.
    let api_url = serve(Router::new().fallback(|| async {
        let bytes = stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
        });
        (StatusCode::OK, Body::from_stream(bytes))
    }))
    .await;
    let mut env = db.env(&[
        ("MONGODB_API_URL", &api_url),
        ("MONGODB_API_TIMEOUT_SECONDS", "120"),
        ("CLEANUP_TIME_BUDGET_SECONDS", "2"),
    ]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let answer = app.invoke("").await;
    // The run's deadline (the budget plus the margin) ended the call, not the 120 s request timeout: the error says
    // which (no wall-clock bound, which a loaded machine could cross).
    assert_eq!((answer.status, answer.fc_status.as_deref()), (503, Some("503")), "{}", answer.json);
    let error = answer.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not answer before the run's deadline"), "{error}");
    assert_eq!(db.count().await, 15);
}

/// A Data API that lies consistently (its measures and its `deletedCount`s both inflated by 10^15) is held to the
/// collection's size at the start of the run: a contract failure, and nothing claimed (third review: "Cleaned
/// 11000000000000000 expired tokens", recorded in the history, where 11 were deleted).
#[tokio::test]
async fn a_consistent_liar_is_held_to_the_collections_size() {
    let db = TestDb::new().await;
    seed(&db, 11).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::InflatedCounts(1_000_000_000_000_000));
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 500, "{}", answer.json);
    let error = answer.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("more than the 16 the collection held at its start"), "{error}");
    assert_eq!(answer.json["data"]["cleaned_count"], 0, "an unproven count is not claimed: {}", answer.json);
    assert_eq!(answer.json["data"]["memory_saved_bytes"], 0, "{}", answer.json);
}

/// The same liar with `DB_URI` set (#39 L12): the size bound acts where the fallback can, so the run goes on through
/// the direct connection and reports only what it proved there.
#[tokio::test]
async fn a_liar_beyond_the_size_bound_falls_back_to_the_direct_connection() {
    let db = TestDb::new().await;
    seed(&db, 11).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::InflatedCounts(1_000_000_000_000_000));
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api.url)])).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], "http_api+mongodb", "{data}");
    assert!(data["fallback_reason"].as_str().unwrap_or_default().contains("more than the 16"), "{data}");
    assert_eq!(data["cleaned_count"], 11, "{data}");
    assert_eq!(data["complete"], true, "{data}");
    assert_eq!(db.count().await, 5);
}

/// A `deletedCount` one above what the range was measured to hold (not only `i64::MAX`) is a contract failure.
#[tokio::test]
async fn a_deleted_count_just_above_the_measure_is_a_contract_failure() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::DeletedCountOver(1));
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let answer = app.invoke(r#"{"batch_size": 100}"#).await;
    assert_eq!(answer.status, 500, "{}", answer.json);
    let error = answer.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("deletedCount 11 is more than the 10 entries"), "{error}");
    assert_eq!(answer.json["data"]["cleaned_count"], 0);
}

/// An API that deletes and answers `deletedCount: 0` (#39 L8): the run claims nothing it was not told, and says
/// that entries it measured went unreported while none is left.
#[tokio::test]
async fn an_under_reported_deleted_count_is_a_warning_and_not_exact() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::DeletedCountZero);
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let answer = TestApp::spawn(&settings_from(env)).await.invoke(r#"{"batch_size": 100}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["cleaned_count"], 0, "{data}");
    assert_eq!(data["memory_saved_exact"], false, "{data}");
    let warnings = data["warnings"].to_string();
    assert!(warnings.contains("10 measured entries were not reported deleted, yet none is left"), "{warnings}");
}

/// An answer refused by its declared `Content-Length` before any of its body arrives: the server declares 1 GiB and
/// then sends nothing. The run falls back at once, not after the API's 60 s timeout or the run's deadline (without
/// the check the run waits out its 20 s budget and margin, and fails).
#[tokio::test]
async fn a_huge_declared_length_is_refused_before_any_body_arrives() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    let api_url = serve(Router::new().fallback(|| async {
        let stall = stream::once(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))
        });
        let mut response = (StatusCode::OK, Body::from_stream(stall)).into_response();
        response.headers_mut().insert("content-length", (1u64 << 30).into());
        response
    }))
    .await;
    let settings = db.settings(&[
        ("MONGODB_API_URL", &api_url),
        ("MONGODB_API_TIMEOUT_SECONDS", "60"),
        ("CLEANUP_TIME_BUDGET_SECONDS", "20"),
    ]);
    let app = TestApp::spawn(&settings).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["backend"], "http_api+mongodb");
    // Refused on the declared length: a body that never comes could not be counted past the cap, and would end in
    // the run's deadline instead (no wall-clock bound, which a loaded machine could cross).
    let why = answer.json["data"]["fallback_reason"].as_str().unwrap_or_default();
    assert!(why.contains("the answer is larger than"), "{why}");
}
