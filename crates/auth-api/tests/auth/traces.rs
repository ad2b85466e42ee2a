//! Traces through the real `auth-api` binary, against a real OTLP receiver (oteltap): a login, a protected call and
//! a logout carrying `traceparent` continue the caller's traces, each request a server span with its route and
//! status, and under it the password check, the revocation check (saying whether the set or the database
//! answered) and the logout's write.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jtc_test_support::otlp::{Receiver, Span};
use jtc_test_support::{free_port, stop, wait_healthy, TempDir, TestDb};
use serde_json::{json, Value};

use crate::support::env;

const TRACE_LOGIN: &str = "0af7651916cd43dd8448eb211c80319c";
const TRACE_PROTECTED: &str = "1bf7651916cd43dd8448eb211c80319d";
const TRACE_LOGOUT: &str = "2cf7651916cd43dd8448eb211c80319e";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// The server and the empty directory it runs in (no `.env` files), both gone on drop.
struct Served {
    child: Child,
    _dir: TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(10));
    }
}

fn parent(trace: &str) -> String {
    format!("00-{trace}-{CALLER_SPAN}-01")
}

fn child_of<'a>(spans: &'a [Span], parent: &Span, name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name && s.parent_span_id == parent.span_id)
        .unwrap_or_else(|| panic!("no {name} under {}: {spans:#?}", parent.name))
}

fn request<'a>(spans: &'a [Span], trace: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.parent_span_id == CALLER_SPAN)
        .unwrap_or_else(|| panic!("no request span in {trace}: {spans:#?}"))
}

#[tokio::test]
async fn login_protected_and_logout_continue_the_callers_traces() {
    let receiver = Receiver::start();
    let db = TestDb::new().await;
    crate::support::add_user(&db, "alice", "wonderland-42").await;
    let port = free_port();
    let vars = env(
        &db,
        &[
            ("PORT", &port.to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let dir = TempDir::new("auth-api-traces");
    let child = Command::new(env!("CARGO_BIN_EXE_auth-api"))
        .env_clear()
        .envs(&vars)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _served = Served { child, _dir: dir };
    wait_healthy(port).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let login = http
        .post(url("/login"))
        .header("traceparent", parent(TRACE_LOGIN))
        .json(&json!({ "username": "alice", "password": "wonderland-42" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.unwrap();
    let access = tokens["access_token"].as_str().expect("access_token").to_string();
    let protected =
        http.get(url("/protected")).header("traceparent", parent(TRACE_PROTECTED)).bearer_auth(&access).send().await;
    assert_eq!(protected.unwrap().status(), 200);
    let logout =
        http.post(url("/logout")).header("traceparent", parent(TRACE_LOGOUT)).bearer_auth(&access).send().await;
    assert_eq!(logout.unwrap().status(), 200);

    let spans = receiver
        .wait_for(|spans| {
            [TRACE_LOGIN, TRACE_PROTECTED, TRACE_LOGOUT]
                .iter()
                .all(|t| spans.iter().any(|s| s.trace_id == *t && s.parent_span_id == CALLER_SPAN))
        })
        .await;
    let login = request(&spans, TRACE_LOGIN);
    assert_eq!((login.name.as_str(), login.kind), ("POST /login", 2), "{login:#?}");
    assert_eq!(login.attr("http.route"), "/login");
    assert_eq!(login.attr("http.response.status_code"), "200");
    assert_eq!(child_of(&spans, login, "password check").trace_id, TRACE_LOGIN);

    let protected = request(&spans, TRACE_PROTECTED);
    assert_eq!(protected.name, "GET /protected");
    let check = child_of(&spans, protected, "revocation check");
    assert!(["set", "database"].contains(&check.attr("answered_by")), "{check:#?}");

    let logout = request(&spans, TRACE_LOGOUT);
    assert_eq!(logout.name, "POST /logout");
    let write = spans
        .iter()
        .find(|s| s.name == "revocation write" && s.trace_id == TRACE_LOGOUT)
        .unwrap_or_else(|| panic!("no revocation write: {spans:#?}"));
    assert_eq!(write.kind, 3, "a client span");
    assert_eq!(write.attr("db.namespace"), db.name);
    assert_eq!(write.attr("db.collection.name"), "jwt_blacklist");
}
