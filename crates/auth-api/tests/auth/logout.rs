//! Logout: the blacklist entries it writes, and what they revoke.

use mongodb::bson::Bson;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{add_user, claims, entry, settings, AuthApp};
use jtc_test_support::TestDb;

async fn app() -> (TestDb, AuthApp) {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    add_user(&db, "bob", "builder-7").await;
    let app = AuthApp::spawn(&settings(&db, &[])).await;
    (db, app)
}

#[tokio::test]
async fn logout_writes_the_entry_the_cleaner_sweeps_and_revokes_the_token() {
    let (db, app) = app().await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    let before = chrono::Utc::now().timestamp_millis();
    let answer = app.call(Method::POST, "/logout", Some(&access), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json, json!({ "msg": "Successfully logged out", "revoked": ["access"] }));

    let c = claims(&access);
    let jti = c["jti"].as_str().unwrap();
    let doc = entry(&db, jti).await.expect("blacklist entry");
    let mut keys: Vec<&str> = doc.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["_id", "created_at", "expires_at", "jti", "type", "updated_at", "user"]);
    assert_eq!(
        doc.get("expires_at"),
        Some(&Bson::DateTime(mongodb::bson::DateTime::from_millis(c["exp"].as_i64().unwrap() * 1000)))
    );
    assert_eq!(doc.get_str("type").unwrap(), "access");
    assert_eq!(doc.get_str("user").unwrap(), "alice");
    let created = doc.get_datetime("created_at").unwrap().timestamp_millis();
    assert!(created >= before - 1000 && created <= chrono::Utc::now().timestamp_millis() + 1000);
    assert_eq!(db.count().await, 1, "only the access token: no refresh token was given");

    let answer = app.protected(&access).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
    let again = app.call(Method::POST, "/logout", Some(&access), None).await;
    assert_eq!((again.status, again.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
    // The refresh token was not given, so it still works (the reference behaviour).
    assert_eq!(app.call(Method::POST, "/refresh", Some(&refresh), None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_with_the_refresh_token_ends_the_session() {
    let (db, app) = app().await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    let answer = app.call(Method::POST, "/logout", Some(&access), Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!(answer.json, json!({ "msg": "Successfully logged out", "revoked": ["access", "refresh"] }));
    let r = claims(&refresh);
    let doc = entry(&db, r["jti"].as_str().unwrap()).await.expect("refresh entry");
    assert_eq!(doc.get_str("type").unwrap(), "refresh");
    assert_eq!(doc.get_datetime("expires_at").unwrap().timestamp_millis(), r["exp"].as_i64().unwrap() * 1000);
    let answer = app.call(Method::POST, "/refresh", Some(&refresh), None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
}

#[tokio::test]
async fn a_bad_refresh_token_in_the_body_revokes_nothing() {
    let (db, app) = app().await;
    let (access, _) = app.tokens("alice", "wonderland-42").await;
    let (bob_access, bob_refresh) = app.tokens("bob", "builder-7").await;
    let cases = [
        (json!({ "refresh_token": bob_refresh }), "refresh_token: it belongs to another user"),
        (json!({ "refresh_token": bob_access }), "refresh_token: Only refresh tokens are allowed"),
        (json!({ "refresh_token": "garbage" }), "refresh_token: Invalid token: bad header (not a JWT, or no alg)"),
        (json!({ "refresh_token": 12 }), "refresh_token must be a string"),
        (json!("refresh"), "The request body must be a JSON object"),
    ];
    for (body, msg) in cases {
        let answer = app.call(Method::POST, "/logout", Some(&access), Some(body.clone())).await;
        assert_eq!((answer.status, answer.msg()), (StatusCode::BAD_REQUEST, msg), "{body}");
    }
    assert_eq!(db.count().await, 0, "nothing was revoked");
    assert_eq!(app.protected(&access).await.status, StatusCode::OK);
    assert_eq!(app.protected(&bob_access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_needs_a_live_access_token() {
    let (db, app) = app().await;
    let (_, refresh) = app.tokens("alice", "wonderland-42").await;
    let answer = app.call(Method::POST, "/logout", Some(&refresh), None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Only non-refresh tokens are allowed"));
    let answer = app.call(Method::POST, "/logout", None, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Missing Authorization Header"));
    assert_eq!(db.count().await, 0);
}

#[tokio::test]
async fn concurrent_logouts_of_one_token_write_one_entry() {
    let (db, app) = app().await;
    let (access, _) = app.tokens("alice", "wonderland-42").await;
    let calls = (0..8).map(|_| app.call(Method::POST, "/logout", Some(&access), None));
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().any(|a| a.status == StatusCode::OK));
    for a in &answers {
        assert!(a.status == StatusCode::OK || a.status == StatusCode::UNAUTHORIZED, "{} {}", a.status, a.json);
    }
    assert_eq!(db.count().await, 1);
}

#[tokio::test]
async fn a_revoked_access_token_cannot_revoke_anything_else() {
    let (db, app) = app().await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    assert_eq!(app.call(Method::POST, "/logout", Some(&access), None).await.status, StatusCode::OK);
    let answer = app.call(Method::POST, "/logout", Some(&access), Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
    assert_eq!(db.count().await, 1, "the refresh token was not revoked");
    assert_eq!(app.call(Method::POST, "/refresh", Some(&refresh), None).await.status, StatusCode::OK);
}
