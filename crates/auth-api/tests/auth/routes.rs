//! Every route and its errors, over real HTTP.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{add_user, claims, encode_base64url, settings, AuthApp, SECRET};
use jtc_test_support::TestDb;

async fn app_with_alice(extra: &[(&str, &str)]) -> (TestDb, AuthApp) {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let app = AuthApp::spawn(&settings(&db, extra)).await;
    (db, app)
}

#[tokio::test]
async fn login_issues_an_access_and_a_refresh_token() {
    let (_db, app) = app_with_alice(&[]).await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    let (a, r) = (claims(&access), claims(&refresh));
    assert_eq!((a["sub"].as_str(), a["type"].as_str()), (Some("alice"), Some("access")));
    assert_eq!((r["sub"].as_str(), r["type"].as_str()), (Some("alice"), Some("refresh")));
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 15 * 60, "default access lifetime");
    assert_eq!(r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(), 7 * 86_400, "default refresh lifetime");
    assert_ne!(a["jti"], r["jti"]);

    let answer = app.protected(&access).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({ "logged_in_as": "alice" }));
}

#[tokio::test]
async fn wrong_credentials_are_401_and_say_nothing_more() {
    let (_db, app) = app_with_alice(&[]).await;
    for (user, password) in [("alice", "wrong"), ("bob", "wonderland-42"), ("alice", ""), ("", "x")] {
        let answer = app.login(user, password).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{user}/{password}");
        assert_eq!(answer.json, json!({ "msg": "Invalid credentials" }));
    }
}

#[tokio::test]
async fn malformed_login_bodies_are_400() {
    let (_db, app) = app_with_alice(&[]).await;
    let cases = [
        (json!({ "username": "alice" }), "Missing username or password"),
        (json!({ "username": "alice", "password": 42 }), "Missing username or password"),
        (json!(["alice", "wonderland-42"]), "The request body must be a JSON object"),
    ];
    for (body, msg) in cases {
        let answer = app.call(Method::POST, "/login", None, Some(body.clone())).await;
        assert_eq!((answer.status, answer.msg()), (StatusCode::BAD_REQUEST, msg), "{body}");
    }
    let post = |body: String, content_type: &'static str| {
        app.http.post(format!("{}/login", app.address)).header("content-type", content_type).body(body).send()
    };
    let response = post("{not json".into(), "application/json").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post("x".repeat(64 * 1024), "application/json").await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn login_needs_a_json_content_type() {
    let (_db, app) = app_with_alice(&[]).await;
    let body = json!({ "username": "alice", "password": "wonderland-42" }).to_string();
    // What a cross-site form or a `text/plain` fetch sends without a CORS preflight: refused, as Flask refuses it.
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None]
    {
        let mut request = app.http.post(format!("{}/login", app.address)).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = crate::support::answer(request.send().await.unwrap()).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}: {}", answer.json);
        assert!(answer.msg().contains("Content-Type was not 'application/json'"), "{}", answer.json);
    }
    for content_type in ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"] {
        let request = app.http.post(format!("{}/login", app.address)).header("content-type", content_type);
        let answer = crate::support::answer(request.body(body.clone()).send().await.unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{content_type}: {}", answer.json);
    }
}

#[tokio::test]
async fn protected_refuses_missing_malformed_and_forged_tokens() {
    let (_db, app) = app_with_alice(&[]).await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;

    let none = app.call(Method::GET, "/protected", None, None).await;
    assert_eq!((none.status, none.msg()), (StatusCode::UNAUTHORIZED, "Missing Authorization Header"));
    assert_eq!(none.headers["www-authenticate"], "Bearer");

    for header in [format!("Basic {access}"), access.clone(), "Bearer ".into(), format!("Bearer {access} extra")] {
        let response =
            app.http.get(format!("{}/protected", app.address)).header("authorization", &header).send().await.unwrap();
        let answer = crate::support::answer(response).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header}");
        assert!(answer.msg().starts_with("Bad Authorization header"), "{header}: {}", answer.msg());
    }

    let garbage = app.protected("not-a-jwt").await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert!(garbage.msg().starts_with("Invalid token"), "{}", garbage.msg());

    let refresh_here = app.protected(&refresh).await;
    assert_eq!(
        (refresh_here.status, refresh_here.msg()),
        (StatusCode::UNAUTHORIZED, "Only non-refresh tokens are allowed")
    );

    // The same claims, signed with another key, with another HMAC, and with no signature at all.
    let c = claims(&access);
    let other_key = jsonwebtoken::encode(&Header::default(), &c, &EncodingKey::from_secret(&[7u8; 32])).unwrap();
    let answer = app.protected(&other_key).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Signature verification failed"));

    let hs512 = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let answer = app.protected(&hs512).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "The specified alg value is not allowed"));

    let unsigned = format!(
        "{}.{}.",
        encode_base64url(br#"{"alg":"none","typ":"JWT"}"#),
        encode_base64url(c.to_string().as_bytes())
    );
    let answer = app.protected(&unsigned).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "The specified alg value is not allowed"));

    // Validly signed, with a critical header extension nobody here understands (RFC 7515 §4.1.11): refused.
    let header = encode_base64url(br#"{"alg":"HS256","typ":"JWT","crit":["exp-ext"],"exp-ext":1}"#);
    let signing_input = format!("{header}.{}", encode_base64url(c.to_string().as_bytes()));
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    let answer = app.protected(&format!("{signing_input}.{signature}")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    assert!(answer.msg().contains("crit"), "{}", answer.json);

    // Our own token with one claim changed keeps its signature, which then fails.
    let mut parts: Vec<String> = access.split('.').map(str::to_string).collect();
    let mut forged = c.clone();
    forged["sub"] = json!("mallory");
    parts[1] = encode_base64url(forged.to_string().as_bytes());
    let answer = app.protected(&parts.join(".")).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Signature verification failed"));
}

#[tokio::test]
async fn an_access_token_expires() {
    let (_db, app) = app_with_alice(&[("JWT_ACCESS_TOKEN_EXPIRES_SECONDS", "1")]).await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    let exp = claims(&access)["exp"].as_i64().unwrap();
    let wait_ms = exp * 1000 - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait_ms.max(0) as u64 + 50)).await;
    let answer = app.protected(&access).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has expired"));

    // The refresh token still gets a new access token, which works.
    let answer = app.call(Method::POST, "/refresh", Some(&refresh), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let fresh_access = answer.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&fresh_access)["fresh"], json!(false));
    assert_eq!(app.protected(&fresh_access).await.json, json!({ "logged_in_as": "alice" }));
}

