//! One run at a time (`crate::lease`): two instances on one database, invoked at the same moment, through each
//! backend; a holder killed with SIGKILL mid-run; skipped runs in the history and in `status`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{doc, Document};
use serde_json::Value;

use crate::helpers::{cli, expired_and_valid, settings_from, CleanerEnv, TestApp, TestDb};
use jtc_test_support::data_api::DataApi;

/// Far more than a run sweeps in its budget here (batches of 10, each followed by a pause twice its length), so
/// that a run is still sweeping when the other instance asks for the lease.
async fn seed_slow_work(db: &TestDb) {
    let now = Utc::now().timestamp_millis();
    for chunk in expired_and_valid(now, 3_000, 120_000, 10, 5).chunks(5000) {
        db.insert(chunk.to_vec()).await;
    }
}

const SLOW: [(&str, &str); 4] = [
    ("CLEANUP_GRACE_SECONDS", "0"),
    ("CLEANUP_BATCH_SIZE", "10"),
    ("CLEANUP_PAUSE_RATIO", "2"),
    ("CLEANUP_TIME_BUDGET_SECONDS", "6"),
];

fn runs(db: &TestDb) -> mongodb::Collection<Document> {
    db.client.database(&db.name).collection("jwt_cleaner_runs")
}

async fn lease_document(db: &TestDb) -> Option<Document> {
    runs(db).find_one(doc! { "_id": "lease" }).await.expect("find the lease")
}

/// Two instances, one database, invoked at the same moment: exactly one sweeps, the other answers skipped (200,
/// the success envelope, zero counts, the holder and the lease's end), and both are recorded.
async fn two_instances_at_once(through_api: bool) {
    let db = TestDb::new().await;
    seed_slow_work(&db).await;
    let api = DataApi::spawn(&db.uri, None).await;
    let mut env: Vec<(&str, &str)> = SLOW.to_vec();
    if through_api {
        env.push(("MONGODB_API_URL", api.url.as_str()));
    }
    let mut settings = db.settings(&env);
    if through_api {
        settings.db = None;
    }
    let (one, two) = (TestApp::spawn(&settings).await, TestApp::spawn(&settings).await);
    let (a, b) = tokio::join!(one.invoke("{}"), two.invoke("{}"));
    for answer in [&a, &b] {
        assert_eq!(answer.status, 200, "{}", answer.json);
        assert_eq!(answer.json["status"], "success", "{}", answer.json);
    }
    let skipped: Vec<&Value> = [&a.json, &b.json].into_iter().filter(|j| j["data"]["skipped"] == true).collect();
    let swept: Vec<&Value> = [&a.json, &b.json].into_iter().filter(|j| j["data"]["skipped"].is_null()).collect();
    assert_eq!((skipped.len(), swept.len()), (1, 1), "exactly one sweeps: {} / {}", a.json, b.json);
    let (skipped, swept) = (&skipped[0]["data"], &swept[0]["data"]);
    assert!(swept["cleaned_count"].as_u64().unwrap() > 0, "{swept}");
    assert_eq!(skipped["held_by"], swept["request_id"], "{skipped}");
    assert_eq!(skipped["cleaned_count"], 0);
    assert_eq!(skipped["batches"], 0);
    assert_eq!(skipped["complete"], false, "a skipped run proves nothing");
    assert_eq!(skipped["remaining_tokens"], Value::Null);
    let until = chrono::DateTime::parse_from_rfc3339(skipped["lease_until"].as_str().expect("lease_until"));
    let until = until.expect("RFC 3339").with_timezone(&Utc);
    let started = chrono::DateTime::parse_from_rfc3339(swept["timestamp"].as_str().unwrap()).unwrap();
    let held = until - started.with_timezone(&Utc);
    assert!(
        held >= chrono::Duration::seconds(6 + 5 + 30 - 2) && held <= chrono::Duration::seconds(6 + 5 + 30 + 2),
        "the lease lasts the budget, the call margin and the slack: {held}"
    );
    let message = [&a.json, &b.json].into_iter().find(|j| j["data"]["skipped"] == true).unwrap()["message"].clone();
    assert!(message.as_str().unwrap_or_default().starts_with("Skipped: another run ("), "{message}");
    assert_eq!(
        [&a, &b].into_iter().find(|x| x.json["data"]["skipped"] == true).unwrap().fc_status.as_deref(),
        Some("200"),
        "FC must not retry a skipped run"
    );

    // The holder released the lease when it ended; both runs are in the history, the skipped one as such.
    assert_eq!(lease_document(&db).await, None, "released at the end of the run");
    let records: Vec<Document> = {
        use futures_util::TryStreamExt;
        runs(&db).find(doc! { "kind": "jwt-token-cleaner-run" }).await.unwrap().try_collect().await.unwrap()
    };
    let outcomes: Vec<&str> = records.iter().filter_map(|r| r.get_str("outcome").ok()).collect();
    assert_eq!(outcomes.len(), 2, "{records:?}");
    assert!(outcomes.contains(&"skipped"), "{outcomes:?}");
    let skipped_record = records.iter().find(|r| r.get_str("outcome") == Ok("skipped")).unwrap();
    assert_eq!(skipped_record.get_str("held_by").ok(), swept["request_id"].as_str());
    assert_eq!(api.calls() > 0, through_api);
}

