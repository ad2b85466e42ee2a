//! Interoperability with the real Flask-JWT-Extended (tests/interop/flask_app.py, run by `FLASK_PYTHON`, which
//! `scripts/test` installs into `.tools/flask`): both in cookie mode, sharing the secret and the blacklist, each
//! accepts the other's cookies and CSRF values, refuses a POST without the CSRF header with the same message, and
//! refuses a token the other side logged out.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{add_user, answer, settings, Answer, AuthApp, SECRET};
use jtc_test_support::{free_port, stop, TestDb};

/// The Flask app, stopped by signal when dropped.
struct Flask {
    child: Child,
    address: String,
}

impl Drop for Flask {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
    }
}

async fn flask(db: &TestDb) -> Flask {
    let python = std::env::var("FLASK_PYTHON").unwrap_or_else(|_| {
        panic!("FLASK_PYTHON is not set: run the suite with scripts/test (it installs Flask-JWT-Extended)")
    });
    let port = free_port();
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/flask_app.py");
    let child = Command::new(python)
        .arg(app)
        .env("PORT", port.to_string())
        .env("JWT_SECRET_KEY", SECRET)
        .env("DB_URI", &db.uri)
        .env("DB_NAME", &db.name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Flask app");
    let flask = Flask { child, address: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the Flask app did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flask
}

/// The four cookie values an answer set.
fn jar(answer: &Answer) -> [String; 4] {
    let get = |name: &str| {
        answer
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    ["access_token_cookie", "csrf_access_token", "refresh_token_cookie", "csrf_refresh_token"].map(get)
}

async fn send(http: &reqwest::Client, method: Method, url: String, cookie: &str, csrf: Option<&str>) -> Answer {
    let mut request = http.request(method, url).header("cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-TOKEN", csrf);
    }
    answer(request.send().await.expect("request")).await
}

#[tokio::test]
async fn flask_jwt_extended_and_auth_api_accept_each_others_cookies() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let api = AuthApp::spawn(&settings(&db, &[("JWT_TOKEN_LOCATION", "cookies")])).await;
    let flask = flask(&db).await;
    let http = reqwest::Client::new();

    let flask_login = answer(
        http.post(format!("{}/login", flask.address)).json(&json!({ "username": "alice" })).send().await.unwrap(),
    )
    .await;
    assert_eq!(flask_login.status, StatusCode::OK, "{}", flask_login.json);
    let [f_access, f_csrf_access, f_refresh, f_csrf_refresh] = jar(&flask_login);
    let api_login = api.login("alice", "wonderland-42").await;
    let [a_access, a_csrf_access, _, _] = jar(&api_login);
    let f_cookie = format!("access_token_cookie={f_access}; csrf_access_token={f_csrf_access}");
    let f_refresh_cookie = format!("refresh_token_cookie={f_refresh}; csrf_refresh_token={f_csrf_refresh}");
    let a_cookie = format!("access_token_cookie={a_access}; csrf_access_token={a_csrf_access}");

    // auth-api takes Flask's cookies: a GET, and a POST with Flask's CSRF value.
    let answer = send(&http, Method::GET, format!("{}/protected", api.address), &f_cookie, None).await;
    assert_eq!(
        (answer.status, answer.json["logged_in_as"].as_str()),
        (StatusCode::OK, Some("alice")),
        "{}",
        answer.json
    );
    let answer = send(&http, Method::POST, format!("{}/refresh", api.address), &f_refresh_cookie, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Missing CSRF token"));
    let answer =
        send(&http, Method::POST, format!("{}/refresh", api.address), &f_refresh_cookie, Some(&f_csrf_refresh)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // Flask takes auth-api's, and refuses the same way.
    let answer = send(&http, Method::POST, format!("{}/echo", flask.address), &a_cookie, Some(&a_csrf_access)).await;
    assert_eq!(
        (answer.status, answer.json["logged_in_as"].as_str()),
        (StatusCode::OK, Some("alice")),
        "{}",
        answer.json
    );
    let answer = send(&http, Method::POST, format!("{}/echo", flask.address), &a_cookie, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Missing CSRF token"));
    let answer = send(&http, Method::POST, format!("{}/echo", flask.address), &a_cookie, Some(&f_csrf_access)).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "CSRF double submit tokens do not match"));
    let answer = send(&http, Method::POST, format!("{}/logout", api.address), &f_cookie, Some(&a_csrf_access)).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "CSRF double submit tokens do not match"));

    // A logout on one side is refused on the other.
    let answer = send(&http, Method::POST, format!("{}/logout", api.address), &a_cookie, Some(&a_csrf_access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let answer = send(&http, Method::GET, format!("{}/protected", flask.address), &a_cookie, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
    let answer = send(&http, Method::POST, format!("{}/logout", flask.address), &f_cookie, Some(&f_csrf_access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    api.caught_up().await;
    let answer = send(&http, Method::GET, format!("{}/protected", api.address), &f_cookie, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"));
}
