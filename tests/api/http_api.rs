//! The HTTP API backend and the fallback to the direct connection, against the test Data API in its fault modes.

use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{doc, Bson, DateTime, Document};

use crate::data_api::{DataApi, Fault};
use crate::helpers::{bson_size, dead_db_uri, settings_from, TestApp, TestDb};

/// `expired` expired entries a second apart, and 20 valid ones.
async fn seed(db: &TestDb, expired: i64) -> (u64, u64) {
    let now = Utc::now().timestamp_millis();
    let mut docs: Vec<Document> = (0..expired)
        .map(|i| doc! { "jti": format!("e{i:05}"), "expires_at": DateTime::from_millis(now - 120_000 - i * 1000) })
        .collect();
    docs.push(doc! { "jti": "e-numeric", "expires_at": Bson::Int64(now / 1000 - 3600) });
    docs.extend(
        (0..20).map(|i| doc! { "jti": format!("v{i:02}"), "expires_at": DateTime::from_millis(now + 3_600_000) }),
    );
    docs.push(doc! { "jti": "v-missing" });
    let docs = db.insert(docs).await;
    let gone: Vec<&Document> = docs.iter().filter(|d| d.get_str("jti").unwrap().starts_with('e')).collect();
    (gone.len() as u64, gone.iter().map(|d| bson_size(d)).sum())
}

async fn assert_only_valid_left(db: &TestDb) {
    let left = db.remaining_jtis().await;
    assert_eq!(left.len(), 21, "{left:?}");
    assert!(left.iter().all(|j| j.starts_with('v')), "{left:?}");
}

#[tokio::test]
async fn the_api_alone_sweeps_exactly_like_the_direct_backend() {
    let db = TestDb::new().await;
    let (expired, bytes) = seed(&db, 300).await;
    let api = DataApi::spawn(&db.uri, Some("k-123")).await;
    let mut env = db.env(&[("MONGODB_API_URL", &api.url), ("MONGODB_API_KEY", "k-123")]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;

    let answer = app.invoke(r#"{"batch_size": 50}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], "http_api");
    assert_eq!(data["fallback_reason"], serde_json::Value::Null);
    assert_eq!(data["cleaned_count"], expired);
    assert_eq!(data["memory_saved_bytes"], bytes);
    assert_eq!(data["remaining_tokens"], 21);
    assert_eq!(data["complete"], true);
    assert_only_valid_left(&db).await;
    // One deleteMany per batch, and at most one measuring aggregation per batch beyond the windows that
    // probed empty ranges or had to shrink: "at most 2 round trips per batch" where there is work.
    let batches = data["batches"].as_u64().unwrap();
    assert_eq!(api.deletes(), batches);
    assert!(api.measures() <= 2 * batches + 40, "{} measures for {batches} batches", api.measures());
    // Beyond the batches: the index check, two $collStats, and the empty probes.
    assert!(api.calls() <= api.measures() + batches + 3, "{} calls", api.calls());
    db.drop_db().await;
}

#[tokio::test]
async fn canonical_extended_json_answers_are_read_too() {
    let db = TestDb::new().await;
    let (expired, bytes) = seed(&db, 40).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_canonical(true);
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], expired);
    assert_eq!(answer.json["data"]["memory_saved_bytes"], bytes);
    db.drop_db().await;
}

/// Runs a sweep with the API in `fault` and the direct connection as the fallback; checks the outcome.
async fn falls_back(fault: Fault, timeout: &str, reason: &str) {
    let db = TestDb::new().await;
    let (expired, bytes) = seed(&db, 120).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(fault);
    let app =
        TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api.url), ("MONGODB_API_TIMEOUT_SECONDS", timeout)])).await;
    let answer = app.invoke(r#"{"batch_size": 25}"#).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (200, Some("200")), "{fault:?}: {}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], "http_api+mongodb", "{fault:?}");
    let why = data["fallback_reason"].as_str().unwrap_or_default();
    assert!(why.starts_with("http_api failed: ") && why.contains(reason), "{fault:?}: {why}");
    assert!(!why.contains('\n'), "one line: {why}");
    assert_eq!(data["complete"], true);
    if fault == Fault::DeletedCountAsString {
        // The API deleted one batch but its count could not be read: that batch is not claimed.
        assert_eq!(api.deletes(), 1);
        assert!(data["cleaned_count"].as_u64().unwrap() < expired, "{data}");
        assert_eq!(data["memory_saved_exact"], false);
    } else {
        assert_eq!(data["cleaned_count"], expired, "{fault:?}: the API's batches and the direct ones add up");
        assert_eq!(data["memory_saved_bytes"], bytes, "{fault:?}");
    }
    assert_only_valid_left(&db).await;
    db.drop_db().await;
}

