//! Secrets: with known values for every secret, at debug level, through success, fallback and failure paths,
//! none of them appears in any log line or any response.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{doc, DateTime};

use crate::helpers::{free_port, stop, wait_healthy};
use jtc_test_support::data_api::{DataApi, Fault};
use jtc_test_support::{awkward_uris, leaks, PrivateDb};

const DB_PASSWORD: &str = "Db-Pa55-7f3a91";
const URI_PASSWORD: &str = "Uri-Pa55-c0ffee";
const JWT_KEY: &str = "Jwt-K3y-5ecret-b4d";
const API_KEY: &str = "Api-K3y-9e8d7c";
const FC_KEY_ID: &str = "LTAI-fc-key-id-123456";
const FC_KEY_SECRET: &str = "fc-Access-Key-Secret-abcdef";
const FC_TOKEN: &str = "fc-Security-Token-CAIS-zzz";
const ALL: [&str; 7] = [DB_PASSWORD, URI_PASSWORD, JWT_KEY, API_KEY, FC_KEY_ID, FC_KEY_SECRET, FC_TOKEN];

/// Runs `serve` with `env` at debug level, sends `bodies` with FC's credential headers, returns everything it printed
/// and everything it answered.
async fn capture(env: HashMap<String, String>, bodies: &[&str]) -> (String, Vec<String>) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"))
        .arg("serve")
        .env_clear()
        .envs(&env)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "debug")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let http = reqwest::Client::new();
    wait_healthy(port).await;
    let mut answers = Vec::new();
    for (path, body) in bodies.iter().map(|b| ("/invoke", *b)).chain([("/initialize", "")]) {
        let response = http
            .post(format!("http://127.0.0.1:{port}{path}"))
            .header("x-fc-request-id", "secret-test")
            .header("x-fc-access-key-id", FC_KEY_ID)
            .header("x-fc-access-key-secret", FC_KEY_SECRET)
            .header("x-fc-security-token", FC_TOKEN)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let headers = format!("{:?}", response.headers());
        answers.push(format!("{headers} {}", response.text().await.unwrap()));
    }
    stop(&mut child, Duration::from_secs(10));
    let logs = format!("{}{}", stdout.join().unwrap(), stderr.join().unwrap());
    (logs, answers)
}

