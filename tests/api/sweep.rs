//! The sweep through POST /invoke: what goes, what stays, exact bytes, batches, budget, dry run, concurrency.

use chrono::Utc;
use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::json;

use crate::helpers::{bson_size, CleanerEnv, TestApp, TestDb};

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn date(ms: i64) -> Bson {
    Bson::DateTime(DateTime::from_millis(ms))
}

/// Entries that must go (grace 60 s): expired Dates and numeric `exp` values of every numeric type.
fn expired_entries() -> Vec<Document> {
    let now = now_ms();
    let secs = now / 1000;
    vec![
        doc! { "jti": "exp-date-1h", "expires_at": date(now - 3_600_000), "user": "alice" },
        doc! { "jti": "exp-date-61s", "expires_at": date(now - 61_000 - 2_000) },
        doc! { "jti": "exp-date-1y", "expires_at": date(now - 365 * 86_400_000), "token": "x".repeat(500) },
        doc! { "jti": "exp-date-1970", "expires_at": date(0) },
        doc! { "jti": "exp-date-pre-1970", "expires_at": date(-86_400_000) },
        doc! { "jti": "exp-int64", "expires_at": Bson::Int64(secs - 3600) },
        doc! { "jti": "exp-int32", "expires_at": Bson::Int32(1_000_000_000) },
        doc! { "jti": "exp-double", "expires_at": Bson::Double((secs - 7200) as f64 + 0.25) },
        doc! { "jti": "exp-zero", "expires_at": Bson::Int32(0) },
    ]
}

/// Entries that must stay: valid, in the grace period, or without a provable expiry.
fn kept_entries() -> Vec<Document> {
    let now = now_ms();
    let secs = now / 1000;
    vec![
        doc! { "jti": "keep-date-future", "expires_at": date(now + 3_600_000) },
        doc! { "jti": "keep-date-in-grace", "expires_at": date(now - 30_000) },
        doc! { "jti": "keep-date-just-in-grace", "expires_at": date(now - 55_000) },
        doc! { "jti": "keep-int-future", "expires_at": Bson::Int64(secs + 3600) },
        doc! { "jti": "keep-int-in-grace", "expires_at": Bson::Int64(secs - 20) },
        doc! { "jti": "keep-ms-not-seconds", "expires_at": Bson::Int64(now - 3_600_000) },
        doc! { "jti": "keep-missing" },
        doc! { "jti": "keep-null", "expires_at": Bson::Null },
        doc! { "jti": "keep-string", "expires_at": "2020-01-01T00:00:00Z" },
        doc! { "jti": "keep-negative", "expires_at": Bson::Int64(-5) },
        doc! { "jti": "keep-nan", "expires_at": Bson::Double(f64::NAN) },
        doc! { "jti": "keep-bool", "expires_at": true },
        doc! { "jti": "keep-array", "expires_at": [1, 2] },
        doc! { "jti": "keep-array-of-dates", "expires_at": [date(0)] },
        doc! { "jti": "keep-object", "expires_at": { "seconds": 1 } },
        doc! { "jti": "keep-other-field", "exp": Bson::Int64(secs - 3600) },
    ]
}

