//! The HTTP API backend and the fallback to the direct connection, against the test Data API: the documented
//! contract, the dialects of servers that deviate from it, and its fault modes.

use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{doc, Bson, Document};

use crate::helpers::{bson_size, dead_db_uri, expired_and_valid, settings_from, CleanerEnv, TestApp, TestDb};
use jtc_test_support::data_api::{DataApi, Dialect, Fault};

/// `expired` expired entries a second apart, and 20 valid ones.
async fn seed(db: &TestDb, expired: i64) -> (u64, u64) {
    let now = Utc::now().timestamp_millis();
    let mut docs = expired_and_valid(now, expired, 120_000, 1000, 20);
    docs.push(doc! { "jti": "e-numeric", "expires_at": Bson::Int64(now / 1000 - 3600) });
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
    // Beyond the batches: the contract probe, the index check, one $collStats, the two confirming counts, the
    // backlog (a bounded count per lane, and the oldest entry of a lane that has any), the run's record, and the
    // lease (taken and released: two).
    assert_eq!(api.probes(), 1);
    assert!(api.calls() <= api.measures() + batches + 12, "{} calls", api.calls());
    assert!(!data["warnings"].to_string().contains("history"), "the record went through the API's insertOne: {data}");
}

#[tokio::test]
async fn relaxed_extended_json_answers_are_read_too() {
    let db = TestDb::new().await;
    let (expired, bytes) = seed(&db, 40).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_relaxed(true);
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], expired);
    assert_eq!(answer.json["data"]["memory_saved_bytes"], bytes);
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
}

/// The app with the API alone (no `DB_URI`), or the API and the direct connection as its fallback.
async fn app_with(db: &TestDb, api: &DataApi, fallback: bool, extra: &[(&str, &str)]) -> TestApp {
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if !fallback {
        env.remove("DB_URI");
    }
    TestApp::spawn(&settings_from(env)).await
}

#[tokio::test]
async fn the_documented_server_refuses_a_wrong_key_header_and_the_dashed_dialect_works_too() {
    let db = TestDb::new().await;
    let api = DataApi::spawn(&db.uri, Some("k-1")).await;
    // The test server itself: the documented header only.
    let body = r#"{"dataSource":"d","database":"x","collection":"y","filter":{}}"#;
    let http = reqwest::Client::new();
    for (name, status) in [("api-key", 401), ("apiKey", 200)] {
        let answer = http
            .post(format!("{}/action/find", api.url))
            .header("content-type", "application/ejson")
            .header(name, "k-1")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), status, "{name}");
    }
    let (expired, _) = seed(&db, 30).await;
    api.set_dialect(Dialect::DashedKeyHeader);
    let app = app_with(&db, &api, false, &[("MONGODB_API_KEY", "k-1")]).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!((data["backend"].as_str(), data["cleaned_count"].as_u64()), (Some("http_api"), Some(expired)), "{data}");
    assert_only_valid_left(&db).await;
}

#[tokio::test]
async fn a_json_only_server_is_detected_and_the_direct_connection_does_the_sweep() {
    for dialect in [Dialect::JsonOnly, Dialect::JsonAnswers] {
        let db = TestDb::new().await;
        let (expired, bytes) = seed(&db, 50).await;
        let api = DataApi::spawn(&db.uri, None).await;
        api.set_dialect(dialect);
        let app = app_with(&db, &api, true, &[]).await;
        let answer = app.invoke("").await;
        assert_eq!(answer.status, 200, "{dialect:?}: {}", answer.json);
        let data = &answer.json["data"];
        assert_eq!(data["backend"], "http_api+mongodb");
        let why = data["fallback_reason"].as_str().unwrap_or_default();
        assert!(why.starts_with("http_api failed: the HTTP API does not follow the Data API contract"), "{why}");
        let what = if dialect == Dialect::JsonOnly { "was read as \"object\"" } else { "came back as" };
        assert!(why.contains(what), "{dialect:?}: {why}");
        assert_eq!(api.deletes(), 0, "nothing went through the broken server");
        assert_eq!(data["cleaned_count"], expired);
        assert_eq!(data["memory_saved_bytes"], bytes);
        assert_eq!(data["complete"], true);
        assert_only_valid_left(&db).await;
    }
}

