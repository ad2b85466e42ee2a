//! The two binaries' shared story: a user logs out, the token expires, the cleaner's sweep removes exactly that
//! entry and reports it, while a still-valid revoked token stays revoked.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use jtc_test_support::{bson_size, FcApp, TestDb};

use crate::support::{add_user, claims, entry, settings, AuthApp};

/// The cleaner on `db`, in-process on port 0, as FC runs it: `POST /invoke` answers its report.
async fn cleaner(db: &TestDb, extra: &[(&str, &str)]) -> FcApp {
    let env: std::collections::HashMap<&str, &str> =
        [("DB_URI", db.uri.as_str()), ("DB_NAME", db.name.as_str()), ("PORT", "0")]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
    let settings = jwt_token_cleaner::config::Settings::from_lookup(|k| env.get(k).map(|v| v.to_string()))
        .expect("cleaner settings");
    let app = jwt_token_cleaner::server::Application::build(&settings).await.expect("bind");
    FcApp::serve(app.port(), app.run_until_stopped(std::future::pending()))
}

#[tokio::test]
async fn logout_expiry_sweep_and_a_revocation_that_outlives_it() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    add_user(&db, "bob", "builder-7").await;
    // Two instances of the API on one database: one issuing 2-second access tokens, one the default 15 minutes.
    let short = AuthApp::spawn(&settings(&db, &[("JWT_ACCESS_TOKEN_EXPIRES_SECONDS", "2")])).await;
    let long = AuthApp::spawn(&settings(&db, &[])).await;

    let (alice, _) = short.tokens("alice", "wonderland-42").await;
    let (bob, bob_refresh) = long.tokens("bob", "builder-7").await;
    for (app, token) in [(&short, &alice), (&long, &bob)] {
        let answer = app.call(Method::POST, "/logout", Some(token), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let (alice_jti, bob_jti) = (claims(&alice)["jti"].as_str().unwrap().to_string(), claims(&bob)["jti"].to_string());
    let bob_jti = bob_jti.trim_matches('"').to_string();
    let alice_entry = entry(&db, &alice_jti).await.expect("alice's entry");
    assert!(entry(&db, &bob_jti).await.is_some());

    // Before alice's token expires, the cleaner leaves both entries alone.
    let cleaner = cleaner(&db, &[("CLEANUP_GRACE_SECONDS", "0")]).await;
    let answer = cleaner.invoke("{}").await;
    let (status, early) = (answer.status, answer.json);
    assert_eq!(status, 200, "{early}");
    assert_eq!(early["data"]["cleaned_count"], 0);
    assert_eq!(db.count().await, 2);

    // Wait past alice's expiry (to the millisecond the entry records).
    let exp_ms = alice_entry.get_datetime("expires_at").unwrap().timestamp_millis();
    let wait = exp_ms - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 100)).await;
    let answer = short.protected(&alice).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has expired"));

    let answer = cleaner.invoke("{}").await;
    let (status, swept) = (answer.status, answer.json);
    assert_eq!(status, 200, "{swept}");
    let data = &swept["data"];
    assert_eq!(data["cleaned_count"], 1, "{data}");
    assert_eq!(data["remaining_tokens"], 1, "{data}");
    assert_eq!(data["memory_saved_bytes"], bson_size(&alice_entry), "{data}");
    assert_eq!(db.remaining_jtis().await, vec![bob_jti.clone()]);

    // Bob's token is still alive, and still revoked: on both instances.
    for app in [&short, &long] {
        let answer = app.protected(&bob).await;
        assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
    }
    // His refresh token was not part of that logout, so it still works; the session ends when he gives it too.
    let refreshed = long.call(Method::POST, "/refresh", Some(&bob_refresh), None).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let new_access = refreshed.json["access_token"].as_str().unwrap().to_string();
    let out =
        long.call(Method::POST, "/logout", Some(&new_access), Some(json!({ "refresh_token": bob_refresh }))).await;
    assert_eq!(out.json["revoked"], json!(["access", "refresh"]));
    let answer = long.call(Method::POST, "/refresh", Some(&bob_refresh), None).await;
    assert_eq!(answer.msg(), "Token has been revoked");

    // A second sweep finds nothing more to do: the remaining entries are all unexpired.
    let answer = cleaner.invoke("{}").await;
    let (_, again) = (answer.status, answer.json);
    assert_eq!(again["data"]["cleaned_count"], 0);
    assert_eq!(db.count().await, 3);
}