fn jtis(docs: &[Document]) -> Vec<String> {
    let mut v: Vec<String> = docs.iter().map(|d| d.get_str("jti").unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn sweeps_exactly_the_provably_expired_entries_with_exact_bytes() {
    let db = TestDb::new().await;
    let expired = db.insert(expired_entries()).await;
    let kept = db.insert(kept_entries()).await;
    let expected_bytes: u64 = expired.iter().map(bson_size).sum();
    let app = TestApp::spawn(&db.settings(&[])).await;

    let answer = app.invoke("").await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (200, Some("200")), "{}", answer.json);
    let json = &answer.json;
    assert_eq!(json["status"], "success");
    assert_eq!(json["message"], format!("Cleaned {} expired tokens", expired.len()));
    let data = &json["data"];
    assert_eq!(data["success"], true);
    assert_eq!(data["cleaned_count"], expired.len() as u64);
    assert_eq!(data["memory_saved_bytes"], expected_bytes);
    assert_eq!(data["memory_saved_exact"], true);
    assert_eq!(data["total_tokens_before"], (expired.len() + kept.len()) as u64);
    assert_eq!(data["remaining_tokens"], kept.len() as u64);
    assert_eq!(data["expired_remaining"], 0);
    assert_eq!(data["complete"], true);
    assert_eq!(data["dry_run"], false);
    assert_eq!(data["backend"], "mongodb");
    assert_eq!(data["request_id"], "test-request-1");
    assert!(data["batches"].as_u64().unwrap() >= 1);
    assert!(data["estimated_memory_usage"].as_u64().unwrap() > 0);
    assert!(data["duration_ms"].is_u64());
    let ts = data["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 20, "{ts}");
    assert!(ts.ends_with('Z'));
    assert_eq!(data["execution_time"].as_str().unwrap(), ts[..19].replace('T', " "));
    assert_eq!(data["memory_saved_mb"], json!(((expected_bytes as f64) / 1_048_576.0 * 100.0).round() / 100.0));

    assert_eq!(db.remaining_jtis().await, jtis(&kept));

    // A second run finds nothing more and changes nothing.
    let again = app.invoke("").await;
    assert_eq!(again.json["data"]["cleaned_count"], 0);
    assert_eq!(again.json["data"]["memory_saved_bytes"], 0);
    assert_eq!(db.remaining_jtis().await, jtis(&kept));
}

#[tokio::test]
async fn grace_period_comes_from_the_configuration() {
    let db = TestDb::new().await;
    let now = now_ms();
    db.insert(vec![
        doc! { "jti": "a", "expires_at": date(now - 30_000) },
        doc! { "jti": "b", "expires_at": date(now - 700_000) },
    ])
    .await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_GRACE_SECONDS", "600")])).await;
    assert_eq!(app.invoke("").await.json["data"]["cleaned_count"], 1);
    assert_eq!(db.remaining_jtis().await, vec!["a"]);
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_GRACE_SECONDS", "0")])).await;
    assert_eq!(app.invoke("").await.json["data"]["cleaned_count"], 1);
    assert!(db.remaining_jtis().await.is_empty());
}

/// `n` expired entries one second apart (oldest first), plus `valid` valid ones.
fn spread(n: i64, valid: i64) -> Vec<Document> {
    spread_at(now_ms(), n, valid)
}

/// [`spread`] as if `now` were the time.
fn spread_at(now: i64, n: i64, valid: i64) -> Vec<Document> {
    let mut docs: Vec<Document> = (0..n)
        .map(|i| doc! { "jti": format!("e{i:06}"), "expires_at": date(now - 120_000 - i * 1000), "pad": "p".repeat((i % 50) as usize) })
        .collect();
    docs.extend((0..valid).map(|i| doc! { "jti": format!("v{i:06}"), "expires_at": date(now + 3_600_000 + i) }));
    docs
}

#[tokio::test]
async fn deletes_in_batches_with_exact_bytes() {
    let db = TestDb::new().await;
    let docs = db.insert(spread(1200, 50)).await;
    let expected: u64 = docs.iter().filter(|d| d.get_str("jti").unwrap().starts_with('e')).map(bson_size).sum();
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.invoke(r#"{"batch_size": 100}"#).await;
    let data = &answer.json["data"];
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(data["cleaned_count"], 1200);
    assert_eq!(data["memory_saved_bytes"], expected);
    assert_eq!(data["complete"], true);
    let batches = data["batches"].as_u64().unwrap();
    assert!((8..=40).contains(&batches), "1200 entries at ~100 per batch took {batches} batches");
    assert_eq!(db.count().await, 50);
}

#[tokio::test]
async fn entries_sharing_one_expiry_are_swept_together() {
    let db = TestDb::new().await;
    let at = now_ms() - 3_600_000;
    let docs = db.insert((0..300).map(|i| doc! { "jti": format!("t{i}"), "expires_at": date(at) }).collect()).await;
    let expected: u64 = docs.iter().map(bson_size).sum();
    let app = TestApp::spawn(&db.settings(&[])).await;
    let data = app.invoke(r#"{"batch_size": 10}"#).await.json["data"].clone();
    assert_eq!(data["cleaned_count"], 300);
    assert_eq!(data["memory_saved_bytes"], expected);
    assert_eq!(db.count().await, 0);
}

#[tokio::test]
async fn time_budget_stops_the_run_and_the_next_run_finishes() {
    let db = TestDb::new().await;
    let now = now_ms();
    let docs = db.insert(spread_at(now, 3000, 10)).await;
    let expected: u64 = docs.iter().filter(|d| d.get_str("jti").unwrap().starts_with('e')).map(bson_size).sum();
    let app = TestApp::spawn(&db.settings(&[])).await;

    // The first run with its clock pinned to the seed's: its first window holds exactly the newest entry, so it
    // deletes at least one batch however slow the machine is, and 3,000 batches of one cannot fit in 1 s. (Through
    // /invoke, the cutoff moved with the time the seed took, and on a loaded machine the first second went on two
    // unindexed window measures of 500 ms each, deleting nothing.)
    let settings = db.settings(&[]);
    let store = jwt_token_cleaner::store::mongo::MongoStore::new(
        settings.db.clone().unwrap(),
        &settings.sweep.collection,
        &settings.sweep.expires_field,
    );
    let overrides = jwt_token_cleaner::sweep::SweepOverrides {
        batch_size: Some(1),
        time_budget_seconds: Some(1),
        ..Default::default()
    };
    let options = jwt_token_cleaner::sweep::SweepOptions::resolve(&settings.sweep, &settings.legacy, overrides);
    let pinned = chrono::DateTime::from_timestamp_millis(now).unwrap();
    let silent = &jwt_token_cleaner::sweep::Silent;
    let report = jwt_token_cleaner::sweep::run_at(&store, &options, None, "budget", pinned, silent).await.unwrap();
    let first = serde_json::to_value(report).unwrap();
    assert_eq!(first["complete"], false, "{first}");
    let cleaned_first = first["cleaned_count"].as_u64().unwrap();
    assert!(cleaned_first > 0 && cleaned_first < 3000, "{first}");
    assert_eq!(first["expired_remaining"], 3000 - cleaned_first);
    assert_eq!(db.count().await, 3010 - cleaned_first);

    let answer = app.invoke(r#"{"batch_size": 5000}"#).await;
    assert!(answer.json["message"].as_str().unwrap().starts_with("Cleaned"));
    let second = &answer.json["data"];
    assert_eq!(second["complete"], true);
    assert_eq!(second["expired_remaining"], 0);
    assert_eq!(cleaned_first + second["cleaned_count"].as_u64().unwrap(), 3000);
    assert_eq!(
        first["memory_saved_bytes"].as_u64().unwrap() + second["memory_saved_bytes"].as_u64().unwrap(),
        expected
    );
    assert_eq!(db.count().await, 10);
}

#[tokio::test]
async fn incomplete_run_says_so_in_the_message() {
    let db = TestDb::new().await;
    db.insert(spread(2000, 0)).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let json = app.invoke(r#"{"batch_size": 1, "time_budget_seconds": 1}"#).await.json;
    assert!(json["message"].as_str().unwrap().contains("remain for the next run"), "{json}");
}

#[tokio::test]
async fn dry_run_counts_and_deletes_nothing() {
    let db = TestDb::new().await;
    let expired = db.insert(expired_entries()).await;
    let kept = db.insert(kept_entries()).await;
    let bytes: u64 = expired.iter().map(bson_size).sum();
    let app = TestApp::spawn(&db.settings(&[])).await;
    let json = app.invoke(r#"{"dry_run": true}"#).await.json;
    let data = &json["data"];
    assert_eq!(json["message"], format!("Dry run: {} expired tokens would be cleaned", expired.len()));
    assert_eq!(data["dry_run"], true);
    assert_eq!(data["cleaned_count"], 0);
    assert_eq!(data["memory_saved_bytes"], 0);
    assert_eq!(data["would_clean_count"], expired.len() as u64);
    assert_eq!(data["would_free_bytes"], bytes);
    assert_eq!(data["expired_remaining"], expired.len() as u64);
    assert_eq!(db.count().await, (expired.len() + kept.len()) as u64);
}

#[tokio::test]
async fn timer_events_run_sweeps_with_their_payload_options() {
    let db = TestDb::new().await;
    let expired = db.insert(expired_entries()).await;
    let app = TestApp::spawn(&db.settings(&[])).await;

    let dry = r#"{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"timer-trigger","payload":"{\"dry_run\":true}"}"#;
    let answer = app.invoke(dry).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["would_clean_count"], expired.len() as u64);
    assert_eq!(db.count().await, expired.len() as u64);

    let free_text = r#"{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"timer-trigger","payload":"hourly sweep"}"#;
    let answer = app.invoke(free_text).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], expired.len() as u64);
    assert_eq!(db.count().await, 0);
}

#[tokio::test]
async fn concurrent_invokes_end_in_the_same_state_and_never_double_count() {
    let db = TestDb::new().await;
    db.insert(spread(1500, 20)).await;
    // Without the lease, which would keep one of the two out (tests/api/lease.rs): runs that do overlap (the lease
    // turned off, or run out under a run that outlived it) must be safe.
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_LEASE", "false")])).await;
    let (a, b) = tokio::join!(app.invoke(r#"{"batch_size": 200}"#), app.invoke(r#"{"batch_size": 200}"#));
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.json, b.json);
    let total = a.json["data"]["cleaned_count"].as_u64().unwrap() + b.json["data"]["cleaned_count"].as_u64().unwrap();
    assert_eq!(total, 1500);
    assert_eq!(a.json["data"]["complete"], true);
    assert_eq!(b.json["data"]["complete"], true);
    assert_eq!(db.count().await, 20);
}

#[tokio::test]
async fn custom_collection_and_field_names() {
    let db = TestDb::new().await;
    let collection = db.client.database(&db.name).collection::<Document>("revoked");
    let now = now_ms();
    collection
        .insert_many([
            doc! { "jti": "a", "exp": date(now - 3_600_000) },
            doc! { "jti": "b", "exp": date(now + 3_600_000) },
            doc! { "jti": "c", "expires_at": date(now - 3_600_000) },
        ])
        .await
        .unwrap();
    let app = TestApp::spawn(&db.settings(&[("BLACKLIST_COLLECTION", "revoked"), ("EXPIRES_FIELD", "exp")])).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["cleaned_count"], 1);
    assert_eq!(collection.count_documents(doc! {}).await.unwrap(), 2);
}

#[tokio::test]
async fn empty_or_missing_collection_is_a_clean_success() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], 0);
    assert_eq!(answer.json["data"]["remaining_tokens"], 0);
    assert_eq!(answer.json["data"]["complete"], true);
}
