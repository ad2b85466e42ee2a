//! A running auth API on a database of its own, and its users.

use std::collections::HashMap;

use auth_api::config::AuthSettings;
use auth_api::server::Application;
use auth_api::users::{UserStore, Username};
use jtc_shared::Secret;
use mongodb::bson::{doc, Document};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use jtc_test_support::TestDb;

/// A secret long enough for the API (tests only).
pub const SECRET: &str = "test-only-secret-0123456789abcdef0123456789";

/// The Redis the suite runs against (`REDIS_TEST_URL`, set by `scripts/test`).
pub fn redis_url() -> String {
    std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| {
        panic!("REDIS_TEST_URL is not set: run the suite with scripts/test (it starts redis-server)")
    })
}

/// The environment for an API on `db`, generous rate limits unless `extra` says otherwise.
pub fn env(db: &TestDb, extra: &[(&str, &str)]) -> HashMap<String, String> {
    env_at(&db.uri, &db.name, extra)
}

/// [`env`] for the database `name` on the server at `uri` (a private server).
pub fn env_at(uri: &str, name: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("DB_URI", uri),
        ("DB_NAME", name),
        ("JWT_SECRET_KEY", SECRET),
        ("PORT", "0"),
        ("RATE_LIMIT_LOGIN", "1000/minute"),
        ("RATE_LIMIT_PROTECTED", "1000/minute"),
        ("RATE_LIMIT_REFRESH", "1000/minute"),
        ("RATE_LIMIT_LOGOUT", "1000/minute"),
        ("RATE_LIMIT_LOGIN_FAILURES_PER_USER", "1000/minute"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

pub fn settings(db: &TestDb, extra: &[(&str, &str)]) -> AuthSettings {
    settings_at(&db.uri, &db.name, extra)
}

/// [`settings`] for the database `name` on the server at `uri`.
pub fn settings_at(uri: &str, name: &str, extra: &[(&str, &str)]) -> AuthSettings {
    let env = env_at(uri, name, extra);
    AuthSettings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
}

/// An API on a free port.
pub struct AuthApp {
    pub address: String,
    pub http: reqwest::Client,
}

/// A status and the JSON body (or the text, as a JSON string), with the headers.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Answer {
    pub fn msg(&self) -> &str {
        self.json["msg"].as_str().unwrap_or_else(|| panic!("no msg in {} {}", self.status, self.json))
    }
}

impl AuthApp {
    pub async fn spawn(settings: &AuthSettings) -> Self {
        let app = Application::build(settings).await.expect("build");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self { address, http: reqwest::Client::new() }
    }

    pub async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("request")).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Answer {
        let body = serde_json::json!({ "username": username, "password": password });
        self.call(Method::POST, "/login", None, Some(body)).await
    }

    /// Logs in and returns (access, refresh), asserting success.
    pub async fn tokens(&self, username: &str, password: &str) -> (String, String) {
        let answer = self.login(username, password).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let access = answer.json["access_token"].as_str().expect("access_token").to_string();
        let refresh = answer.json["refresh_token"].as_str().expect("refresh_token").to_string();
        (access, refresh)
    }

    /// Waits until the instance's revocation set is proven current as of now (`/health`'s staleness): every
    /// revocation written before this call, by any process, is then honoured. Without the set: at once.
    pub async fn caught_up(&self) {
        let since = chrono::Utc::now().timestamp_millis();
        let started = std::time::Instant::now();
        loop {
            let health = self.call(Method::GET, "/health", None, None).await.json;
            let revocations = &health["revocations"];
            if revocations["mode"] == "database" {
                return;
            }
            if let Some(staleness) = revocations["staleness_ms"].as_i64() {
                if chrono::Utc::now().timestamp_millis() - staleness > since {
                    return;
                }
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the revocation set never caught up: {health}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn protected(&self, access: &str) -> Answer {
        self.call(Method::GET, "/protected", Some(access), None).await
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, headers, json }
}

/// Adds a user straight through the users store (as `auth-api add-user` does).
pub async fn add_user(db: &TestDb, username: &str, password: &str) {
    add_user_in(&db.client.database(&db.name), username, password).await
}

/// [`add_user`] in `database`.
pub async fn add_user_in(database: &mongodb::Database, username: &str, password: &str) {
    let users = UserStore::new(database.collection("users"), std::time::Duration::ZERO).await.expect("store");
    users.ensure_indexes().await.expect("index");
    users.add(&Username::parse(username).expect("name"), Secret::new(password), false, 1).await.expect("add user");
}

/// The blacklist entry of `jti`, if any.
pub async fn entry(db: &TestDb, jti: &str) -> Option<Document> {
    db.blacklist().find_one(doc! { "jti": jti }).await.expect("find")
}

/// The claims of a token, read without checking anything (to learn its jti and exp).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

/// Base64url without padding (to forge tokens).
pub fn encode_base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
