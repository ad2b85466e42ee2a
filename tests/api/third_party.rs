//! The cleaner against Data API servers nobody here wrote, from a package registry (`scripts/test-data-api.sh`
//! installs them; the README's "end of life" section states the verdicts). Each runs in front of the test database
//! and is stopped by PID.
//!
//! `mongodb-local-data-api` 1.0.1 (npm) does not speak the documented contract: it parses `application/json`
//! bodies only, so the documented `application/ejson` request reaches it empty. The cleaner must notice on its
//! first call, sweep through `DB_URI` exactly as it would alone, and without `DB_URI` delete nothing and say why.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::helpers::{expired_and_valid, free_port, stop, CleanerEnv, TestApp, TestDb};

const KEY: &str = "third-party-key-4711";

/// The npm server on a free port, in front of the test database, requiring `KEY`.
struct NpmDataApi {
    child: Child,
    url: String,
}

impl NpmDataApi {
    async fn start(db: &TestDb) -> Self {
        let dir = std::env::var("THIRD_PARTY_DATA_API").unwrap_or_else(|_| {
            panic!("THIRD_PARTY_DATA_API is not set: run the suite with scripts/test (it installs the npm server)")
        });
        let node = std::env::var("NODE_BIN").unwrap_or_else(|_| "node".into());
        let port = free_port();
        // bin.js reads ./package.json for its version: it runs from its own directory.
        let child = Command::new(node)
            .arg("bin.js")
            .arg(format!("--apiPort={port}"))
            .arg(format!("--url={}", db.uri))
            .arg(format!("--key={KEY}"))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node bin.js");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        // Up once any request is answered (it has no health route); a minute for a loaded machine.
        while http.post(format!("{url}/action/find")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "the npm Data API never answered on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, url }
    }
}

impl Drop for NpmDataApi {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(10));
    }
}

#[tokio::test]
async fn a_server_that_reads_plain_json_only_is_abandoned_and_the_direct_connection_sweeps_exactly() {
    let db = TestDb::new().await;
    db.insert(expired_and_valid(Utc::now().timestamp_millis(), 40, 120_000, 1000, 7)).await;
    let api = NpmDataApi::start(&db).await;

    // With DB_URI: the API's first call fails, the run falls back and sweeps exactly the expired entries.
    let env = [("MONGODB_API_URL", api.url.as_str()), ("MONGODB_API_KEY", KEY)];
    let answer = TestApp::spawn(&db.settings(&env)).await.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = &answer.json["data"];
    assert_eq!(data["backend"], "http_api+mongodb", "{data}");
    let reason = data["fallback_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("HTTP 400"), "the API's refusal is the reason: {reason}");
    assert!(!reason.contains(KEY), "{reason}");
    assert_eq!(data["cleaned_count"], 40, "{data}");
    assert_eq!(data["remaining_tokens"], 7, "{data}");
    assert_eq!(db.count().await, 7);

    // Without DB_URI: the error JSON, and nothing deleted.
    db.insert(expired_and_valid(Utc::now().timestamp_millis(), 5, 120_000, 1000, 0)).await;
    let mut settings = db.settings(&env);
    settings.db = None;
    let answer = TestApp::spawn(&settings).await.invoke("{}").await;
    assert_eq!(answer.status, 500, "{}", answer.json);
    assert_eq!(answer.json["status"], "error", "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], 0, "{}", answer.json);
    assert_eq!(db.count().await, 12, "nothing was deleted through a server that misreads requests");
}