#[tokio::test]
async fn refresh_takes_only_refresh_tokens() {
    let (_db, app) = app_with_alice(&[]).await;
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    let answer = app.call(Method::POST, "/refresh", Some(&access), None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Only refresh tokens are allowed"));
    let answer = app.call(Method::POST, "/refresh", None, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Missing Authorization Header"));
    let answer = app.call(Method::POST, "/refresh", Some(&refresh), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let new_access = answer.json["access_token"].as_str().unwrap();
    assert_eq!(claims(new_access)["sub"], json!("alice"));
    assert_ne!(claims(new_access)["jti"], claims(&access)["jti"]);
}

#[tokio::test]
async fn a_database_that_does_not_answer_fails_closed() {
    let db = TestDb::new().await;
    let mut s = settings(&db, &[("DB_TIMEOUT_SECONDS", "1")]);
    // Tokens from a healthy instance with the same key...
    add_user(&db, "alice", "wonderland-42").await;
    let healthy = AuthApp::spawn(&s).await;
    let (access, refresh) = healthy.tokens("alice", "wonderland-42").await;
    // ...are refused by an instance whose database is down: no revocation check, no access.
    s.db.uri = jtc_shared::Secret::new(jtc_test_support::dead_db_uri());
    let down = AuthApp::spawn(&s).await;
    let answer = down.protected(&access).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
    let answer = down.call(Method::POST, "/refresh", Some(&refresh), None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let answer = down.login("alice", "wonderland-42").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.call(Method::GET, "/health", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn lookups_are_indexed_on_jti_and_users_on_username() {
    let (db, _app) = app_with_alice(&[]).await;
    use futures_util::TryStreamExt;
    let blacklist: Vec<_> = db.blacklist().list_indexes().await.unwrap().try_collect().await.unwrap();
    let jti = blacklist.iter().find(|i| i.keys.keys().next().map(String::as_str) == Some("jti"));
    let jti = jti.unwrap_or_else(|| panic!("no jti index: {blacklist:?}"));
    assert_eq!(jti.options.as_ref().and_then(|o| o.unique), Some(true));
    // And the server uses it for the lookup the API makes (find by jti, _id only).
    let explain = mongodb::bson::doc! {
        // The revocation check as it is sent: the token's own jti and its user's entry, in one query.
        "explain": {
            "find": "jwt_blacklist",
            "filter": { "jti": { "$in": ["some-jti", "user:alice"] } },
            "projection": { "_id": 0, "jti": 1, "revoked_before": 1 },
        },
        "verbosity": "queryPlanner",
    };
    let plan = db.client.database(&db.name).run_command(explain).await.expect("explain");
    let plan = plan.get_document("queryPlanner").map(|p| p.to_string()).unwrap_or_default();
    assert!(plan.contains("IXSCAN") && plan.contains("jti_unique"), "not an index scan: {plan}");
    // The expiry field is indexed at start too, so the cleaner's sweeps of this blacklist never scan it.
    let blacklist: Vec<_> = db.blacklist().list_indexes().await.unwrap().try_collect().await.unwrap();
    assert!(
        blacklist.iter().any(|i| i.keys == mongodb::bson::doc! { "expires_at": 1 }),
        "no expires_at index: {blacklist:?}"
    );
    let users = db.client.database(&db.name).collection::<mongodb::bson::Document>("users");
    let indexes: Vec<_> = users.list_indexes().await.unwrap().try_collect().await.unwrap();
    assert!(indexes.iter().any(|i| i.keys.keys().next().map(String::as_str) == Some("username")
        && i.options.as_ref().and_then(|o| o.unique) == Some(true)));
}