#[tokio::test]
async fn a_json_only_server_without_a_fallback_is_an_error_and_nothing_is_deleted() {
    let db = TestDb::new().await;
    seed(&db, 50).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_dialect(Dialect::JsonOnly);
    let app = app_with(&db, &api, false, &[]).await;
    let before = db.remaining_jtis().await;
    for body in ["", r#"{"dry_run": true}"#] {
        let answer = app.invoke(body).await;
        assert_eq!((answer.status, answer.fc_status.as_deref()), (500, Some("500")), "{}", answer.json);
        assert_eq!(answer.json["status"], "error");
        let error = answer.json["error"].as_str().unwrap();
        assert!(error.contains("does not follow the Data API contract"), "{error}");
        assert_eq!(answer.json["data"]["cleaned_count"], 0);
    }
    // The numeric entry too: a server that broke the contract is not trusted with any lane.
    assert_eq!(db.remaining_jtis().await, before);
    assert_eq!(api.deletes(), 0);
}

#[tokio::test]
async fn the_proof_is_kept_for_the_process_and_taken_again_after_an_error() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    let api = DataApi::spawn(&db.uri, None).await;
    let app = app_with(&db, &api, true, &[]).await;
    for _ in 0..2 {
        assert_eq!(app.invoke(r#"{"dry_run": true}"#).await.json["data"]["backend"], "http_api");
    }
    assert_eq!(api.probes(), 1, "one probe for two runs");
    api.set_fault(Fault::Status(502));
    assert_eq!(app.invoke(r#"{"dry_run": true}"#).await.json["data"]["backend"], "http_api+mongodb");
    api.set_fault(Fault::None);
    // The server may have changed while it failed: the next run proves the contract again before trusting it.
    api.set_dialect(Dialect::JsonOnly);
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["backend"], "http_api+mongodb", "{data}");
    assert!(data["fallback_reason"].as_str().unwrap().contains("contract"), "{data}");
    assert_eq!(api.deletes(), 0);
    assert_only_valid_left(&db).await;
}

#[tokio::test]
async fn an_empty_collection_proves_nothing_and_is_swept_as_empty() {
    let db = TestDb::new().await;
    let api = DataApi::spawn(&db.uri, None).await;
    let app = app_with(&db, &api, false, &[]).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!((data["cleaned_count"].as_u64(), data["complete"].as_bool()), (Some(0), Some(true)), "{data}");
    let probes = api.probes();
    assert!(probes > 1, "not cached while nothing could be proven: {probes}");
    seed(&db, 5).await;
    app.invoke("").await;
    app.invoke("").await;
    assert_eq!(api.probes(), probes + 1, "proven once there was a document");
    assert_only_valid_left(&db).await;
}

#[tokio::test]
async fn a_server_that_misreads_delete_filters_cannot_report_complete() {
    let db = TestDb::new().await;
    let (expired, _) = seed(&db, 60).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::PlainJsonDeleteFilters);
    let app = app_with(&db, &api, false, &[]).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    // The numeric entry's filter is plain JSON numbers and goes; every Date filter matches nothing there.
    assert_eq!(data["cleaned_count"], 1);
    assert_eq!(data["complete"], false, "{data}");
    assert_eq!(data["expired_remaining"], expired - 1);
    let warnings = data["warnings"].to_string();
    assert!(warnings.contains("are still in the date lane after it was swept"), "{data}");
    assert!(!warnings.contains("seconds lane"), "{data}");
    assert!(answer.json["message"].as_str().unwrap().contains("expired tokens remain"), "{}", answer.json);
    assert_eq!(db.count().await, expired - 1 + 21);
}

#[tokio::test]
async fn echoed_credentials_never_reach_the_answer() {
    let db = TestDb::new().await;
    seed(&db, 5).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::EchoHeaders);
    let url = api.url.replace("http://", "http://svc-user:Url-Pa55-e1c4@");
    let app = TestApp::spawn(&db.settings(&[("MONGODB_API_URL", &url), ("MONGODB_API_KEY", "Key-0f-7e57")])).await;
    let answer = app.invoke("").await;
    let text = answer.json.to_string();
    let why = answer.json["data"]["fallback_reason"].as_str().unwrap_or_default();
    assert!(why.contains("HTTP 500") && why.contains("authorization"), "the headers were echoed: {text}");
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "svc-user:Url-Pa55-e1c4");
    for secret in ["Url-Pa55-e1c4", "svc-user", "Key-0f-7e57", basic.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}
