//! Cookie mode in a real browser: the page of `examples/browser/` in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, set up by `scripts/test`), served from its own origin (`http://localhost:PAGE`) beside
//! auth-api (`http://localhost:API`, CORS allowing the page's origin with credentials). Only a browser can show
//! that the cookie flags, SameSite, CORS and the CSRF header do what the README says:
//!
//! - the whole flow from the page's origin: log in, `/protected`, refresh, log out;
//! - the page cannot read the JWT cookies (HttpOnly), only the CSRF values;
//! - a page on another site (`http://127.0.0.1:EVIL`) can neither log the user out with a form POST nor read
//!   `/protected`;
//! - after logout the cookies are gone and the tokens are refused.

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use jtc_test_support::webdriver::Browser;
use jtc_test_support::TestDb;
use serde_json::Value;

use crate::support::{add_user, settings, AuthApp};

const PAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/browser");

/// A page on another site: a form that posts to `/logout`, and a script that tries to read `/protected`.
const EVIL: &str = r#"<!doctype html><html><body>
<form id="f" method="POST"><input name="x" value="1"></form>
<pre id="out"></pre>
<script>
const api = new URLSearchParams(location.search).get("api");
document.getElementById("f").action = api + "/logout";
fetch(api + "/protected", { credentials: "include" })
  .then((r) => r.text())
  .then((t) => { document.getElementById("out").textContent = "read: " + t; },
        (e) => { document.getElementById("out").textContent = "blocked: " + e; });
</script></body></html>"#;

/// Serves `router` on `ip`, port 0, in the background; returns the port.
async fn serve(ip: [u8; 4], router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0))).await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// The example page, read from `examples/browser/` as a user would open it.
fn page_server() -> Router {
    let file = |name: &str| std::fs::read_to_string(format!("{PAGE_DIR}/{name}")).expect("examples/browser");
    let (index, app) = (file("index.html"), file("app.js"));
    Router::new()
        .route("/", get(move || async move { Html(index) }))
        .route("/app.js", get(move || async move { ([(axum::http::header::CONTENT_TYPE, "text/javascript")], app) }))
}

/// The page's log: one entry per call, `{"call", "status", "body"}`.
async fn log(browser: &Browser) -> Vec<Value> {
    let text = browser.run("return document.getElementById('log').textContent").await;
    text.as_str().unwrap_or_default().lines().map(|l| serde_json::from_str(l).expect("a log line")).collect()
}

/// Clicks `button` and waits for the page to log the call's answer; returns it.
async fn click_and_wait(browser: &Browser, button: &str) -> Value {
    let before = log(browser).await.len();
    browser.click(button).await;
    let script =
        format!("return document.getElementById('log').textContent.split('\\n').filter(Boolean).length > {before}");
    browser.wait_for(&script).await;
    log(browser).await.pop().expect("an entry")
}

/// The names of the cookies the page's script can see.
async fn page_cookies(browser: &Browser) -> Vec<String> {
    let cookies = browser.run("return document.cookie").await;
    cookies.as_str().unwrap_or_default().split("; ").filter_map(|c| c.split('=').next()).map(String::from).collect()
}

