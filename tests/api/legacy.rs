//! Legacy entries (raw token, no expiry), the index pre-flight and `create-index`.

use std::collections::HashMap;
use std::process::Command;

use chrono::Utc;
use futures_util::TryStreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mongodb::bson::{doc, DateTime, Document};
use serde_json::json;

use crate::helpers::{bson_size, settings_from, CleanerEnv, TestApp, TestDb};
use jtc_test_support::data_api::DataApi;

const KEY: &str = "legacy-test-secret";

fn jwt(claims: serde_json::Value, key: &str) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

/// Legacy entries of every kind; returns the one that must go.
async fn seed_legacy(db: &TestDb) -> Document {
    let now = Utc::now().timestamp();
    let docs = db
        .insert(vec![
            doc! { "jti": "legacy-expired", "token": jwt(json!({"exp": now - 3600, "jti": "a"}), KEY) },
            doc! { "jti": "legacy-valid", "token": jwt(json!({"exp": now + 3600, "jti": "b"}), KEY) },
            doc! { "jti": "legacy-in-grace", "token": jwt(json!({"exp": now - 10, "jti": "c"}), KEY) },
            doc! { "jti": "legacy-wrong-key", "token": jwt(json!({"exp": now - 3600}), "another-key") },
            doc! { "jti": "legacy-alg-none", "token": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjEwMDB9." },
            doc! { "jti": "legacy-no-exp", "token": jwt(json!({"sub": "u"}), KEY) },
            doc! { "jti": "legacy-garbage", "token": "not.a.jwt" },
            doc! { "jti": "legacy-string-expiry", "expires_at": "yesterday", "token": "x" },
            doc! { "jti": "legacy-token-not-string", "token": 5 },
        ])
        .await;
    docs.into_iter().find(|d| d.get_str("jti") == Ok("legacy-expired")).unwrap()
}

async fn legacy_run(db: &TestDb, settings: jwt_token_cleaner::config::Settings, backend: &str) {
    let gone = seed_legacy(db).await;
    let app = TestApp::spawn(&settings).await;
    let answer = app.invoke("").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], backend);
    assert_eq!(data["cleaned_count"], 1, "{data}");
    assert_eq!(data["legacy_cleaned"], 1);
    assert_eq!(data["memory_saved_bytes"], bson_size(&gone));
    // wrong key, alg none, no exp, garbage, and the string-expiry entry whose token is junk.
    assert_eq!(data["skipped_unverifiable"], 5, "{data}");
    assert_eq!(data["complete"], true);
    let left = db.remaining_jtis().await;
    assert_eq!(left.len(), 8);
    assert!(!left.contains(&"legacy-expired".to_string()));
}

#[tokio::test]
async fn only_verified_expired_legacy_entries_go() {
    let db = TestDb::new().await;
    legacy_run(&db, db.settings(&[("JWT_SECRET_KEY", KEY)]), "mongodb").await;
}

#[tokio::test]
async fn legacy_entries_through_the_http_api() {
    let db = TestDb::new().await;
    let api = DataApi::spawn(&db.uri, Some("k-legacy")).await;
    let settings = through(&db, Some(&api), &[("JWT_SECRET_KEY", KEY), ("MONGODB_API_KEY", "k-legacy")]);
    legacy_run(&db, settings, "http_api").await;
}

#[tokio::test]
async fn without_a_key_legacy_entries_are_left_alone() {
    let db = TestDb::new().await;
    seed_legacy(&db).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["cleaned_count"], 0);
    assert_eq!(data["skipped_unverifiable"], 0);
    assert_eq!(db.count().await, 9);
}

/// Settings with `extra`, through the documented test Data API alone when `api` is given, else the direct connection.
fn through(db: &TestDb, api: Option<&DataApi>, extra: &[(&str, &str)]) -> jwt_token_cleaner::config::Settings {
    let mut env = db.env(extra);
    if let Some(api) = api {
        env.insert("MONGODB_API_URL".into(), api.url.clone());
        env.remove("DB_URI");
    }
    settings_from(env)
}

/// The legacy entries on a database of their own, and the app with the key and backfill on, through the
/// documented test Data API alone or the direct connection.
async fn backfilling_app(via_api: bool) -> (TestDb, DataApi, TestApp) {
    let db = TestDb::new().await;
    seed_legacy(&db).await;
    let api = DataApi::spawn(&db.uri, None).await;
    let settings = through(&db, via_api.then_some(&api), &[("JWT_SECRET_KEY", KEY), ("BACKFILL_EXPIRES_AT", "true")]);
    let app = TestApp::spawn(&settings).await;
    (db, api, app)
}