fn assert_clean(logs: &str, answers: &[String]) {
    assert!(logs.contains("FC Invoke Start RequestId: secret-test"), "the logs were captured: {logs}");
    assert!(logs.contains("DEBUG"), "debug level was on");
    for secret in ALL {
        assert!(!logs.contains(secret), "{secret} leaked into the logs:\n{logs}");
        for answer in answers {
            assert!(!answer.contains(secret), "{secret} leaked into an answer: {answer}");
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_an_answer() {
    let db = PrivateDb::start(Some(("svc", DB_PASSWORD))).await;
    let with_password =
        format!("mongodb://svc:{DB_PASSWORD}@127.0.0.1:{}/?directConnection=true&authSource=admin", db.port);
    let collection =
        mongodb::Client::with_uri_str(&with_password).await.unwrap().database("s").collection("jwt_blacklist");
    collection
        .insert_one(doc! { "jti": "e", "expires_at": DateTime::from_millis(Utc::now().timestamp_millis() - 3_600_000) })
        .await
        .unwrap();
    let api = DataApi::spawn(&with_password, Some(API_KEY)).await;
    let base = |extra: &[(&str, String)]| -> HashMap<String, String> {
        [
            ("DB_NAME", "s".to_string()),
            ("JWT_SECRET_KEY", JWT_KEY.to_string()),
            ("MONGODB_API_KEY", API_KEY.to_string()),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let auth_uri = format!("{}&authSource=admin", db.uri());

    // 1. The HTTP API works (with its key), the direct connection is the fallback with DB_ACCOUNT/DB_PASSWORD.
    let env = base(&[
        ("MONGODB_API_URL", api.url.clone()),
        ("DB_URI", auth_uri.clone()),
        ("DB_ACCOUNT", "svc".into()),
        ("DB_PASSWORD", DB_PASSWORD.into()),
    ]);
    let (logs, answers) = capture(env.clone(), &["", r#"{"dry_run": true}"#, "{bad"]).await;
    assert!(answers[0].contains(r#""backend":"http_api""#), "{}", answers[0]);
    assert_clean(&logs, &answers);

    // 2. The API fails; the fallback runs with the password inside DB_URI.
    api.set_fault(Fault::Status(500));
    let uri_with_secret =
        format!("mongodb://svc:{URI_PASSWORD}@127.0.0.1:{}/?directConnection=true&authSource=admin", db.port);
    let env = base(&[("MONGODB_API_URL", api.url.clone()), ("DB_URI", uri_with_secret)]);
    let (logs, answers) = capture(env, &[""]).await;
    assert!(answers[0].contains("then mongodb failed: database authentication failed"), "{}", answers[0]);
    assert_clean(&logs, &answers);

    // 3. Wrong API key, wrong database password: both fail.
    api.set_fault(Fault::None);
    let mut env = base(&[
        ("MONGODB_API_URL", api.url.clone()),
        ("DB_URI", auth_uri),
        ("DB_ACCOUNT", "svc".into()),
        ("DB_PASSWORD", URI_PASSWORD.into()),
    ]);
    env.insert("MONGODB_API_KEY".into(), FC_KEY_SECRET.into());
    let (logs, answers) = capture(env, &[""]).await;
    assert!(answers[0].contains("HTTP 401"), "{}", answers[0]);
    assert_clean(&logs, &answers);

    // 4. An API that echoes our request headers in a 500 body, with credentials in its URL: the echoed key, URL
    //    credentials and `Basic` token are scrubbed from the fallback reason and the logs.
    api.set_fault(Fault::EchoHeaders);
    let url = api.url.replace("http://", &format!("http://svc:{URI_PASSWORD}@"));
    let env = base(&[("MONGODB_API_URL", url), ("DB_URI", db.uri())]);
    let (logs, answers) = capture(env, &[""]).await;
    assert!(answers[0].contains("HTTP 500: ") && answers[0].contains("authorization=****"), "{}", answers[0]);
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("svc:{URI_PASSWORD}"));
    for leak in [basic.as_str(), "svc:"] {
        assert!(!logs.contains(leak) && !answers.iter().any(|a| a.contains(leak)), "{leak} leaked: {}", answers[0]);
    }
    assert_clean(&logs, &answers);
}

#[tokio::test]
async fn awkward_and_unreachable_uris_never_show_their_password() {
    let dead_port = crate::helpers::free_port();
    for (uri, password) in awkward_uris(dead_port) {
        let env: HashMap<String, String> = [("DB_URI", uri.as_str()), ("DB_NAME", "s"), ("DB_TIMEOUT_SECONDS", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (logs, answers) = capture(env, &[""]).await;
        assert!(answers[0].contains(r#""status":"error""#), "{uri}: the run failed: {}", answers[0]);
        for leak in leaks(password) {
            assert!(!logs.contains(&leak), "{uri}: {leak} in the logs:\n{logs}");
            assert!(!answers.iter().any(|a| a.contains(&leak)), "{uri}: {leak} in an answer: {answers:?}");
        }
        // And `sweep`, whose error goes to stdout as JSON and to stderr as a log line.
        let out = Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"))
            .arg("sweep")
            .env_clear()
            .envs([("DB_URI", uri.as_str()), ("DB_NAME", "s"), ("DB_TIMEOUT_SECONDS", "1"), ("RUST_LOG", "debug")])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{uri}");
        for leak in leaks(password) {
            assert!(!printed.contains(&leak), "{uri}: {leak} in {printed}");
        }
    }
}

/// A one-letter user name in `CLEANUP_PUSHGATEWAY_URL`, JSON logs: every line is still JSON, "sweep finished" is
/// still there for the Log Service alert, and the password is not (third review: the `e` was scrubbed inside every
/// word, `{"tim****stamp":…}`).
#[tokio::test]
async fn short_credentials_leave_json_logs_whole() {
    let db = jtc_test_support::TestDb::new().await;
    let mut env: HashMap<String, String> = [("DB_URI", db.uri.as_str()), ("DB_NAME", db.name.as_str())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("CLEANUP_PUSHGATEWAY_URL".into(), "http://e:long-password-1234@127.0.0.1:9/".into());
    let (logs, _) = capture(env, &[""]).await;
    assert!(!logs.contains("long-password-1234"), "{logs}");
    let mut finished = false;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        finished |= json.to_string().contains("sweep finished");
    }
    assert!(finished, "{logs}");
}