#[tokio::test]
async fn a_browser_logs_in_refreshes_and_logs_out_and_another_site_can_do_none_of_it() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let page_port = serve([0, 0, 0, 0], page_server()).await;
    let page_origin = format!("http://localhost:{page_port}");
    let env = [("JWT_TOKEN_LOCATION", "cookies"), ("CORS_ALLOWED_ORIGINS", page_origin.as_str())];
    let app = AuthApp::spawn(&settings(&db, &env)).await;
    let api_port = app.address.rsplit(':').next().expect("a port");
    let api = format!("http://localhost:{api_port}");
    let browser = Browser::start().await;

    // Log in from the page's origin.
    browser.goto(&format!("{page_origin}/?api={api}")).await;
    browser.type_into("#username", "alice").await;
    browser.type_into("#password", "wonderland-42").await;
    let login = click_and_wait(&browser, "#login").await;
    assert_eq!(login["status"], 200, "{login}");

    // The page reads the CSRF values, never the JWTs; the browser holds the JWTs as HttpOnly cookies.
    let visible = page_cookies(&browser).await;
    assert!(visible.contains(&"csrf_access_token".to_string()), "{visible:?}");
    assert!(visible.contains(&"csrf_refresh_token".to_string()), "{visible:?}");
    assert!(!visible.iter().any(|c| c == "access_token_cookie" || c == "refresh_token_cookie"), "{visible:?}");
    for held in browser.cookies().await.iter().filter(|c| c["name"].as_str().is_some_and(|n| n.ends_with("_cookie"))) {
        assert_eq!(held["httpOnly"], true, "{held}");
    }

    let protected = click_and_wait(&browser, "#protected").await;
    assert_eq!(protected["status"], 200, "{protected}");
    assert_eq!(protected["body"]["logged_in_as"], "alice");
    let refreshed = click_and_wait(&browser, "#refresh").await;
    assert_eq!(refreshed["status"], 200, "the refresh CSRF value went along: {refreshed}");

    // Another site: reading /protected is blocked (no CORS for it, no cookies for it), and its form POST to
    // /logout logs nobody out.
    browser.goto(&format!("http://127.0.0.1:{}/?api={api}", serve([127, 0, 0, 1], evil_site()).await)).await;
    let read = browser.wait_for("return document.getElementById('out').textContent").await;
    assert!(read.as_str().is_some_and(|r| r.starts_with("blocked:")), "another site read /protected: {read}");
    browser.run("document.getElementById('f').submit(); return true").await;
    let answer = browser.wait_for("return location.pathname === '/logout' && document.body.innerText").await;
    assert!(!answer.as_str().unwrap_or_default().contains("Successfully"), "a cross-site form logged out: {answer}");
    browser.goto(&format!("{page_origin}/?api={api}")).await;
    let still = click_and_wait(&browser, "#protected").await;
    assert_eq!(still["status"], 200, "the user is still logged in: {still}");

    // Log out: the cookies are gone, and the tokens they held are refused.
    let held = browser.cookies().await;
    let value = |name: &str| {
        let cookie = held.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name}: {held:?}"));
        cookie["value"].as_str().expect("a value").to_string()
    };
    let (access_token, refresh_token) = (value("access_token_cookie"), value("refresh_token_cookie"));
    let logout = click_and_wait(&browser, "#logout").await;
    assert_eq!(logout["status"], 200, "{logout}");
    assert_eq!(logout["body"]["revoked"], serde_json::json!(["access", "refresh"]), "{logout}");
    let visible = page_cookies(&browser).await;
    assert!(!visible.iter().any(|c| c.starts_with("csrf_")), "{visible:?}");
    let held: Vec<Value> = browser.cookies().await;
    assert!(!held.iter().any(|c| c["name"] == "access_token_cookie" || c["name"] == "refresh_token_cookie"));
    let after = click_and_wait(&browser, "#protected").await;
    assert_eq!(after["status"], 401, "{after}");
    // Replayed by hand, each with its CSRF value, as a thief holding the cookies would.
    let csrf = |token: &str| -> String {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("a JWT");
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
        serde_json::from_slice::<Value>(&claims).expect("claims")["csrf"].as_str().expect("csrf").to_string()
    };
    let protected = app.http.get(format!("{}/protected", app.address));
    let refresh = app.http.post(format!("{}/refresh", app.address)).header("X-CSRF-TOKEN", csrf(&refresh_token));
    for (request, cookie) in [
        (protected, format!("access_token_cookie={access_token}")),
        (refresh, format!("refresh_token_cookie={refresh_token}")),
    ] {
        let replay = request.header("cookie", cookie).send().await.expect("request");
        assert_eq!(replay.status(), 401);
        let body: Value = replay.json().await.expect("JSON");
        assert_eq!(body["msg"], "Token has been revoked", "{body}");
    }
}

/// The other site's one page.
fn evil_site() -> Router {
    Router::new().route("/", get(|| async { Html(EVIL) }))
}