#[tokio::test]
async fn backfill_writes_the_expiry_of_verified_valid_entries() {
    for via_api in [false, true] {
        let (db, _api, app) = backfilling_app(via_api).await;
        let data = app.invoke("").await.json["data"].clone();
        assert_eq!(data["backend"], if via_api { "http_api" } else { "mongodb" });
        assert_eq!(data["backfilled"], 2, "valid and in-grace: {data}");
        let backfilled: Vec<Document> =
            db.blacklist().find(doc! { "expires_at": { "$type": "date" } }).await.unwrap().try_collect().await.unwrap();
        let mut jtis: Vec<&str> = backfilled.iter().map(|d| d.get_str("jti").unwrap()).collect();
        jtis.sort();
        assert_eq!(jtis, ["legacy-in-grace", "legacy-valid"]);
        // The in-grace entry now expires through the ordinary sweep once its grace is over; a dry run sees nothing.
        let data = app.invoke(r#"{"dry_run": true}"#).await.json["data"].clone();
        assert_eq!(data["would_clean_count"], 0);
    }
}

#[tokio::test]
async fn dry_run_counts_legacy_entries_without_deleting_or_writing() {
    for via_api in [false, true] {
        let (db, _api, app) = backfilling_app(via_api).await;
        let data = app.invoke(r#"{"dry_run": true}"#).await.json["data"].clone();
        assert_eq!(data["backend"], if via_api { "http_api" } else { "mongodb" });
        assert_eq!(data["would_clean_count"], 1);
        assert_eq!(data["backfilled"], 0);
        assert_eq!(db.count().await, 9);
    }
}

#[tokio::test]
async fn legacy_scan_limit_bounds_the_run() {
    let db = TestDb::new().await;
    let now = Utc::now().timestamp();
    db.insert(
        (0..30)
            .map(|i| doc! { "jti": format!("l{i}"), "token": jwt(json!({"exp": now - 3600, "i": i}), KEY) })
            .collect(),
    )
    .await;
    let app = TestApp::spawn(&db.settings(&[("JWT_SECRET_KEY", KEY), ("LEGACY_SCAN_LIMIT", "10")])).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["legacy_cleaned"], 10);
    assert_eq!(data["complete"], false);
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["legacy_cleaned"], 10);
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["legacy_cleaned"], 10);
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["legacy_cleaned"], 0);
    assert_eq!(data["complete"], true);
    assert_eq!(db.count().await, 0);
}

#[tokio::test]
async fn a_missing_index_is_a_warning_and_create_index_fixes_it() {
    let db = TestDb::new().await;
    db.insert(vec![doc! { "jti": "e", "expires_at": DateTime::from_millis(0) }]).await;
    let app = TestApp::spawn(&db.settings(&[])).await;
    let data = app.invoke(r#"{"dry_run": true}"#).await.json["data"].clone();
    let warnings = data["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{data}");
    assert!(warnings[0].as_str().unwrap().starts_with("no index on expires_at"), "{data}");

    let env: HashMap<String, String> = db.env(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"))
        .env_clear()
        .envs(&env)
        .current_dir(std::env::temp_dir())
        .arg("create-index")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = app.invoke(r#"{"dry_run": true}"#).await.json["data"].clone();
    assert_eq!(data["warnings"], json!([]), "{data}");
}

#[tokio::test]
async fn create_index_with_ttl_makes_a_ttl_index_even_over_a_plain_one() {
    let db = TestDb::new().await;
    let create = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"))
            .env_clear()
            .envs(db.env(&[]))
            .current_dir(std::env::temp_dir())
            .arg("create-index")
            .args(args)
            .output()
            .unwrap()
    };
    // A plain index first, as an earlier `create-index` made it; then --ttl converts it rather than failing.
    let plain = create(&[]);
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let out = create(&["--ttl", "3600"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let indexes: Vec<mongodb::IndexModel> = db.blacklist().list_indexes().await.unwrap().try_collect().await.unwrap();
    let ttl = indexes
        .iter()
        .find(|i| i.keys == doc! { "expires_at": 1 })
        .and_then(|i| i.options.as_ref())
        .and_then(|o| o.expire_after);
    assert_eq!(ttl, Some(std::time::Duration::from_secs(3600)));
}
