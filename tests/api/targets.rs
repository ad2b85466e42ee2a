//! `CLEANUP_TARGETS`: several collections in two databases swept in one run, through either backend; exact counts
//! per target with nothing unexpired touched, the totals, a subset, an unknown name refused, a failing target that
//! does not stop the others, and every target making progress when one has a large backlog.

use chrono::Utc;
use jtc_test_support::data_api::{DataApi, Fault};
use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::Value;

use crate::helpers::{cli, expired_and_valid, CleanerEnv, TestApp, TestDb};

/// Three targets: `auth` (Date expiry, `db`), `billing` (numeric `exp`, another database) and `resets` (a
/// retention rule: `created_at` older than a day).
fn targets_json(other: &TestDb) -> String {
    format!(
        r#"[{{"name": "auth", "collection": "jwt_blacklist"}},
            {{"name": "billing", "database": "{}", "collection": "revoked", "expires_field": "exp"}},
            {{"name": "resets", "collection": "password_resets", "expires_field": "created_at", "grace_seconds": 86400}}]"#,
        other.name
    )
}

/// auth: 30 expired, 5 valid; billing: 20 expired, 3 valid; resets: 10 older than a day, 4 recent.
async fn seed(db: &TestDb, other: &TestDb) {
    let now = Utc::now().timestamp_millis();
    db.insert(expired_and_valid(now, 30, 120_000, 1000, 5)).await;
    let billing: Vec<Document> = (0..23)
        .map(
            |i| doc! { "jti": format!("b{i}"), "exp": Bson::Int64(now / 1000 + if i < 20 { -7200 - i } else { 7200 }) },
        )
        .collect();
    other.client.database(&other.name).collection::<Document>("revoked").insert_many(billing).await.expect("billing");
    let resets: Vec<Document> = (0..14)
        .map(|i| {
            let age_ms = if i < 10 { 2 * 86_400_000 + i * 1000 } else { 3_600_000 };
            doc! { "code": format!("r{i}"), "created_at": DateTime::from_millis(now - age_ms) }
        })
        .collect();
    db.client.database(&db.name).collection::<Document>("password_resets").insert_many(resets).await.expect("resets");
}

/// Entries left in each target: (auth, billing, resets).
async fn left(db: &TestDb, other: &TestDb) -> (u64, u64, u64) {
    let count = |d: &TestDb, c: &str| {
        let collection = d.client.database(&d.name).collection::<Document>(c);
        async move { collection.count_documents(doc! {}).await.expect("count") }
    };
    (count(db, "jwt_blacklist").await, count(other, "revoked").await, count(db, "password_resets").await)
}

fn section<'a>(data: &'a Value, name: &str) -> &'a Value {
    let targets = data["targets"].as_array().unwrap_or_else(|| panic!("no targets: {data}"));
    targets.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no {name}: {data}"))
}

async fn every_target_exactly(through_api: bool) {
    let (db, other) = (TestDb::new().await, TestDb::new().await);
    seed(&db, &other).await;
    let targets = targets_json(&other);
    let api = DataApi::spawn(&db.uri, None).await;
    let mut env = vec![("CLEANUP_TARGETS", targets.as_str()), ("CLEANUP_GRACE_SECONDS", "0")];
    if through_api {
        env.push(("MONGODB_API_URL", api.url.as_str()));
    }
    let mut settings = db.settings(&env);
    if through_api {
        settings.db = None;
    }
    let answer = TestApp::spawn(&settings).await.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(left(&db, &other).await, (5, 3, 4), "exactly the expired entries went: {data}");
    for (name, cleaned, remaining) in [("auth", 30, 5), ("billing", 20, 3), ("resets", 10, 4)] {
        let target = section(data, name);
        assert_eq!(target["cleaned_count"], cleaned, "{target}");
        assert_eq!(target["remaining_tokens"], remaining, "{target}");
        assert_eq!(target["complete"], true, "{target}");
        assert_eq!(target["error"], Value::Null, "{target}");
        assert!(target["memory_saved_bytes"].as_u64().unwrap() > 0, "{target}");
        assert!(target["backlog"].is_object() && target["warnings"].is_array(), "{target}");
    }
    // The totals.
    assert_eq!(data["cleaned_count"], 60);
    assert_eq!(data["remaining_tokens"], 12);
    assert_eq!(data["total_tokens_before"], 72);
    assert_eq!(data["complete"], true);
    let bytes: u64 =
        data["targets"].as_array().unwrap().iter().map(|t| t["memory_saved_bytes"].as_u64().unwrap()).sum();
    assert_eq!(data["memory_saved_bytes"], bytes);
    assert_eq!(data["backend"], if through_api { "http_api" } else { "mongodb" }, "{data}");
    assert_eq!(
        answer.json["message"].as_str().unwrap_or_default().split(',').next(),
        Some("Cleaned 60 expired tokens")
    );
}