#[tokio::test]
async fn two_instances_invoked_at_once_through_the_direct_connection_sweep_once() {
    two_instances_at_once(false).await;
}

#[tokio::test]
async fn two_instances_invoked_at_once_through_the_data_api_sweep_once() {
    two_instances_at_once(true).await;
}

/// A holder killed with SIGKILL mid-run keeps the others out until its lease runs out, then the next run sweeps.
#[tokio::test]
async fn a_holder_killed_mid_run_blocks_the_others_only_until_its_lease_runs_out() {
    let db = TestDb::new().await;
    seed_slow_work(&db).await;
    let env: HashMap<String, String> = db.env(&[SLOW[0], SLOW[1], SLOW[2], ("CLEANUP_TIME_BUDGET_SECONDS", "1")]);
    let mut holder = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"))
        .arg("sweep")
        .env_clear()
        .envs(&env)
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the holder");
    let mut lease = None;
    for _ in 0..600 {
        lease = lease_document(&db).await;
        if lease.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = lease.expect("the holder took the lease");
    holder.kill().expect("SIGKILL the holder");
    holder.wait().expect("reap the holder");
    let holder_id = lease.get_str("holder").expect("holder").to_string();
    let until_ms = lease.get_datetime("until").expect("until").timestamp_millis();
    let until = chrono::DateTime::from_timestamp_millis(until_ms).expect("a date");

    let app = TestApp::spawn(&settings_from(env.clone())).await;
    let answer = app.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["skipped"], true, "the dead holder's lease still stands: {}", answer.json);
    assert_eq!(answer.json["data"]["held_by"], holder_id.as_str());

    // Past the lease's end (its holder's clock is this machine's), the next run takes it over and sweeps.
    let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(500);
    assert!(wait < Duration::from_secs(1 + 5 + 30 + 1), "the lease lasts the budget, the margin and the slack");
    tokio::time::sleep(wait).await;
    let answer = app.invoke(r#"{"time_budget_seconds": 10}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(answer.json["data"]["skipped"].is_null(), "the lease ran out: {}", answer.json);
    assert!(answer.json["data"]["cleaned_count"].as_u64().unwrap() > 0, "{}", answer.json);
}

/// Dry runs and the status invoke never take the lease, and `CLEANUP_LEASE=false` turns it off; `status` counts
/// skipped runs.
#[tokio::test]
async fn dry_runs_status_and_lease_off_never_take_it_and_status_shows_skipped_runs() {
    let db = TestDb::new().await;
    seed_slow_work(&db).await;
    // A lease held by someone else, for a minute.
    let until = mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() + 60_000);
    runs(&db).insert_one(doc! { "_id": "lease", "holder": "elsewhere", "until": until }).await.expect("a lease");
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_GRACE_SECONDS", "0")])).await;

    let dry = app.invoke(r#"{"dry_run": true}"#).await;
    assert_eq!(dry.status, 200, "{}", dry.json);
    assert!(dry.json["data"]["skipped"].is_null() && dry.json["data"]["would_clean_count"].as_u64() > Some(0));
    let status = app.invoke(r#"{"status": true}"#).await;
    assert_eq!(status.status, 200, "{}", status.json);
    let skipped = app.invoke("{}").await;
    assert_eq!(skipped.json["data"]["skipped"], true, "{}", skipped.json);
    assert_eq!(skipped.json["data"]["held_by"], "elsewhere");
    assert_eq!(
        lease_document(&db).await.and_then(|d| d.get_str("holder").ok().map(str::to_string)).as_deref(),
        Some("elsewhere")
    );

    let (code, json) = {
        let out = cli(&db.env(&[]), &["status", "--json"]).await;
        (out.status.code(), serde_json::from_slice::<Value>(&out.stdout).expect("status JSON"))
    };
    assert_eq!(json["outcomes"]["skipped"], 1, "{json}");
    assert_eq!(json["verdict"], "failing", "no run has swept yet: {json}");
    assert_eq!(code, Some(2), "{json}");
    let text = cli(&db.env(&[]), &["status"]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 skipped"), "{}", String::from_utf8_lossy(&text.stdout));

    let off = TestApp::spawn(&db.settings(&[("CLEANUP_GRACE_SECONDS", "0"), ("CLEANUP_LEASE", "false")])).await;
    let swept = off.invoke("{}").await;
    assert!(swept.json["data"]["skipped"].is_null(), "{}", swept.json);
    assert!(swept.json["data"]["cleaned_count"].as_u64() > Some(0), "{}", swept.json);
    assert_eq!(
        lease_document(&db).await.and_then(|d| d.get_str("holder").ok().map(str::to_string)).as_deref(),
        Some("elsewhere"),
        "a run without the lease leaves it alone"
    );
}

/// A lease no real run could have written (#39 M2, L3): each is taken over by the next run, in one compare-and-swap,
/// with a warning naming it; the run sweeps and releases it. `status` names it first.
#[tokio::test]
async fn a_forged_or_malformed_lease_is_taken_over_with_a_warning() {
    let far = mongodb::bson::DateTime::parse_rfc3339_str("9999-01-01T00:00:00Z").unwrap();
    let soon = mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() + 60_000);
    let forged = [
        (doc! { "_id": "lease", "holder": "attacker", "until": far }, "later than any run"),
        (doc! { "_id": "lease", "holder": "attacker", "until": "9999-01-01" }, "not a Date"),
        (doc! { "_id": "lease", "holder": "attacker" }, "no until"),
        (doc! { "_id": "lease", "holder": 7, "until": soon }, "not a request id"),
        (
            doc! { "_id": "lease", "holder": "evil\u{1b}[31m\n2026-12-07 INFO sweep finished cleaned=999999",
            "until": soon },
            "not a request id",
        ),
    ];
    for (through_api, (lease, why)) in [false, true].into_iter().cycle().zip(forged) {
        let db = TestDb::new().await;
        db.insert(expired_and_valid(Utc::now().timestamp_millis(), 30, 3_600_000, 10, 5)).await;
        runs(&db).insert_one(lease.clone()).await.expect("the forged lease");
        let api = DataApi::spawn(&db.uri, None).await;
        let mut settings = db.settings(&[("CLEANUP_GRACE_SECONDS", "0"), ("MONGODB_API_URL", api.url.as_str())]);
        if through_api {
            settings.db = None;
        }

        let status = cli(&db.env(&[]), &["status", "--json"]).await;
        let json: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
        let stale = json["lease"]["stale"].as_str().unwrap_or_else(|| panic!("status names it: {json}"));
        assert!(stale.contains(why), "{lease}: {stale}");
        assert!(!stale.chars().any(|c| c.is_control()), "{stale:?}");
        assert!(json["reasons"].to_string().contains("the lease is stale"), "{json}");

        let answer = TestApp::spawn(&settings).await.invoke("{}").await;
        assert_eq!(answer.status, 200, "{lease}: {}", answer.json);
        assert!(answer.json["data"]["skipped"].is_null(), "{lease}: {}", answer.json);
        assert_eq!(answer.json["data"]["cleaned_count"], 30, "{lease}: {}", answer.json);
        let warnings = answer.json["data"]["warnings"].to_string();
        assert!(warnings.contains("took over a stale lease") && warnings.contains(why), "{lease}: {}", answer.json);
        let texts = answer.json["data"]["warnings"].as_array().unwrap().iter().filter_map(Value::as_str);
        assert!(texts.flat_map(str::chars).all(|c| !c.is_control()), "escaped: {warnings}");
        assert_eq!(lease_document(&db).await, None, "{lease}: released at the end of the run");
    }
}

/// `status` shows a lease a run holds, with its holder and its end.
#[tokio::test]
async fn status_shows_a_held_lease() {
    let db = TestDb::new().await;
    let until = mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() + 60_000);
    runs(&db).insert_one(doc! { "_id": "lease", "holder": "run-1", "token": "t", "until": until }).await.unwrap();
    let json: Value = serde_json::from_slice(&cli(&db.env(&[]), &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(json["lease"]["holder"], "run-1", "{json}");
    let shown = chrono::DateTime::from_timestamp_millis(until.timestamp_millis()).unwrap();
    assert_eq!(json["lease"]["until"].as_str(), Some(shown.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_str()));
    assert!(json["lease"]["stale"].is_null(), "{json}");
    let text = String::from_utf8_lossy(&cli(&db.env(&[]), &["status"]).await.stdout).into_owned();
    assert!(text.contains("lease:         held by run-1 until"), "{text}");
}

/// A lease write the Data API applied but answered too late (#39 M3): the chain repeats it through the direct
/// connection, which finds this run's own lease; the run sweeps and releases it.
#[tokio::test]
async fn a_lease_written_late_through_the_data_api_is_this_runs_own() {
    let db = TestDb::new().await;
    db.insert(expired_and_valid(Utc::now().timestamp_millis(), 30, 3_600_000, 10, 5)).await;
    let api = DataApi::spawn(&db.uri, None).await;
    api.set_fault(jtc_test_support::data_api::Fault::SlowUpdateAnswers(Duration::from_secs(4)));
    let settings = db.settings(&[
        ("CLEANUP_GRACE_SECONDS", "0"),
        ("MONGODB_API_URL", api.url.as_str()),
        ("MONGODB_API_TIMEOUT_SECONDS", "1"),
    ]);
    let answer = TestApp::spawn(&settings).await.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(answer.json["data"]["skipped"].is_null(), "not skipped by its own lease: {}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], 30, "{}", answer.json);
    assert_eq!(lease_document(&db).await, None, "released at the end of the run");
}

/// The lease over the Data API believes only the documented answer of an upsert (#39 L7): a server that ignores
/// `upsert` fails the run as a contract failure, and a refused `updateOne` keeps the server's own message.
#[tokio::test]
async fn the_lease_over_the_data_api_trusts_only_the_documented_answer() {
    use jtc_test_support::data_api::Fault;
    for (fault, expect) in [(Fault::IgnoreUpsert, "upsertedId"), (Fault::RefuseUpdates, "may not run updateOne")] {
        let db = TestDb::new().await;
        db.insert(expired_and_valid(Utc::now().timestamp_millis(), 30, 3_600_000, 10, 5)).await;
        let api = DataApi::spawn(&db.uri, None).await;
        api.set_fault(fault);
        let mut settings = db.settings(&[("CLEANUP_GRACE_SECONDS", "0"), ("MONGODB_API_URL", api.url.as_str())]);
        settings.db = None;
        let answer = TestApp::spawn(&settings).await.invoke("{}").await;
        assert_ne!(answer.status, 200, "{fault:?}: {}", answer.json);
        assert_eq!(answer.json["status"], "error", "{fault:?}: {}", answer.json);
        assert!(answer.json.to_string().contains(expect), "{fault:?}: {}", answer.json);
        assert_eq!(db.count().await, 35, "{fault:?}: nothing swept without the lease");
    }
}
