//! Is the cleaner keeping up? The run history (written through both backends, a failed write a warning), the
//! backlog, `status` (its JSON, its verdicts and exit codes, the chart, foreign documents), the status invoke, the
//! heartbeat against a recording server, and a real Prometheus Pushgateway (`PUSHGATEWAY_TEST_URL`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Uri;
use axum::Router;
use chrono::Utc;
use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::Value;

use crate::helpers::{
    cli, dead_db_uri, expired_and_valid, run_with_peak_rss, settings_from, CleanerEnv, TempDir, TestApp, TestDb,
};
use jtc_test_support::data_api::DataApi;

const TIMER: &str = r#"{"triggerTime":"2026-11-27T07:00:00Z","triggerName":"hourly","payload":""}"#;

/// `n` entries expired an hour ago (or more), and 5 valid ones.
async fn seed(db: &TestDb, n: i64) {
    let now = Utc::now().timestamp_millis();
    db.insert(expired_and_valid(now, n, 3_600_000, 1000, 5)).await;
}

fn runs(db: &TestDb) -> mongodb::Collection<Document> {
    db.client.database(&db.name).collection("jwt_cleaner_runs")
}

async fn records(db: &TestDb) -> Vec<Document> {
    use futures_util::TryStreamExt;
    let cursor = runs(db).find(doc! {}).sort(doc! { "started_at": 1 }).await.expect("find");
    cursor.try_collect().await.expect("records")
}

async fn status_json(env: &HashMap<String, String>) -> (i32, Value) {
    let out = cli(env, &["status", "--json"]).await;
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("not JSON: {} / {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), json)
}

#[tokio::test]
async fn every_run_is_recorded_through_the_direct_backend_with_its_ttl_index() {
    let db = TestDb::new().await;
    seed(&db, 30).await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_HISTORY_DAYS", "30")])).await;
    let answer = app.invoke(TIMER).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backlog"]["expired"], 0, "{data}");
    assert_eq!(data["backlog"]["oldest_expired_age_seconds"], Value::Null);
    assert!(!data["warnings"].to_string().contains("history"), "{data}");
    let dry = app.invoke(r#"{"dry_run": true}"#).await;
    assert_eq!(dry.status, 200);

    let records = records(&db).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let run = &records[0];
    assert_eq!(run.get_str("kind").unwrap(), "jwt-token-cleaner-run");
    assert_eq!(run.get_str("trigger").unwrap(), "timer");
    assert_eq!(run.get_str("request_id").unwrap(), "test-request-1");
    assert_eq!(run.get_str("outcome").unwrap(), "success");
    assert_eq!(run.get_str("backend").unwrap(), "mongodb");
    assert_eq!(run.get_i64("cleaned_count").unwrap(), 30);
    assert!(run.get_i64("memory_saved_bytes").unwrap() > 0);
    assert!(!run.get_bool("dry_run").unwrap() && run.get_bool("complete").unwrap());
    assert_eq!(run.get_document("backlog").unwrap().get_i64("expired").unwrap(), 0);
    assert!(run.get_datetime("started_at").is_ok() && run.get_datetime("ended_at").is_ok());
    assert_eq!(run.get_str("version").unwrap(), env!("CARGO_PKG_VERSION"));
    assert_eq!(records[1].get_str("trigger").unwrap(), "manual");
    assert!(records[1].get_bool("dry_run").unwrap());

    // Bounded by a TTL index on its own time field.
    use futures_util::TryStreamExt;
    let indexes: Vec<mongodb::IndexModel> = runs(&db).list_indexes().await.unwrap().try_collect().await.unwrap();
    let ttl = indexes.iter().find(|i| i.keys.contains_key("started_at")).expect("a TTL index on started_at");
    assert_eq!(ttl.options.as_ref().and_then(|o| o.expire_after), Some(Duration::from_secs(30 * 86_400)));
}

#[tokio::test]
async fn runs_through_the_http_api_are_recorded_with_its_insert_one() {
    let db = TestDb::new().await;
    seed(&db, 12).await;
    let api = DataApi::spawn(&db.uri, Some("k")).await;
    let mut env = db.env(&[("MONGODB_API_URL", &api.url), ("MONGODB_API_KEY", "k")]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env.clone())).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(!answer.json["data"]["warnings"].to_string().contains("history"), "{}", answer.json);
    let records = records(&db).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].get_str("backend").unwrap(), "http_api");
    // Relaxed Extended JSON carries small counts as plain numbers: the server may store them as 32-bit integers.
    assert_eq!(records[0].get("cleaned_count").and_then(mongodb::bson::Bson::as_i32), Some(12), "{:?}", records[0]);

    // And status reads it back through the API alone.
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (0, Some("ok")), "{status}");
    assert_eq!(status["runs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_history_that_cannot_be_written_is_a_warning_and_the_sweep_stands() {
    let db = TestDb::new().await;
    seed(&db, 8).await;
    // A unique index the record will collide with: the insert fails, as a full disk or a read-only user would.
    runs(&db)
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "request_id": 1 })
                .options(mongodb::options::IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .unwrap();
    runs(&db).insert_one(doc! { "request_id": "test-request-1", "note": "in the way" }).await.unwrap();
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], 8);
    let warnings = answer.json["data"]["warnings"].to_string();
    assert!(warnings.contains("the run history was not written"), "{warnings}");
    assert_eq!(db.count().await, 5);
}