#[tokio::test]
async fn every_target_is_swept_exactly_through_the_direct_connection() {
    every_target_exactly(false).await;
}

#[tokio::test]
async fn every_target_is_swept_exactly_through_the_data_api() {
    every_target_exactly(true).await;
}

#[tokio::test]
async fn an_invoke_sweeps_the_targets_it_names_and_refuses_an_unknown_one() {
    let (db, other) = (TestDb::new().await, TestDb::new().await);
    seed(&db, &other).await;
    let targets = targets_json(&other);
    let app =
        TestApp::spawn(&db.settings(&[("CLEANUP_TARGETS", targets.as_str()), ("CLEANUP_GRACE_SECONDS", "0")])).await;

    let refused = app.invoke(r#"{"targets": ["billing", "nope"]}"#).await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    let error = refused.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("unknown target \"nope\"; the targets are: auth, billing, resets"), "{error}");
    assert_eq!(left(&db, &other).await, (35, 23, 14), "nothing ran");
    for bad in [r#"{"targets": []}"#, r#"{"targets": "billing"}"#, r#"{"targets": [1]}"#] {
        assert_eq!(app.invoke(bad).await.status, 400, "{bad}");
    }

    let answer = app.invoke(r#"{"targets": ["billing"]}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["targets"].as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(section(data, "billing")["cleaned_count"], 20);
    assert_eq!(data["cleaned_count"], 20);
    assert_eq!(left(&db, &other).await, (35, 3, 14), "only billing was swept");
}

#[tokio::test]
async fn a_failing_target_does_not_stop_the_others_and_the_run_is_partial() {
    let (db, other) = (TestDb::new().await, TestDb::new().await);
    seed(&db, &other).await;
    let targets = targets_json(&other);
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(Fault::FailCollection("password_resets"));
    // Without the lease: with every call failing, its write would fail first, and a run that cannot take it does
    // not sweep (tests/api/lease.rs); this test is about each target's failure.
    let env = [
        ("CLEANUP_TARGETS", targets.as_str()),
        ("CLEANUP_GRACE_SECONDS", "0"),
        ("MONGODB_API_URL", &api.url),
        ("CLEANUP_LEASE", "false"),
    ];
    let mut settings = db.settings(&env);
    settings.db = None;
    let app = TestApp::spawn(&settings).await;
    let answer = app.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(left(&db, &other).await, (5, 3, 14), "the others were swept: {data}");
    let failed = section(data, "resets");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("injected failure on password_resets")), "{failed}");
    assert_eq!(failed["complete"], false);
    assert_eq!(section(data, "auth")["error"], Value::Null);
    assert_eq!(data["complete"], false, "a failed target leaves the run partial");
    assert_eq!(data["remaining_tokens"], Value::Null, "what is left in the failed target is unknown");
    assert_eq!(data["cleaned_count"], 50);
    let warnings = data["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap_or_default().starts_with("target resets failed")), "{data}");

    // The status judges each target: the broken one fails the whole verdict, and is named.
    let status = app.invoke(r#"{"status": true}"#).await;
    let data = &status.json["data"];
    assert_eq!(data["verdict"], "failing", "{data}");
    assert_eq!(section(data, "resets")["verdict"], "failing", "{data}");
    assert_eq!(section(data, "auth")["verdict"], "ok", "{data}");
    let reasons = data["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r.as_str().unwrap_or_default().starts_with("target resets: ")), "{data}");

    // Every target failing is the error JSON.
    api.set_fault(Fault::Status(500));
    let answer = app.invoke("{}").await;
    assert_eq!(answer.status, 503, "an API answering 500 is unreachable: {}", answer.json);
    assert_eq!(answer.json["status"], "error");
    let error = answer.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("every target failed") && error.contains("auth:") && error.contains("resets:"), "{error}");
}

/// Fairness under a small budget: batches in turn, the least served first (`sweep::turns`). Whatever the machine's
/// speed, no target ends more than one batch (at most twice the batch size) ahead of a target the budget stopped.
#[tokio::test]
async fn a_large_backlog_in_one_target_does_not_starve_the_others() {
    let (db, other) = (TestDb::new().await, TestDb::new().await);
    let now = Utc::now().timestamp_millis();
    // Far more than the budget sweeps here in every target: batches of 10, each followed by a pause twice its
    // length. A 30 s budget: every target has its first turn on a loaded machine too.
    for chunk in expired_and_valid(now, 5_000, 120_000, 10, 0).chunks(5000) {
        db.insert(chunk.to_vec()).await;
    }
    let index = || mongodb::IndexModel::builder().keys(doc! { "expires_at": 1 }).build();
    db.blacklist().create_index(index()).await.expect("index");
    let small = |d: &TestDb, c: &'static str| {
        let docs = expired_and_valid(now, 4_000, 120_000, 10, 2);
        let collection = d.client.database(&d.name).collection::<Document>(c);
        async move {
            collection.insert_many(docs).await.expect("small");
            collection.create_index(mongodb::IndexModel::builder().keys(doc! { "expires_at": 1 }).build()).await
        }
    };
    small(&db, "small_a").await.expect("index");
    small(&other, "small_b").await.expect("index");
    let targets = format!(
        r#"[{{"name": "big", "collection": "jwt_blacklist"}}, {{"name": "a", "collection": "small_a"}},
            {{"name": "b", "database": "{}", "collection": "small_b"}}]"#,
        other.name
    );
    let env = [
        ("CLEANUP_TARGETS", targets.as_str()),
        ("CLEANUP_GRACE_SECONDS", "0"),
        ("CLEANUP_BATCH_SIZE", "10"),
        ("CLEANUP_PAUSE_RATIO", "2"),
        ("CLEANUP_TIME_BUDGET_SECONDS", "30"),
    ];
    let answer = TestApp::spawn(&db.settings(&env)).await.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["complete"], false, "the budget is a small part of the work: {data}");
    let share = |name: &str| section(data, name)["cleaned_count"].as_u64().unwrap();
    for name in ["big", "a", "b"] {
        assert!(share(name) > 0, "{name} made no progress: {data}");
    }
    // One batch deletes at most twice the batch size (a window is measured at most that crowded).
    for stopped in ["big", "a", "b"].into_iter().filter(|n| section(data, n)["complete"] == false) {
        for other in ["big", "a", "b"] {
            assert!(share(other) <= share(stopped) + 20, "{other} ran more than a batch ahead of {stopped}: {data}");
        }
    }
}

