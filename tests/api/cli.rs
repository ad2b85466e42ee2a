//! The real binary: `sweep` (stdout is the report alone), `serve` (logs, request ids, SIGTERM), `healthcheck`,
//! configuration errors and `.env` loading.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{doc, DateTime};
use serde_json::Value;

use crate::helpers::{dead_db_uri, free_port, stop, wait_healthy, CleanerEnv, TempDir, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_jwt-token-cleaner");

/// A command with a clean environment (no inherited DB_* or RUST_LOG) in an empty working directory.
fn command(env: &HashMap<String, String>, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir).envs(env);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// An empty directory of its own (no `.env` files), removed when dropped.
fn temp_dir() -> TempDir {
    TempDir::new("jtc-cli")
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run binary")
}

#[tokio::test]
async fn sweep_prints_only_the_report_on_stdout() {
    let db = TestDb::new().await;
    let old = DateTime::from_millis(Utc::now().timestamp_millis() - 3_600_000);
    db.insert((0..7).map(|i| doc! { "jti": format!("e{i}"), "expires_at": old }).collect()).await;
    let dir = temp_dir();
    let env = db.env(&[("RUST_LOG", "debug")]);

    let out = run(command(&env, &dir).args(["sweep", "--dry-run"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(report["data"]["would_clean_count"], 7);
    assert!(!out.stderr.is_empty(), "logs go to stderr");
    assert_eq!(db.count().await, 7);

    let out = run(command(&env, &dir).arg("sweep"));
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(report["status"], "success");
    assert_eq!(report["data"]["cleaned_count"], 7);
    assert!(report["data"]["request_id"].as_str().unwrap().starts_with("cli-"));
    assert_eq!(db.count().await, 0);
}

#[test]
fn sweep_with_the_database_down_exits_1_with_the_error_json() {
    let env: HashMap<String, String> =
        [("DB_URI", dead_db_uri()), ("DB_NAME", "x".into()), ("DB_TIMEOUT_SECONDS", "1".into())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let out = run(command(&env, &temp_dir()).arg("sweep"));
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the error JSON");
    assert_eq!(report["status"], "error");
    assert_eq!(report["data"]["success"], false);
    assert_eq!(report["data"]["cleaned_count"], 0);
    // And whoever runs it sees why, on stderr, without debug logging.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sweep failed") && stderr.contains("database unreachable"), "{stderr}");
}

#[test]
fn configuration_errors_name_the_variable() {
    let env: HashMap<String, String> = [("DB_URI".to_string(), "mongodb://h/".to_string())].into();
    let out = run(command(&env, &temp_dir()).arg("sweep"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("DB_NAME is not set").count(), 1, "said once: {stderr}");
    assert!(out.stdout.is_empty());

    let env: HashMap<String, String> = [("DB_URI", "mongodb://h/"), ("DB_NAME", "x"), ("CLEANUP_GRACE_SECONDS", "-1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = run(command(&env, &temp_dir()).arg("serve"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLEANUP_GRACE_SECONDS is invalid"));
}

#[tokio::test]
async fn dotenv_files_are_loaded_and_the_real_environment_wins() {
    let db = TestDb::new().await;
    db.insert(vec![doc! { "jti": "e", "expires_at": DateTime::from_millis(0) }]).await;
    let dir = temp_dir();
    std::fs::write(dir.join(".env"), format!("DB_URI={}\nDB_NAME=wrong_db\n", db.uri)).unwrap();
    std::fs::write(dir.join(".env.local"), format!("DB_NAME={}\n", db.name)).unwrap();
    let out = run(command(&HashMap::new(), &dir).args(["sweep", "--dry-run"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["data"]["would_clean_count"], 1, ".env.local fills what .env leaves unset");

    let env: HashMap<String, String> = [("DB_NAME".to_string(), format!("{}_other", db.name))].into();
    let out = run(command(&env, &dir).args(["sweep", "--dry-run"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["data"]["would_clean_count"], 0, "the real environment wins over the files");
}

#[tokio::test]
async fn serve_logs_request_ids_as_json_lines_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    let port = free_port();
    let env = db.env(&[("PORT", &port.to_string()), ("LOG_FORMAT", "json")]);
    let dir = temp_dir();
    let mut child = command(&env, &dir).arg("serve").stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let collected = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    wait_healthy(port).await;

    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://127.0.0.1:{port}/invoke"))
        .header("x-fc-request-id", "req-abc-123")
        .header("content-type", "application/octet-stream")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-fc-status"], "200");

    let status = stop(&mut child, Duration::from_secs(10)).expect("the server ignored SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let logs = collected.join().unwrap();
    let lines: Vec<Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}"))).collect();
    let message = |l: &Value| l["fields"]["message"].as_str().unwrap_or("").to_string();
    assert!(lines.iter().any(|l| message(l) == "FC Invoke Start RequestId: req-abc-123"), "{logs}");
    assert!(lines.iter().any(|l| message(l) == "FC Invoke End RequestId: req-abc-123"), "{logs}");
    assert!(
        lines.iter().filter(|l| message(l) == "sweep finished").all(|l| l["span"]["request_id"] == "req-abc-123"),
        "{logs}"
    );
}

#[tokio::test]
async fn serve_defaults_to_text_logs_and_fc_custom_listen_port() {
    let port = free_port();
    let env: HashMap<String, String> = [
        ("DB_URI", dead_db_uri()),
        ("DB_NAME", "x".into()),
        ("FC_CUSTOM_LISTEN_PORT", port.to_string()),
        ("PORT", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // No subcommand: serve.
    let dir = temp_dir();
    let mut child = command(&env, &dir).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    wait_healthy(port).await;

    let ok = run(command(&env, &temp_dir()).arg("healthcheck"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stop(&mut child, Duration::from_secs(10)).expect("the server ignored SIGTERM").success());
    let first = BufReader::new(stderr).lines().next().unwrap().unwrap();
    assert!(serde_json::from_str::<Value>(&first).is_err(), "text, not JSON: {first}");
    assert!(first.contains("listening on 0.0.0.0:"), "{first}");

    let down = run(command(&env, &temp_dir()).arg("healthcheck"));
    assert_eq!(down.status.code(), Some(1));
}

#[tokio::test]
async fn a_sweep_without_a_terminal_logs_its_progress_and_keeps_stdout_for_the_report() {
    let db = TestDb::new().await;
    let old = Utc::now().timestamp_millis() - 3_600_000;
    db.insert(
        (0..300)
            .map(|i| doc! { "jti": format!("e{i}"), "expires_at": DateTime::from_millis(old - i * 1000) })
            .collect(),
    )
    .await;
    let env = db.env(&[("CLEANUP_PROGRESS_SECONDS", "0")]);
    let out = run(command(&env, &temp_dir()).args(["sweep", "--batch-size", "50"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the report alone");
    assert_eq!(report["data"]["cleaned_count"], 300);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("sweep progress:")).collect();
    assert!(lines.len() >= 2, "a line per batch with CLEANUP_PROGRESS_SECONDS=0: {stderr}");
    assert!(lines.last().unwrap().contains("sweep progress: 300 entries"), "{stderr}");
}

#[test]
fn help_names_the_required_settings() {
    let out = run(command(&HashMap::new(), &temp_dir()).arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout);
    for variable in ["DB_URI", "MONGODB_API_URL", "DB_NAME"] {
        assert!(help.contains(variable), "{variable} is not in --help: {help}");
    }
}

#[tokio::test]
async fn seed_sample_writes_the_configured_expiry_field_and_the_sweep_takes_the_expired_share() {
    for field in ["exp", "meta.expires"] {
        let db = TestDb::new().await;
        let dir = temp_dir();
        let env = db.env(&[("EXPIRES_FIELD", field)]);
        let out =
            run(command(&env, &dir).args(["seed-sample", "--count", "100", "--expired-percent", "40", "--edge-cases"]));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(db.count().await, 104);
        let out = run(command(&env, &dir).arg("sweep"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("report");
        // The 40 expired samples and the expired numeric edge case; the one inside the grace period stays.
        assert_eq!(report["data"]["cleaned_count"], 41, "{field}: {report}");
        assert_eq!(report["data"]["complete"], true);
        assert_eq!(db.count().await, 63, "{field}");
    }
}
