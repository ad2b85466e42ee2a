//! Test support: a database of its own per test on the real test server, and the app on port 0.

use std::collections::HashMap;
use std::net::TcpListener;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::server::Application;
use mongodb::bson::{doc, oid::ObjectId, Document};
use mongodb::{Client, Collection};
use serde_json::Value;

/// The server the suite runs against: `MONGODB_TEST_URI` (set by `scripts/test`, or by you for a real MongoDB).
pub fn test_db_uri() -> String {
    std::env::var("MONGODB_TEST_URI").unwrap_or_else(|_| {
        panic!("MONGODB_TEST_URI is not set: run the suite with scripts/test (it starts a local test server)")
    })
}

/// A connection string to a port where nothing listens.
pub fn dead_db_uri() -> String {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9);
    format!("mongodb://127.0.0.1:{port}/?directConnection=true")
}

/// A database of its own on the test server, dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub uri: String,
    pub name: String,
    pub client: Client,
}

impl TestDb {
    pub async fn new() -> Self {
        let uri = test_db_uri();
        let name = format!("jtc_test_{}", &ObjectId::new().to_hex()[12..]);
        let client = Client::with_uri_str(&uri).await.expect("test server URI");
        Self { uri, name, client }
    }

    pub fn blacklist(&self) -> Collection<Document> {
        self.client.database(&self.name).collection("jwt_blacklist")
    }

    /// Environment variables for the app, with `extra` on top.
    pub fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [("DB_URI", self.uri.as_str()), ("DB_NAME", self.name.as_str())]
            .into_iter()
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("PORT".into()).or_insert_with(|| "0".into());
        env
    }

    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        settings_from(self.env(extra))
    }

    /// Inserts documents, giving each an `_id` first so that their BSON size is known before the insert.
    pub async fn insert(&self, docs: Vec<Document>) -> Vec<Document> {
        let docs: Vec<Document> = docs
            .into_iter()
            .map(|mut d| {
                if !d.contains_key("_id") {
                    let mut with_id = doc! { "_id": ObjectId::new() };
                    with_id.extend(std::mem::take(&mut d));
                    d = with_id;
                }
                d
            })
            .collect();
        if !docs.is_empty() {
            self.blacklist().insert_many(docs.clone()).await.expect("insert");
        }
        docs
    }

    /// The `jti`s left in the blacklist, sorted.
    pub async fn remaining_jtis(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let docs: Vec<Document> =
            self.blacklist().find(doc! {}).await.expect("find").try_collect().await.expect("cursor");
        let mut jtis: Vec<String> = docs.iter().map(|d| d.get_str("jti").unwrap_or("?").to_string()).collect();
        jtis.sort();
        jtis
    }

    pub async fn count(&self) -> u64 {
        self.blacklist().count_documents(doc! {}).await.expect("count")
    }

    pub async fn drop_db(self) {
        let _ = self.client.database(&self.name).drop().await;
    }
}

pub fn settings_from(env: HashMap<String, String>) -> Settings {
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
}

/// The exact BSON size of a document, computed here, independently of the server.
pub fn bson_size(doc: &Document) -> u64 {
    mongodb::bson::to_vec(doc).expect("serialize").len() as u64
}

/// A running app on a free port.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub fc_status: Option<String>,
    pub json: Value,
}

impl TestApp {
    pub async fn spawn(settings: &Settings) -> Self {
        let app = Application::build(settings).await.expect("bind");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self { address, http: reqwest::Client::new() }
    }

    pub async fn invoke(&self, body: impl Into<reqwest::Body>) -> Answer {
        self.call(reqwest::Method::POST, "/invoke", body.into(), Some("test-request-1")).await
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: reqwest::Body, id: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.address))
            .header("content-type", "application/octet-stream")
            .body(body);
        if let Some(id) = id {
            request = request.header("x-fc-request-id", id);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let fc_status = response.headers().get("x-fc-status").map(|v| v.to_str().unwrap_or("?").to_string());
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text));
        Answer { status, fc_status, json }
    }
}
