//! The real `auth-api` binary: `add-user` (password on stdin), `serve` (security log lines, the plain-HTTP warning,
//! SIGTERM), configuration errors.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{env, settings, AuthApp};
use jtc_test_support::{TempDir, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_auth-api");

/// The binary with only `vars` (and PATH) in its environment, in `dir` (an empty one: no `.env` files).
fn command(vars: &HashMap<String, String>, dir: &TempDir) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir.path()).envs(vars);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

fn add_user(vars: &HashMap<String, String>, args: &[&str], stdin: &str) -> Output {
    let dir = TempDir::new("auth-api-cli");
    let mut child = command(vars, &dir)
        .arg("add-user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn add_user_reads_the_password_from_stdin() {
    let db = TestDb::new().await;
    let vars = env(&db, &[]);
    let out = add_user(&vars, &["carol"], "s3cret pass phrase\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored = db.client.database(&db.name).collection::<mongodb::bson::Document>("users");
    let user = stored.find_one(mongodb::bson::doc! { "username": "carol" }).await.unwrap().expect("user");
    let hash = user.get_str("password_hash").unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("s3cret"), "{hash}");

    let app = AuthApp::spawn(&settings(&db, &[])).await;
    assert_eq!(app.login("carol", "s3cret pass phrase").await.status, StatusCode::OK);

    let again = add_user(&vars, &["carol"], "other pass phrase\n");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let update = add_user(&vars, &["carol", "--update"], "new pass phrase\r\n");
    assert!(update.status.success());
    assert_eq!(app.login("carol", "s3cret pass phrase").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("carol", "new pass phrase").await.status, StatusCode::OK);

    for (args, stdin, expected) in [
        (vec!["dave"], "", "invalid password"),
        (vec!["dave"], "\n", "invalid password"),
        (vec!["dave"], "eleven char\n", "at least 12 are required (PASSWORD_MIN_LENGTH)"),
        (vec!["carol", "--update"], "short\n", "at least 12"),
        (vec![" dave"], "a pass phrase\n", "invalid user name"),
        (vec!["da\u{200B}ve"], "a pass phrase\n", "invalid user name"),
        (vec!["d\u{0430}ve"], "a pass phrase\n", "mix scripts"),
        (vec!["Carol"], "a pass phrase\n", "already exists"),
        (vec!["ｃａｒｏｌ"], "a pass phrase\n", "already exists"),
        (vec!["nobody", "--update"], "a pass phrase\n", "does not exist"),
    ] {
        let out = add_user(&vars, &args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(stored.count_documents(mongodb::bson::doc! {}).await.unwrap(), 1);
}

#[tokio::test]
async fn serve_logs_failed_logins_without_the_password_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    crate::support::add_user(&db, "alice", "wonderland-42").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let vars = env(&db, &[("PORT", &port.to_string())]);
    let dir = TempDir::new("auth-api-cli");
    let child = command(&vars, &dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();

    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        match http.get(format!("http://127.0.0.1:{port}/health")).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ if started.elapsed() > Duration::from_secs(20) => panic!("auth-api did not start"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let body = json!({ "username": "alice", "password": "Tr0ub4dor&3-attempt" });
    let response = http.post(format!("http://127.0.0.1:{port}/login")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stderr);
    let line = logs.lines().find(|l| l.contains("failed login")).unwrap_or_else(|| panic!("no security line: {logs}"));
    assert!(line.contains("alice") && line.contains("127.0.0.1") && line.contains("login_failed"), "{line}");
    assert!(!logs.contains("Tr0ub4dor"), "the password reached the logs: {logs}");
    assert!(logs.contains("serving plain HTTP"), "no TLS warning: {logs}");
    assert!(!logs.contains(crate::support::SECRET), "the JWT key reached the logs");
}

#[test]
fn configuration_errors_exit_2_and_name_the_variable() {
    let vars: HashMap<String, String> =
        [("DB_URI", "mongodb://127.0.0.1:1"), ("DB_NAME", "x"), ("JWT_SECRET_KEY", "too-short")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let dir = TempDir::new("auth-api-cli");
    let out = command(&vars, &dir).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET_KEY is invalid"), "{stderr}");
    assert!(!stderr.contains("too-short"), "{stderr}");
}

fn revoke_user(vars: &HashMap<String, String>, name: &str) -> Output {
    let dir = TempDir::new("auth-api-cli");
    command(vars, &dir).args(["revoke-user", name]).stdin(Stdio::null()).output().expect("revoke-user")
}

/// Sleeps into the next whole second: `iat` has whole seconds, and a token issued in the very second of a
/// revocation is refused too.
async fn next_second() {
    let into = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - into) + 20)).await;
}

#[tokio::test]
async fn tokens_do_not_outlive_a_password_change_a_revocation_or_the_account() {
    let db = TestDb::new().await;
    let vars = env(&db, &[]);
    for (name, password) in [("alice", "old pass phrase"), ("bob", "bob the builder"), ("carol", "carol passphrase")] {
        assert!(add_user(&vars, &[name], &format!("{password}\n")).status.success());
    }
    let app = AuthApp::spawn(&settings(&db, &[])).await;
    let (alice_access, alice_refresh) = app.tokens("alice", "old pass phrase").await;
    let (bob_access, bob_refresh) = app.tokens("bob", "bob the builder").await;
    let (carol_access, carol_refresh) = app.tokens("carol", "carol passphrase").await;

    // A password change ends every session the old password opened.
    let changed = add_user(&vars, &["alice", "--update"], "new pass phrase\n");
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    assert!(String::from_utf8_lossy(&changed.stderr).contains("is refused from now on"));
    app.caught_up().await;
    assert_eq!(app.protected(&alice_access).await.msg(), "Token has been revoked");
    assert_eq!(app.call(Method::POST, "/refresh", Some(&alice_refresh), None).await.msg(), "Token has been revoked");

    // revoke-user: every token of bob's, access and refresh; nobody else's. Any way of typing the name is bob.
    let revoked = revoke_user(&vars, "ＢＯＢ");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    app.caught_up().await;
    assert_eq!(app.protected(&bob_access).await.msg(), "Token has been revoked");
    assert_eq!(app.call(Method::POST, "/refresh", Some(&bob_refresh), None).await.msg(), "Token has been revoked");
    assert_eq!(app.protected(&carol_access).await.status, StatusCode::OK);

    // Tokens issued afterwards work (from the next whole second on).
    next_second().await;
    let (access, refresh_token) = app.tokens("alice", "new pass phrase").await;
    assert_eq!(app.protected(&access).await.status, StatusCode::OK);
    assert_eq!(app.call(Method::POST, "/refresh", Some(&refresh_token), None).await.status, StatusCode::OK);
    let (access, _) = app.tokens("bob", "bob the builder").await;
    assert_eq!(app.protected(&access).await.status, StatusCode::OK);

    // A deleted account: its refresh token mints nothing, at once; its access token dies with revoke-user.
    let users = db.client.database(&db.name).collection::<mongodb::bson::Document>("users");
    users.delete_one(mongodb::bson::doc! { "username": "carol" }).await.unwrap();
    let answer = app.call(Method::POST, "/refresh", Some(&carol_refresh), None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Error loading the user carol"));
    assert!(revoke_user(&vars, "carol").status.success());
    app.caught_up().await;
    assert_eq!(app.protected(&carol_access).await.msg(), "Token has been revoked");

    // The user entries are blacklist entries the cleaner sweeps once every token they cover has expired.
    let entry = crate::support::entry(&db, "user:bob").await.expect("bob's entry");
    assert_eq!(entry.get_str("type").unwrap(), "user");
    let revoked_before = entry.get_datetime("revoked_before").unwrap().timestamp_millis();
    let expires_at = entry.get_datetime("expires_at").unwrap().timestamp_millis();
    assert_eq!(expires_at - revoked_before, 7 * 86_400 * 1000, "the longest token lifetime");
}

/// What a run printed, on both streams.
fn printed(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn no_driver_error_shows_a_password_at_start_or_in_add_user() {
    let dead_port = jtc_test_support::free_port();
    let db = TestDb::new().await;
    for (uri, password) in jtc_test_support::awkward_uris(dead_port) {
        let vars = env(&db, &[("DB_URI", &uri), ("DB_TIMEOUT_SECONDS", "1"), ("RUST_LOG", "debug")]);
        let out = add_user(&vars, &["bob"], "a pass phrase\n");
        assert_eq!(out.status.code(), Some(1), "{uri}: {}", printed(&out));
        // serve: whatever it says at start (it may fail at once, or log the unreachable database and serve).
        let dir = TempDir::new("auth-api-cli");
        let port = jtc_test_support::free_port().to_string();
        let mut vars = vars.clone();
        vars.insert("PORT".into(), port);
        let mut child = command(&vars, &dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        jtc_test_support::stop(&mut child, Duration::from_secs(10));
        let serve = child.wait_with_output().expect("output");
        for leak in jtc_test_support::leaks(password) {
            assert!(!printed(&out).contains(&leak), "{uri}: add-user showed {leak}: {}", printed(&out));
            assert!(!printed(&serve).contains(&leak), "{uri}: serve showed {leak}: {}", printed(&serve));
        }
    }
}

#[tokio::test]
async fn a_wrong_database_password_is_never_shown() {
    let private = jtc_test_support::PrivateDb::start(Some(("svc", "Right-Pa55-k"))).await;
    let wrong = "Wrong-Pa55-k";
    let uri = format!("mongodb://svc:{wrong}@127.0.0.1:{}/?directConnection=true&authSource=admin", private.port);
    let db = TestDb::new().await;
    let vars = env(&db, &[("DB_URI", &uri), ("DB_TIMEOUT_SECONDS", "2"), ("RUST_LOG", "debug")]);
    let out = add_user(&vars, &["bob"], "a pass phrase\n");
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(printed(&out).to_lowercase().contains("auth"), "an authentication error: {}", printed(&out));
    assert!(!printed(&out).contains(wrong), "{}", printed(&out));
}

#[tokio::test]
async fn logins_in_flight_do_not_outlive_a_password_change() {
    let db = TestDb::new().await;
    let vars = env(&db, &[]);
    assert!(add_user(&vars, &["alice"], "old pass phrase\n").status.success());
    let app = std::sync::Arc::new(AuthApp::spawn(&settings(&db, &[])).await);
    // 80 logins with the old password: most wait for the verification semaphore, holding the old hash.
    let logins: Vec<_> = (0..80)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.login("alice", "old pass phrase").await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let update_vars = vars.clone();
    let changed =
        tokio::task::spawn_blocking(move || add_user(&update_vars, &["alice", "--update"], "new pass phrase\n"))
            .await
            .unwrap();
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    app.caught_up().await;
    let mut issued = Vec::new();
    for login in logins {
        let answer = login.await.unwrap();
        if answer.status == StatusCode::OK {
            issued.push(answer.json);
        } else {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
        }
    }
    // Every token the old password obtained is refused now that the update has returned.
    for tokens in &issued {
        let access = tokens["access_token"].as_str().unwrap();
        let refresh = tokens["refresh_token"].as_str().unwrap();
        assert_eq!(app.protected(access).await.status, StatusCode::UNAUTHORIZED, "access token outlived the change");
        let answer = app.call(Method::POST, "/refresh", Some(refresh), None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "refresh token outlived the change");
    }
    eprintln!("{} of 80 logins were answered 200 before the change; all of their tokens are refused", issued.len());
}

#[tokio::test]
async fn users_stored_before_names_were_normalised_keep_working() {
    let db = TestDb::new().await;
    let vars = env(&db, &[]);
    // Stored as typed, with a short password, as an older auth-api would have.
    let hash = auth_api::users::hash_password(jtc_shared::Secret::new("pw")).await.unwrap();
    let users = db.client.database(&db.name).collection::<mongodb::bson::Document>("users");
    users.insert_one(mongodb::bson::doc! { "username": "Alice", "password_hash": hash }).await.unwrap();
    let app = AuthApp::spawn(&settings(&db, &[])).await;
    let (access, _) = app.tokens("Alice", "pw").await;
    assert_eq!(crate::support::claims(&access)["sub"], "Alice");
    // revoke-user with the name as it was stored covers the name the tokens carry.
    assert!(revoke_user(&vars, "Alice").status.success());
    app.caught_up().await;
    assert_eq!(app.protected(&access).await.msg(), "Token has been revoked");
}