#[tokio::test]
async fn status_verdicts_and_exit_codes_from_the_command_line() {
    let db = TestDb::new().await;
    let env = db.env(&[]);
    // Nothing yet: never ran (3).
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (3, Some("never_ran")), "{status}");
    assert_eq!(status["last_run"], Value::Null);

    // A real run: ok (0), with every key an on-call engineer reads.
    seed(&db, 20).await;
    let out = cli(&env, &["sweep"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    seed(&db, 3).await;
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (0, Some("ok")), "{status}");
    assert!(status["last_run"]["started_at"].is_string() && status["last_success"]["started_at"].is_string());
    assert_eq!(status["last_run"]["trigger"], "cli");
    assert_eq!(status["backlog"]["expired"], 3, "the backlog now, read live: {status}");
    assert!(status["backlog"]["oldest_expired_age_seconds"].as_u64().unwrap() >= 3600);
    assert_eq!(status["runs"][0]["cleaned_count"], 20);

    // Foreign documents are not read at all (only run records are); malformed run records are skipped and said,
    // not fatal.
    runs(&db).insert_one(doc! { "hello": "world" }).await.unwrap();
    runs(&db)
        .insert_one(doc! { "kind": "jwt-token-cleaner-run", "started_at": DateTime::now(), "outcome": "success" })
        .await
        .unwrap();
    let (code, status) = status_json(&env).await;
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["skipped_documents"], 1);

    // The only success 3 h ago, then nothing: failing (2).
    runs(&db).delete_many(doc! {}).await.unwrap();
    let three_hours_ago = DateTime::from_millis(Utc::now().timestamp_millis() - 3 * 3_600_000);
    let old = doc! {
        "kind": "jwt-token-cleaner-run", "schema": 1, "started_at": three_hours_ago, "ended_at": three_hours_ago,
        "duration_ms": 1000_i64, "trigger": "timer", "request_id": "old", "dry_run": false, "backend": "mongodb",
        "fallback_reason": null, "outcome": "success", "cleaned_count": 1_i64, "memory_saved_bytes": 1_i64,
        "expired_remaining": 0_i64, "complete": true, "backlog": null, "error": null, "version": "0.1.0",
    };
    runs(&db).insert_one(old).await.unwrap();
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (2, Some("failing")), "{status}");
    // The text says the same, with its sparkline line.
    let out = cli(&env, &["status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2));
    assert!(text.starts_with("jwt-token-cleaner status: failing (exit 2)") && text.contains("trend:"), "{text}");
}

/// A run record started `hours_ago` (negative: in the future) with `outcome` and `error`.
fn run_record(hours_ago: i64, outcome: &str, error: Option<&str>) -> Document {
    let at = DateTime::from_millis(Utc::now().timestamp_millis() - hours_ago * 3_600_000);
    doc! {
        "kind": "jwt-token-cleaner-run", "schema": 1, "started_at": at, "ended_at": at,
        "duration_ms": 1000_i64, "trigger": "timer", "request_id": "r", "dry_run": false, "backend": "mongodb",
        "fallback_reason": null, "outcome": outcome, "cleaned_count": 1_i64, "memory_saved_bytes": 1_i64,
        "expired_remaining": 0_i64, "complete": outcome == "success", "backlog": null,
        "error": error.map_or(Bson::Null, |e| Bson::String(e.to_string())), "version": "0.1.0",
    }
}

/// The history is not trusted as written (third review): a record dated 2099 does not turn `failing` into `ok`,
/// foreign documents with newer dates do not push the runs out, and an error text with escape sequences and
/// newlines is printed escaped.
#[tokio::test]
async fn a_hostile_history_is_read_with_care() {
    let db = TestDb::new().await;
    let env = db.env(&[]);
    runs(&db).insert_one(run_record(3, "success", None)).await.unwrap();
    runs(&db).insert_one(run_record(-(73 * 365 * 24), "success", None)).await.unwrap();
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (2, Some("failing")), "{status}");
    let reasons = status["reasons"].to_string();
    assert!(reasons.contains("1 run record(s) dated more than 5 minutes in the future were set aside"), "{reasons}");

    // 60 foreign documents, newer than every run: the runs are still read.
    let foreign: Vec<Document> =
        (0..60).map(|i| doc! { "started_at": DateTime::from_millis(Utc::now().timestamp_millis() - i) }).collect();
    runs(&db).insert_many(foreign).await.unwrap();
    runs(&db).insert_one(run_record(1, "error", Some("boom\u{1b}[2J\nforged line"))).await.unwrap();
    let (_, status) = status_json(&env).await;
    assert_ne!(status["verdict"], "never_ran", "{status}");
    assert_eq!(status["last_run"]["outcome"], "error", "{status}");
    let out = cli(&env, &["status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}') && !text.contains("\nforged line"), "{text}");
    assert!(text.contains("boom\\u{1b}[2J\\nforged line"), "{text}");
}

/// Records that end in 9999, or before they start, are set aside, and age is judged by a clamped end; records
/// dated a few minutes ahead cannot push the real runs out of what is read (#39 L1).
#[tokio::test]
async fn status_sets_aside_records_that_end_in_the_future_or_before_they_start() {
    let db = TestDb::new().await;
    let env = db.env(&[]);
    runs(&db).insert_one(run_record(3, "success", None)).await.unwrap();
    let mut forever = run_record(0, "success", None);
    forever.insert("ended_at", DateTime::parse_rfc3339_str("9999-01-01T00:00:00Z").unwrap());
    let mut backwards = run_record(0, "success", None);
    backwards.insert("ended_at", DateTime::from_millis(Utc::now().timestamp_millis() - 4 * 3_600_000));
    runs(&db).insert_many([forever, backwards]).await.unwrap();
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (2, Some("failing")), "{status}");
    let reasons = status["reasons"].to_string();
    assert!(
        reasons.contains("2 run record(s) that end in the future or before they start were set aside"),
        "{reasons}"
    );

    // 50 failed records dated four minutes ahead, within the skew allowed: the real success is still read.
    let db = TestDb::new().await;
    let env = db.env(&[]);
    runs(&db).insert_one(run_record(0, "success", None)).await.unwrap();
    let ahead: Vec<Document> = (0..50).map(|_| run_record(-1, "error", Some("boom"))).collect();
    let ahead: Vec<Document> = ahead
        .into_iter()
        .map(|mut r| {
            let at = DateTime::from_millis(Utc::now().timestamp_millis() + 4 * 60_000);
            r.insert("started_at", at);
            r.insert("ended_at", at);
            r
        })
        .collect();
    runs(&db).insert_many(ahead).await.unwrap();
    let (_, status) = status_json(&env).await;
    assert_eq!(status["last_success"]["outcome"], "success", "the real run is read: {status}");
}

/// Records padded in the fields `status` reads (a 15 MiB `error` each) are not read at all: counted, set aside,
/// and the process stays small (#39 L2; before: 20 such records took `status --json` to 967 MB).
#[tokio::test]
async fn status_sets_aside_oversized_records() {
    let db = TestDb::new().await;
    let big = "x".repeat(15 * 1024 * 1024);
    for i in 0..4 {
        runs(&db).insert_one(run_record(i, "error", Some(&big))).await.unwrap();
    }
    runs(&db).insert_one(run_record(1, "success", None)).await.unwrap();
    let env = db.env(&[]);
    let (out, peak) =
        tokio::task::spawn_blocking(move || run_with_peak_rss(&env, &["status", "--json"])).await.expect("join");
    assert!(out.len() < 1024 * 1024, "{} bytes printed", out.len());
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"));
    assert_eq!(status["verdict"], "ok", "{status}");
    assert!(status["reasons"].to_string().contains("4 run record(s) over 256 KiB were set aside"), "{status}");
    // Read whole, 4 records of 15 MiB are 60 MB; the binary alone takes about 10 MB.
    assert!(peak < 32 * 1024 * 1024, "peak RSS {} MB", peak / 1024 / 1024);
}

/// Run records with a 2 MB field besides theirs: `status` reads only the fields it needs (before, 50 such records
/// took `status --json` to a peak of 130 MB through the direct connection; FC's instance has 128 MB).
#[tokio::test]
async fn status_reads_only_the_fields_it_needs() {
    let db = TestDb::new().await;
    let big = "x".repeat(2 * 1024 * 1024);
    for i in 0..20 {
        let mut record = run_record(i, "success", None);
        record.insert("padding", big.as_str());
        runs(&db).insert_one(record).await.unwrap();
    }
    let env = db.env(&[]);
    let (out, peak) =
        tokio::task::spawn_blocking(move || run_with_peak_rss(&env, &["status", "--json"])).await.expect("join");
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"));
    assert_eq!(status["verdict"], "ok", "{status}");
    // 20 records of 2 MB are 40 MB: read whole, the peak is far above this; the binary alone takes about 10 MB.
    assert!(peak < 32 * 1024 * 1024, "peak RSS {} MB", peak / 1024 / 1024);
}

#[tokio::test]
async fn the_chart_is_valid_svg_with_one_point_per_run_and_failed_runs_marked() {
    let db = TestDb::new().await;
    seed(&db, 5).await;
    let good = TestApp::spawn(&db.settings(&[])).await;
    for _ in 0..3 {
        assert_eq!(good.invoke("").await.status, 200);
    }
    // A failed run, recorded: the HTTP API alone, claiming a deletedCount nobody deleted (a contract failure).
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(jtc_test_support::data_api::Fault::DeletedCountLie);
    seed(&db, 5).await;
    let mut env = db.env(&[("MONGODB_API_URL", &api.url)]);
    env.remove("DB_URI");
    let bad = TestApp::spawn(&settings_from(env)).await;
    let failed = bad.invoke("").await;
    assert_eq!(failed.status, 500, "{}", failed.json);

    let dir = TempDir::new("jtc-chart");
    let path = dir.join("runs.svg");
    let out = cli(&db.env(&[]), &["status", "--chart", path.to_str().unwrap()]).await;
    assert!(out.status.code().is_some(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&path).expect("the chart");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..200.min(svg.len())]);
    let recorded = records(&db).await.len();
    assert_eq!(svg.matches("<circle").count(), recorded, "one point per run");
    let circles: Vec<&str> = svg.split("<circle").skip(1).filter_map(|c| c.split('>').next()).collect();
    let red = circles.iter().filter(|c| c.contains("#FF0000")).count();
    assert_eq!((recorded, red), (4, 1), "the failed run is red");
}