/// `create-index` makes every target's index, on its own database, collection and field.
#[tokio::test]
async fn create_index_makes_every_targets_index() {
    let (db, other) = (TestDb::new().await, TestDb::new().await);
    seed(&db, &other).await;
    let targets = targets_json(&other);
    let env = db.env(&[("CLEANUP_TARGETS", targets.as_str())]);
    let out = cli(&env, &["create-index"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (d, collection, field) in
        [(&db, "jwt_blacklist", "expires_at"), (&other, "revoked", "exp"), (&db, "password_resets", "created_at")]
    {
        let indexes = d.client.database(&d.name).collection::<Document>(collection).list_index_names().await.unwrap();
        assert!(indexes.contains(&format!("{field}_1")), "{collection}: {indexes:?}");
        assert!(stderr.contains(&format!("{collection}.{field}")), "{stderr}");
    }
}

/// Without `CLEANUP_TARGETS` the report is today's, field for field: the same keys, no `targets`.
#[tokio::test]
async fn without_targets_the_report_keeps_todays_fields() {
    let db = TestDb::new().await;
    db.insert(expired_and_valid(Utc::now().timestamp_millis(), 4, 120_000, 1000, 2)).await;
    let answer = TestApp::spawn(&db.settings(&[])).await.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let keys: std::collections::BTreeSet<&str> =
        answer.json["data"].as_object().expect("data").keys().map(String::as_str).collect();
    let today: std::collections::BTreeSet<&str> = [
        "success",
        "cleaned_count",
        "remaining_tokens",
        "estimated_memory_usage",
        "memory_saved_bytes",
        "memory_saved_mb",
        "memory_saved_exact",
        "timestamp",
        "execution_time",
        "total_tokens_before",
        "expired_remaining",
        "complete",
        "batches",
        "dry_run",
        "would_clean_count",
        "would_free_bytes",
        "legacy_cleaned",
        "skipped_unverifiable",
        "backfilled",
        "backlog",
        "warnings",
        "backend",
        "fallback_reason",
        "duration_ms",
        "paused_ms",
        "request_id",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, today);
    assert_eq!(answer.json["data"]["cleaned_count"], 4);
}

/// Targets that end leave their part of the batch to the ones still open (#39 L6): two busy targets beside eight
/// empty ones share the run's batch between two once the empty ones have closed (dividing by all ten for the whole
/// run, the two took 40 batches of 100 for 4,000 entries).
#[tokio::test]
async fn targets_that_end_leave_their_part_of_the_batch_to_the_others() {
    let db = TestDb::new().await;
    let now = Utc::now().timestamp_millis();
    let mut list = Vec::new();
    for i in 0..10 {
        if i < 2 {
            let entries = expired_and_valid(now, 2_000, 120_000, 10, 0);
            db.client.database(&db.name).collection::<Document>(&format!("c{i}")).insert_many(entries).await.unwrap();
        }
        list.push(format!(r#"{{"name": "t{i}", "collection": "c{i}"}}"#));
    }
    let targets = format!("[{}]", list.join(","));
    let settings = db.settings(&[
        ("CLEANUP_TARGETS", targets.as_str()),
        ("CLEANUP_GRACE_SECONDS", "0"),
        ("CLEANUP_BATCH_SIZE", "1000"),
        ("CLEANUP_TIME_BUDGET_SECONDS", "120"),
    ]);
    let answer = TestApp::spawn(&settings).await.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["cleaned_count"], 4_000, "{data}");
    assert_eq!(data["complete"], true, "{data}");
    let batches = data["batches"].as_u64().unwrap();
    assert!(batches <= 16, "batches of 500 once the empty targets closed, not of 100: {batches} batches");
}

/// Every log line of a run carries its request id (the CLI's too), and every line of a target's sweep its target,
/// in JSON logs (#39, a newcomer's finding: three `sweep finished` lines said nothing of whose they were).
#[tokio::test]
async fn every_log_line_names_its_run_and_its_target() {
    let db = TestDb::new().await;
    let now = Utc::now().timestamp_millis();
    for c in ["a", "b"] {
        let entries = expired_and_valid(now, 20, 120_000, 10, 0);
        db.client.database(&db.name).collection::<Document>(c).insert_many(entries).await.unwrap();
    }
    let targets = r#"[{"name": "ta", "collection": "a"}, {"name": "tb", "collection": "b"}]"#;
    let out = cli(&db.env(&[("CLEANUP_TARGETS", targets), ("LOG_FORMAT", "json")]), &["sweep"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}")))
        .collect();
    let mut finished = Vec::new();
    for line in &lines {
        let spans = line["spans"].as_array().unwrap_or_else(|| panic!("no spans: {line}"));
        let request_id = spans.iter().find_map(|s| s["request_id"].as_str());
        assert!(request_id.is_some_and(|id| id.starts_with("cli-")), "no request id: {line}");
        if line["fields"]["message"] == "sweep finished" {
            finished.push(spans.iter().find_map(|s| s["target"].as_str()).unwrap_or_else(|| panic!("{line}")));
        }
    }
    finished.sort_unstable();
    assert_eq!(finished, ["ta", "tb"], "{lines:?}");
}