#[tokio::test]
async fn falls_back_when_the_api_is_down() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    // Nothing listens there.
    let url = dead_db_uri().replace("mongodb://", "http://").replace("/?directConnection=true", "");
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &url)])).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["backend"], "http_api+mongodb");
    assert!(data["fallback_reason"].as_str().unwrap().contains("connection failed"), "{data}");
    assert_eq!(data["cleaned_count"], 11);
    assert_only_valid_left(&db).await;
    db.drop_db().await;
}

#[tokio::test]
async fn falls_back_on_a_5xx() {
    falls_back(Fault::Status(500), "10", "HTTP 500").await;
    falls_back(Fault::Status(503), "10", "HTTP 503").await;
}

#[tokio::test]
async fn falls_back_on_401_and_403() {
    falls_back(Fault::Status(401), "10", "authentication failed: HTTP API aggregate: HTTP 401").await;
    falls_back(Fault::Status(403), "10", "HTTP 403").await;
}

#[tokio::test]
async fn falls_back_on_a_4xx_and_calls_it_a_bug() {
    falls_back(Fault::Status(400), "10", "a bug to report").await;
}

#[tokio::test]
async fn falls_back_when_the_api_is_too_slow() {
    falls_back(Fault::Slow(Duration::from_secs(4)), "1", "timed out").await;
}

#[tokio::test]
async fn falls_back_on_html_instead_of_json() {
    falls_back(Fault::Html, "10", "not a JSON object").await;
}

#[tokio::test]
async fn falls_back_on_a_deleted_count_of_the_wrong_type() {
    falls_back(Fault::DeletedCountAsString, "10", "\"deletedCount\" is missing or not a whole number").await;
}

#[tokio::test]
async fn work_done_by_the_api_before_it_dies_counts() {
    let db = TestDb::new().await;
    let (expired, bytes) = seed(&db, 200).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::DieAfterDeletes(3));
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api.url)])).await;
    let data = app.invoke(r#"{"batch_size": 20}"#).await.json["data"].clone();
    assert_eq!(api.deletes(), 3, "the API did three batches");
    assert_eq!(data["backend"], "http_api+mongodb");
    assert!(data["fallback_reason"].as_str().unwrap().contains("the API died"), "{data}");
    assert_eq!(data["cleaned_count"], expired);
    assert_eq!(data["memory_saved_bytes"], bytes);
    assert_only_valid_left(&db).await;
    db.drop_db().await;
}

#[tokio::test]
async fn both_backends_failing_is_an_error_with_both_reasons_and_the_honest_count() {
    let db = TestDb::new().await;
    seed(&db, 200).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::DieAfterDeletes(2));
    let mut env = db.env(&[("MONGODB_API_URL", &api.url), ("DB_TIMEOUT_SECONDS", "1")]);
    env.insert("DB_URI".into(), dead_db_uri());
    let app = TestApp::spawn(&settings_from(env)).await;
    let before = db.count().await;
    let answer = app.invoke(r#"{"batch_size": 20}"#).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (503, Some("503")), "{}", answer.json);
    let json = &answer.json;
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("http_api failed") && error.contains("then mongodb failed"), "{error}");
    let deleted = before - db.count().await;
    assert!(deleted > 0);
    assert_eq!(json["data"]["cleaned_count"], deleted, "what the API really deleted");
    assert_eq!(json["data"]["backend"], "http_api+mongodb");
    db.drop_db().await;
}

#[tokio::test]
async fn initialize_reports_the_backend_in_use() {
    let db = TestDb::new().await;
    let api = DataApi::spawn(&db.uri, None).await;
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &api.url)])).await;
    let answer = app.call(reqwest::Method::POST, "/initialize", "".into(), None).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["backend"], "http_api");
    api.set_fault(Fault::Status(502));
    let answer = app.call(reqwest::Method::POST, "/initialize", "".into(), None).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["backend"], "http_api+mongodb");
    assert!(answer.json["fallback_reason"].as_str().unwrap().contains("HTTP 502"));
    db.drop_db().await;
}