#[tokio::test]
async fn the_status_invoke_answers_the_status_and_deletes_nothing() {
    let db = TestDb::new().await;
    seed(&db, 7).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.invoke(r#"{"status": true}"#).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (200, Some("200")), "{}", answer.json);
    assert_eq!(answer.json["status"], "success");
    let data = &answer.json["data"];
    assert_eq!(data["verdict"], "never_ran");
    assert_eq!(data["backlog"]["expired"], 7);
    assert_eq!(db.count().await, 12, "nothing deleted");
    assert!(records(&db).await.is_empty(), "a status is not a run");
    let timer = r#"{"triggerName":"t","payload":"{\"status\": true}"}"#;
    assert_eq!(app.invoke(timer).await.json["data"]["verdict"], "never_ran");
    assert_eq!(db.count().await, 12);
}

/// A server that records the path of every request and answers 200 (or never answers, with `hang`).
async fn recorder(hang: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let router = Router::new().fallback(move |uri: Uri| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push(uri.path().to_string());
            if hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            "OK"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/ping/secret-check-uuid-1234", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

#[tokio::test]
async fn the_heartbeat_pings_start_then_success_or_fail_in_order() {
    let db = TestDb::new().await;
    seed(&db, 4).await;
    let (url, seen) = recorder(false).await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_HEARTBEAT_URL", &url)])).await;
    assert_eq!(app.invoke("").await.status, 200);
    assert_eq!(*seen.lock().unwrap(), ["/ping/secret-check-uuid-1234/start", "/ping/secret-check-uuid-1234"]);

    // Dry runs keep nothing clean: no ping.
    assert_eq!(app.invoke(r#"{"dry_run": true}"#).await.status, 200);
    assert_eq!(seen.lock().unwrap().len(), 2);

    seen.lock().unwrap().clear();
    let env = db.env(&[("CLEANUP_HEARTBEAT_URL", &url), ("DB_URI", &dead_db_uri()), ("DB_TIMEOUT_SECONDS", "1")]);
    let failing = TestApp::spawn(&settings_from(env)).await;
    let answer = failing.invoke("").await;
    assert_eq!(answer.status, 503, "{}", answer.json);
    assert_eq!(*seen.lock().unwrap(), ["/ping/secret-check-uuid-1234/start", "/ping/secret-check-uuid-1234/fail"]);
    assert!(!answer.json.to_string().contains("secret-check-uuid"), "the URL is a secret");

    // Nor does it reach a log line, at debug level.
    let (url, _) = recorder(false).await;
    seed(&db, 2).await;
    let out = cli(&db.env(&[("CLEANUP_HEARTBEAT_URL", &url), ("RUST_LOG", "debug")]), &["sweep"]).await;
    assert!(out.status.success());
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!printed.contains("secret-check-uuid"), "{printed}");
}

#[tokio::test]
async fn a_heartbeat_that_hangs_or_is_down_neither_fails_nor_holds_the_sweep() {
    let db = TestDb::new().await;
    let (hanging, _) = recorder(true).await;
    let down = dead_db_uri().replace("mongodb://", "http://").replace("/?directConnection=true", "/ping/x");
    for url in [hanging, down] {
        seed(&db, 4).await;
        let app = TestApp::spawn(&db.settings(&[("CLEANUP_HEARTBEAT_URL", &url)])).await;
        let started = Instant::now();
        let answer = app.invoke("").await;
        assert_eq!(answer.status, 200, "{}", answer.json);
        assert_eq!(answer.json["data"]["cleaned_count"], 4);
        // The start ping runs beside the sweep; at most its 5 s, then the end ping's 5 s.
        assert!(started.elapsed() < Duration::from_secs(20), "{url}: {:?}", started.elapsed());
    }
}

/// Alert endpoints that accept and never answer, and a Data API that does the same: the answer still comes within
/// the budget plus the call margin (5 s), because the history write and the alerts run side by side and end at the
/// run's deadline. Third review: 15 s for a 26 ms sweep (start ping, end ping and push, 5 s each, one after
/// another), and 22 s on a 2 s budget with the hanging Data API. The slack over 1 + 5 s is for a slow machine.
#[tokio::test]
async fn hanging_alerts_and_a_hanging_api_answer_within_the_budget_and_the_margin() {
    let db = TestDb::new().await;
    seed(&db, 4).await;
    let (hanging, seen) = recorder(true).await;
    let pushgateway = hanging.replace("/ping/secret-check-uuid-1234", "");
    let alerts = [("CLEANUP_HEARTBEAT_URL", hanging.as_str()), ("CLEANUP_PUSHGATEWAY_URL", pushgateway.as_str())];
    let budget = [("CLEANUP_TIME_BUDGET_SECONDS", "1")];
    let app = TestApp::spawn(&db.settings(&[alerts[0], alerts[1], budget[0]])).await;
    let started = Instant::now();
    let answer = app.invoke("").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], 4);
    assert!(took < Duration::from_secs(9), "answered after {took:?}");
    assert!(seen.lock().unwrap().iter().any(|path| path.ends_with("/start")), "the start was sent");

    // The Data API hangs too, with no database to fall back to: the run fails, and says so in time.
    let mut env = db.env(&[alerts[0], alerts[1], budget[0], ("MONGODB_API_URL", pushgateway.as_str())]);
    env.remove("DB_URI");
    let app = TestApp::spawn(&settings_from(env)).await;
    let started = Instant::now();
    let answer = app.invoke("").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503, "{}", answer.json);
    assert!(took < Duration::from_secs(9), "answered after {took:?}");
}

/// The value of `metric` with `job="jwt-token-cleaner"` in the Pushgateway's `/metrics`.
async fn pushed(gateway: &str, metric: &str) -> Option<f64> {
    let text = reqwest::get(format!("{gateway}/metrics")).await.ok()?.text().await.ok()?;
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) && line.contains("job=\"jwt-token-cleaner\""))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn the_pushgateway_gets_the_gauges_and_a_failure_leaves_the_last_success() {
    let gateway = std::env::var("PUSHGATEWAY_TEST_URL")
        .unwrap_or_else(|_| panic!("PUSHGATEWAY_TEST_URL is not set: run the suite with scripts/test"));
    let db = TestDb::new().await;
    seed(&db, 6).await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_PUSHGATEWAY_URL", &gateway)])).await;
    assert_eq!(app.invoke("").await.status, 200);
    let success = pushed(&gateway, "jwt_cleaner_last_success_timestamp_seconds").await.expect("last success");
    assert!((success - Utc::now().timestamp() as f64).abs() < 60.0, "{success}");
    assert_eq!(pushed(&gateway, "jwt_cleaner_last_run_cleaned").await, Some(6.0));
    assert_eq!(pushed(&gateway, "jwt_cleaner_last_run_success").await, Some(1.0));
    assert_eq!(pushed(&gateway, "jwt_cleaner_expired_remaining").await, Some(0.0));
    assert_eq!(pushed(&gateway, "jwt_cleaner_oldest_expired_age_seconds").await, Some(0.0));
    assert!(pushed(&gateway, "jwt_cleaner_last_run_duration_seconds").await.is_some());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let env = db.env(&[("CLEANUP_PUSHGATEWAY_URL", &gateway), ("DB_URI", &dead_db_uri()), ("DB_TIMEOUT_SECONDS", "1")]);
    let failing = TestApp::spawn(&settings_from(env)).await;
    assert_eq!(failing.invoke("").await.status, 503);
    assert_eq!(pushed(&gateway, "jwt_cleaner_last_run_success").await, Some(0.0));
    let last_run = pushed(&gateway, "jwt_cleaner_last_run_timestamp_seconds").await.expect("last run");
    assert!(last_run > success, "the failed run is the last run");
    assert_eq!(
        pushed(&gateway, "jwt_cleaner_last_success_timestamp_seconds").await,
        Some(success),
        "a failed run leaves the last success as it was"
    );

    // With CLEANUP_TARGETS, each target's gauges carry its name (here in this test, which owns the job's gauges).
    seed(&db, 3).await;
    let (api, targets) = failing_resets(&db).await;
    let env =
        [("CLEANUP_PUSHGATEWAY_URL", gateway.as_str()), ("CLEANUP_TARGETS", &targets), ("MONGODB_API_URL", &api.url)];
    let mut settings = db.settings(&env);
    settings.db = None;
    let answer = TestApp::spawn(&settings).await.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let target = |name: &'static str, metric: &'static str| {
        let gateway = gateway.clone();
        async move {
            let text = reqwest::get(format!("{gateway}/metrics")).await.ok()?.text().await.ok()?;
            text.lines()
                .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&format!("target=\"{name}\"")))
                .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        }
    };
    assert_eq!(target("auth", "jwt_cleaner_target_last_run_success").await, Some(1.0));
    assert_eq!(target("resets", "jwt_cleaner_target_last_run_success").await, Some(0.0));
    assert_eq!(target("auth", "jwt_cleaner_target_last_run_cleaned").await, Some(3.0));
}

