//! The cleaner suite's support: its environment on a test database, and the app on port 0. What every suite needs
//! (the database per test, ports, health, stopping by signal) is in `jtc-test-support`.

use std::collections::HashMap;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::server::Application;
use serde_json::Value;

pub use jtc_test_support::{bson_size, dead_db_uri, free_port, stop, wait_healthy, TempDir, TestDb};

/// The cleaner's environment on a test database.
pub trait CleanerEnv {
    /// `DB_URI`, `DB_NAME` and `PORT=0`, with `extra` on top.
    fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String>;

    /// [`CleanerEnv::env`], parsed.
    fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        settings_from(self.env(extra))
    }
}

impl CleanerEnv for TestDb {
    fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [("DB_URI", self.uri.as_str()), ("DB_NAME", self.name.as_str())]
            .into_iter()
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("PORT".into()).or_insert_with(|| "0".into());
        env
    }
}

pub fn settings_from(env: HashMap<String, String>) -> Settings {
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
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

/// Runs the binary with `env` and `args`; returns its stdout and its own peak resident set, in bytes.
///
/// Measured by a small Python parent (`RUSAGE_CHILDREN` of a process that has no other child), not by wait4 from
/// here: Linux records the high-water mark of the memory a process had before `exec` into its `ru_maxrss`, and a
/// child spawned from this test process starts with the whole test process's memory (it is spawned with vfork).
/// Under a full suite that is 150-200 MB whatever the binary does: the reason the 64 MB test failed on a busy run
/// and passed alone. Python's own ~10 MB is the floor of the reading.
pub fn run_with_peak_rss(env: &HashMap<String, String>, args: &[&str]) -> (String, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n\
        sys.stdout.buffer.write(p.stdout)\n\
        sys.stderr.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n";
    let dir = TempDir::new("jtc-rss");
    let mut command = std::process::Command::new("python3");
    command.args(["-c", MEASURE, env!("CARGO_BIN_EXE_jwt-token-cleaner")]).args(args);
    command.env_clear().envs(env).current_dir(&*dir).stdin(std::process::Stdio::null());
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    let out = command.output().expect("run python3 and the binary");
    let kib: u64 = String::from_utf8_lossy(&out.stderr).trim().parse().expect("the peak, in KiB");
    (String::from_utf8_lossy(&out.stdout).into_owned(), kib * 1024)
}
