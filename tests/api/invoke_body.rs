//! Bad invoke bodies: a 400 that names the problem, and nothing deleted.

use crate::helpers::{CleanerEnv, TestApp, TestDb};
use chrono::Utc;
use mongodb::bson::{doc, DateTime};

#[tokio::test]
async fn bad_bodies_are_refused_and_change_nothing() {
    let db = TestDb::new().await;
    let old = DateTime::from_millis(Utc::now().timestamp_millis() - 3_600_000);
    db.insert((0..5).map(|i| doc! { "jti": format!("e{i}"), "expires_at": old }).collect()).await;
    let app = TestApp::spawn(&db.settings(&[])).await;

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "body is not valid JSON"),
        (b"[1]".to_vec(), "must be a JSON object"),
        (br#"{"dry_run": "no"}"#.to_vec(), "dry_run must be true or false"),
        (br#"{"batch_size": 0}"#.to_vec(), "batch_size must be a whole number from 1 to 100000"),
        (br#"{"batch_size": 99999999999999999999999}"#.to_vec(), "batch_size"),
        (br#"{"time_budget_seconds": 0}"#.to_vec(), "time_budget_seconds"),
        (br#"{"collection": "users"}"#.to_vec(), "unknown option \"collection\""),
        (br#"{"database": "admin", "dry_run": false}"#.to_vec(), "unknown option \"database\""),
        (br#"{"triggerName":"t","payload":"{\"batch_size\":-1}"}"#.to_vec(), "batch_size"),
        (b"\xff\xfe\xfd".to_vec(), "not UTF-8"),
        (format!("{}1{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(), "body is not valid JSON"),
        // The last key would win in any JSON parser: a real sweep where the writer may have meant a dry run.
        (br#"{"dry_run": true, "dry_run": false}"#.to_vec(), "duplicate key \"dry_run\""),
        (br#"{"triggerName":"t","payload":"{\"dry_run\":true,\"dry_run\":false}"}"#.to_vec(), "duplicate key"),
        (br#"{"triggerName":"t","triggerName":"u"}"#.to_vec(), "duplicate key \"triggerName\""),
        // A payload that starts like options but does not parse: meant as options, so never a default sweep.
        (br#"{"triggerName":"t","payload":"{\"dry_run\": tru"}"#.to_vec(), "timer payload is not valid JSON"),
        (
            format!(r#"{{"triggerName":"t","payload":" {}1{}"}}"#, r#"{\"a\":"#.repeat(200), "}".repeat(200))
                .into_bytes(),
            "timer payload is not valid JSON",
        ),
    ];
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let answer = app.invoke(body).await;
        assert_eq!((answer.status, answer.fc_status.as_deref()), (400, Some("400")), "{shown}: {}", answer.json);
        let json = &answer.json;
        assert_eq!(json["status"], "error", "{shown}");
        assert_eq!(json["data"]["success"], false);
        assert_eq!(json["data"]["cleaned_count"], 0);
        assert!(json["error"].as_str().unwrap().contains(expected), "{shown}: {json}");
    }
    assert_eq!(db.count().await, 5, "a refused body must delete nothing");
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_reading() {
    let db = TestDb::new().await;
    db.insert(vec![doc! { "jti": "e", "expires_at": DateTime::from_millis(0) }]).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.invoke(vec![b' '; 10 * 1024 * 1024]).await;
    assert_eq!((answer.status, answer.fc_status.as_deref()), (413, Some("413")), "{}", answer.json);
    assert_eq!(answer.json["status"], "error");
    assert_eq!(db.count().await, 1);
}

#[tokio::test]
async fn empty_body_runs_a_default_sweep() {
    let db = TestDb::new().await;
    db.insert(vec![doc! { "jti": "e", "expires_at": DateTime::from_millis(0) }]).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["data"]["cleaned_count"], 1);
    assert_eq!(answer.json["data"]["dry_run"], false);
}