/// Two targets on `db` through a test Data API whose `password_resets` collection fails: (the API, the targets).
async fn failing_resets(db: &TestDb) -> (DataApi, String) {
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(jtc_test_support::data_api::Fault::FailCollection("password_resets"));
    let targets =
        r#"[{"name": "auth", "collection": "jwt_blacklist"}, {"name": "resets", "collection": "password_resets"}]"#;
    (api, targets.to_string())
}

/// One failing target in an otherwise working run pings `/fail`, and the record names it.
#[tokio::test]
async fn a_failing_target_pings_fail_and_its_section_is_recorded() {
    let db = TestDb::new().await;
    seed(&db, 4).await;
    let (url, seen) = recorder(false).await;
    let (api, targets) = failing_resets(&db).await;
    let env = [("CLEANUP_HEARTBEAT_URL", url.as_str()), ("CLEANUP_TARGETS", &targets), ("MONGODB_API_URL", &api.url)];
    let mut settings = db.settings(&env);
    settings.db = None;
    let answer = TestApp::spawn(&settings).await.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let pings = seen.lock().unwrap().clone();
    assert_eq!(pings.last().map(String::as_str), Some("/ping/secret-check-uuid-1234/fail"), "{pings:?}");
    let runs = records(&db).await;
    let targets = runs[0].get_array("targets").expect("the record's targets");
    let resets = targets.iter().filter_map(Bson::as_document).find(|t| t.get_str("name") == Ok("resets")).unwrap();
    assert!(resets.get_str("error").is_ok_and(|e| e.contains("injected failure")), "{resets}");
    let auth = targets.iter().filter_map(Bson::as_document).find(|t| t.get_str("name") == Ok("auth")).unwrap();
    assert_eq!(auth.get("error"), Some(&Bson::Null));
    assert_eq!(runs[0].get_str("outcome"), Ok("partial"));
}

#[tokio::test]
async fn bad_monitoring_settings_stop_before_anything_is_touched() {
    let db = TestDb::new().await;
    seed(&db, 3).await;
    for (name, value) in [
        ("CLEANUP_HISTORY_COLLECTION", "runs$bad"),
        ("CLEANUP_HEARTBEAT_URL", "ftp://hc.example/x"),
        ("CLEANUP_PUSHGATEWAY_URL", "not a url"),
        ("CLEANUP_HISTORY_DAYS", "0"),
    ] {
        let out = cli(&db.env(&[(name, value)]), &["sweep"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    for (bad, says) in [
        ("0", "the duration must be positive"),
        ("0h", "the duration must be positive"),
        ("-1h", "unexpected argument '-1' found"),
        ("soon", "\"soon\" is not a duration like 90s, 30m, 2h or 1d"),
    ] {
        let out = cli(&db.env(&[]), &["status", "--max-age", bad]).await;
        assert_eq!(out.status.code(), Some(2), "--max-age {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "--max-age {bad}: {stderr}");
    }
    assert_eq!(db.count().await, 8, "nothing touched");
    // An empty collection name turns the history off: a sweep records nothing, and status says so.
    let env = db.env(&[("CLEANUP_HISTORY_COLLECTION", "")]);
    assert!(cli(&env, &["sweep"]).await.status.success());
    assert!(records(&db).await.is_empty());
    let (code, status) = status_json(&env).await;
    assert_eq!(code, 3);
    assert!(status["reasons"].to_string().contains("the run history is off"), "{status}");
}

/// `status` pinned through the binary: three failed runs in a row fail it (a failure among successes does not);
/// `--max-backlog-age` turns an old expired entry into `behind` (exit 1).
#[tokio::test]
async fn status_verdicts_through_the_binary() {
    let db = TestDb::new().await;
    let env = db.env(&[]);
    // Newest first: error, success, error, error (the last success 0 h ago, within --max-age): not failing.
    for (hours, outcome) in [(3, "error"), (2, "error"), (1, "success"), (0, "error")] {
        runs(&db).insert_one(run_record(hours, outcome, (outcome == "error").then_some("boom"))).await.unwrap();
    }
    let (code, status) = status_json(&env).await;
    assert_eq!((code, status["verdict"].as_str()), (0, Some("ok")), "{status}");
    // Two more failures: the last three all failed, although the last success is within --max-age.
    runs(&db).delete_many(doc! {}).await.unwrap();
    for (hours, outcome) in [(1, "success"), (0, "error"), (0, "error"), (0, "error")] {
        runs(&db).insert_one(run_record(hours, outcome, (outcome == "error").then_some("boom"))).await.unwrap();
    }
    let out = cli(&env, &["status", "--json", "--max-age", "1d"]).await;
    let status: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((out.status.code(), status["verdict"].as_str()), (Some(2), Some("failing")), "{status}");
    assert!(status["reasons"].to_string().contains("the last 3 run(s) all failed: boom"), "{status}");

    // A recent success, and an entry that expired 3 h ago: ok by default (24 h), behind with --max-backlog-age 1h.
    runs(&db).delete_many(doc! {}).await.unwrap();
    runs(&db).insert_one(run_record(0, "success", None)).await.unwrap();
    let expired = DateTime::from_millis(Utc::now().timestamp_millis() - 3 * 3_600_000);
    db.insert(vec![doc! { "jti": "old", "expires_at": expired }]).await;
    let out = cli(&env, &["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = cli(&env, &["status", "--json", "--max-backlog-age", "1h"]).await;
    let status: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((out.status.code(), status["verdict"].as_str()), (Some(1), Some("behind")), "{status}");
    assert!(status["reasons"].to_string().contains("the oldest expired entry expired 3.0 h ago"), "{status}");
}

/// More expired entries than the backlog's count limit: reported as "at least" the limit.
#[tokio::test]
async fn the_backlog_count_stops_at_its_limit_and_says_at_least() {
    let db = TestDb::new().await;
    let limit = jwt_token_cleaner::sweep::backlog::BACKLOG_COUNT_LIMIT as i64;
    let now = Utc::now().timestamp_millis();
    let docs: Vec<Document> = (0..limit + 5)
        .map(|i| doc! { "jti": format!("e{i}"), "expires_at": DateTime::from_millis(now - 3_600_000 - i) })
        .collect();
    db.insert(docs).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let data = app.invoke(r#"{"status": true}"#).await.json["data"].clone();
    assert_eq!(data["backlog"]["expired"], limit, "{data}");
    assert_eq!(data["backlog"]["expired_at_least"], true, "{data}");
}

/// `create-index` creates the run history's TTL index too, kept `CLEANUP_HISTORY_DAYS`.
#[tokio::test]
async fn create_index_creates_the_historys_ttl_index() {
    use futures_util::TryStreamExt;
    let db = TestDb::new().await;
    let out = cli(&db.env(&[("CLEANUP_HISTORY_DAYS", "12")]), &["create-index"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let indexes: Vec<mongodb::IndexModel> = runs(&db).list_indexes().await.unwrap().try_collect().await.unwrap();
    let ttl = indexes
        .iter()
        .find(|i| i.keys == doc! { "started_at": 1 })
        .and_then(|i| i.options.as_ref())
        .and_then(|o| o.expire_after);
    assert_eq!(ttl, Some(Duration::from_secs(12 * 86_400)), "{indexes:?}");
}
