//! Tokens in cookies with double-submit CSRF protection: login, refresh and logout in cookie mode, the CSRF check
//! on every state-changing route, the cookies' attributes, header mode unchanged, CORS credentials.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{add_user, answer, claims, entry, settings, Answer, AuthApp, SECRET};
use jtc_test_support::TestDb;

/// The cookies an answer set: name → the whole `Set-Cookie` value.
fn set_cookies(answer: &Answer) -> HashMap<String, String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| Some((v.split_once('=')?.0.to_string(), v.to_string())))
        .collect()
}

/// The value part of a `Set-Cookie`.
fn value(set_cookie: &str) -> String {
    set_cookie.split(';').next().and_then(|p| p.split_once('=')).map(|(_, v)| v.to_string()).unwrap_or_default()
}

/// A browser's jar after a cookie login: the four values.
struct Jar {
    access: String,
    csrf_access: String,
    refresh: String,
    csrf_refresh: String,
}

impl Jar {
    fn from(answer: &Answer) -> Self {
        let set = set_cookies(answer);
        let get = |name: &str| value(set.get(name).unwrap_or_else(|| panic!("no {name} cookie: {set:?}")));
        Jar {
            access: get("access_token_cookie"),
            csrf_access: get("csrf_access_token"),
            refresh: get("refresh_token_cookie"),
            csrf_refresh: get("csrf_refresh_token"),
        }
    }

    fn cookie_header(&self) -> String {
        format!(
            "access_token_cookie={}; csrf_access_token={}; refresh_token_cookie={}; csrf_refresh_token={}",
            self.access, self.csrf_access, self.refresh, self.csrf_refresh
        )
    }
}

async fn send(app: &AuthApp, method: Method, path: &str, cookie: Option<&str>, csrf: Option<&str>) -> Answer {
    let mut request = app.http.request(method, format!("{}{path}", app.address));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-TOKEN", csrf);
    }
    answer(request.send().await.expect("request")).await
}

async fn cookie_app(db: &TestDb, location: &str, extra: &[(&str, &str)]) -> AuthApp {
    add_user(db, "alice", "wonderland-42").await;
    let mut vars = vec![("JWT_TOKEN_LOCATION", location)];
    vars.extend_from_slice(extra);
    AuthApp::spawn(&settings(db, &vars)).await
}

#[tokio::test]
async fn cookie_login_sets_four_cookies_with_the_right_attributes() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[]).await;
    let login = app.login("alice", "wonderland-42").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.json);
    assert_eq!(login.json, json!({ "login": true }), "cookies only: no token in the body");
    let set = set_cookies(&login);
    for name in ["access_token_cookie", "refresh_token_cookie"] {
        let cookie = &set[name];
        assert!(
            cookie.contains("; HttpOnly") && cookie.contains("Path=/") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        assert!(!cookie.contains("Secure"), "no TLS, no JWT_COOKIE_SECURE: {cookie}");
    }
    for name in ["csrf_access_token", "csrf_refresh_token"] {
        assert!(!set[name].contains("HttpOnly"), "the page reads the CSRF value: {}", set[name]);
    }
    let jar = Jar::from(&login);
    assert_eq!(claims(&jar.access)["csrf"], jar.csrf_access.as_str(), "the CSRF cookie is the token's claim");
    assert_eq!(claims(&jar.refresh)["csrf"], jar.csrf_refresh.as_str());
    assert_ne!(jar.csrf_access, jar.csrf_refresh, "a fresh value per token");

    // Both locations: the body still carries the tokens.
    let both = AuthApp::spawn(&settings(&db, &[("JWT_TOKEN_LOCATION", "headers,cookies")])).await;
    let login = both.login("alice", "wonderland-42").await;
    assert!(login.json["access_token"].is_string() && set_cookies(&login).len() == 4, "{}", login.json);

    // Secure, SameSite and Domain as configured.
    let strict = AuthApp::spawn(&settings(
        &db,
        &[
            ("JWT_TOKEN_LOCATION", "cookies"),
            ("JWT_COOKIE_SECURE", "true"),
            ("JWT_COOKIE_SAMESITE", "Strict"),
            ("JWT_COOKIE_DOMAIN", "app.example"),
            ("JWT_REFRESH_COOKIE_PATH", "/refresh"),
        ],
    ))
    .await;
    let set = set_cookies(&strict.login("alice", "wonderland-42").await);
    assert!(set
        .values()
        .all(|c| c.contains("; Secure") && c.contains("SameSite=Strict") && c.contains("Domain=app.example")));
    assert!(set["refresh_token_cookie"].contains("Path=/refresh"), "{set:?}");
}

#[tokio::test]
async fn the_csrf_check_on_every_state_changing_route() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[]).await;
    let jar = Jar::from(&app.login("alice", "wonderland-42").await);
    let cookie = jar.cookie_header();

    // GET needs no CSRF value.
    let answer = send(&app, Method::GET, "/protected", Some(&cookie), None).await;
    assert_eq!((answer.status, answer.json["logged_in_as"].as_str()), (StatusCode::OK, Some("alice")));

    // POST /refresh: missing, wrong (the access token's value), then right.
    let answer = send(&app, Method::POST, "/refresh", Some(&cookie), None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Missing CSRF token"));
    let answer = send(&app, Method::POST, "/refresh", Some(&cookie), Some(&jar.csrf_access)).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "CSRF double submit tokens do not match"));
    let answer = send(&app, Method::POST, "/refresh", Some(&cookie), Some(&jar.csrf_refresh)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let set = set_cookies(&answer);
    assert!(set.contains_key("access_token_cookie") && set.contains_key("csrf_access_token"), "{set:?}");
    assert!(!set.contains_key("refresh_token_cookie"), "refresh sets the access pair only");
    let new_access = value(&set["access_token_cookie"]);
    let new_csrf = value(&set["csrf_access_token"]);
    assert_eq!(claims(&new_access)["csrf"], new_csrf.as_str());

    // POST /logout: missing and wrong values change nothing.
    let answer = send(&app, Method::POST, "/logout", Some(&cookie), None).await;
    assert_eq!(answer.msg(), "Missing CSRF token");
    let answer = send(&app, Method::POST, "/logout", Some(&cookie), Some("forged")).await;
    assert_eq!(answer.msg(), "CSRF double submit tokens do not match");
    let access_jti = claims(&jar.access)["jti"].as_str().unwrap().to_string();
    assert!(entry(&db, &access_jti).await.is_none(), "a refused logout revokes nothing");

    // No cookie at all: Flask-JWT-Extended's message.
    let answer = send(&app, Method::GET, "/protected", None, None).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Missing cookie \"access_token_cookie\""));
}

#[tokio::test]
async fn a_cookie_logout_revokes_both_tokens_and_unsets_the_cookies() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[]).await;
    let jar = Jar::from(&app.login("alice", "wonderland-42").await);
    let cookie = jar.cookie_header();
    let answer = send(&app, Method::POST, "/logout", Some(&cookie), Some(&jar.csrf_access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["revoked"], json!(["access", "refresh"]));
    let set = set_cookies(&answer);
    assert_eq!(set.len(), 4, "{set:?}");
    for (name, cookie) in &set {
        assert!(
            cookie.starts_with(&format!("{name}=;")) && cookie.contains("Max-Age=0") && cookie.contains("Path=/"),
            "{cookie}"
        );
    }
    for token in [&jar.access, &jar.refresh] {
        let jti = claims(token)["jti"].as_str().unwrap().to_string();
        assert!(entry(&db, &jti).await.is_some(), "{jti} was not revoked");
    }
    let answer = send(&app, Method::GET, "/protected", Some(&cookie), None).await;
    assert_eq!(answer.msg(), "Token has been revoked");
    let answer = send(&app, Method::POST, "/refresh", Some(&cookie), Some(&jar.csrf_refresh)).await;
    assert_eq!(answer.msg(), "Token has been revoked");
}

#[tokio::test]
async fn header_mode_is_unchanged_and_ignores_csrf_values() {
    let db = TestDb::new().await;
    add_user(&db, "alice", "wonderland-42").await;
    let app = AuthApp::spawn(&settings(&db, &[])).await;
    let login = app.login("alice", "wonderland-42").await;
    assert!(set_cookies(&login).is_empty(), "no cookies in header mode");
    assert_eq!(login.json.as_object().map(|o| o.len()), Some(2), "{}", login.json);
    let (access, refresh) = app.tokens("alice", "wonderland-42").await;
    // A header-authenticated POST needs no CSRF value, and a wrong one is ignored.
    let answer = app.call(Method::POST, "/refresh", Some(&refresh), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut request = app.http.post(format!("{}/refresh", app.address)).bearer_auth(&refresh);
    request = request.header("X-CSRF-TOKEN", "whatever");
    assert_eq!(answer_of(request).await.status, StatusCode::OK);
    // Cookies are not read in header mode.
    let answer = send(&app, Method::GET, "/protected", Some(&format!("access_token_cookie={access}")), None).await;
    assert_eq!(answer.msg(), "Missing Authorization Header");

    // Tokens issued before the csrf claim existed still work in headers.
    let now = chrono::Utc::now().timestamp();
    let old = json!({ "sub": "alice", "jti": "old-1", "type": "access", "iat": now, "nbf": now, "exp": now + 60 });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &old,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.protected(&token).await.status, StatusCode::OK);
}

async fn answer_of(request: reqwest::RequestBuilder) -> Answer {
    answer(request.send().await.expect("request")).await
}

#[tokio::test]
async fn both_locations_are_tried_in_the_order_listed() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "headers,cookies", &[]).await;
    let login = app.login("alice", "wonderland-42").await;
    let jar = Jar::from(&login);
    let cookie = jar.cookie_header();
    // No header: the cookie is used (and its CSRF value is required).
    let answer = send(&app, Method::POST, "/refresh", Some(&cookie), None).await;
    assert_eq!(answer.msg(), "Missing CSRF token");
    // A header first: no CSRF value needed.
    let refresh = login.json["refresh_token"].as_str().unwrap();
    let request = app.http.post(format!("{}/refresh", app.address)).bearer_auth(refresh).header("cookie", &cookie);
    assert_eq!(answer_of(request).await.status, StatusCode::OK);
    // Neither: every location's reason.
    let answer = send(&app, Method::GET, "/protected", None, None).await;
    assert_eq!(answer.msg(), "Missing Authorization Header; Missing cookie \"access_token_cookie\"");
}

#[tokio::test]
async fn tampered_and_over_long_values_are_refused_without_a_panic() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[]).await;
    let jar = Jar::from(&app.login("alice", "wonderland-42").await);
    // A csrf claim rewritten to match a forged header: the signature no longer holds.
    let mut parts: Vec<String> = jar.access.split('.').map(str::to_string).collect();
    let mut payload = claims(&jar.access);
    payload["csrf"] = Value::String("attacker".into());
    parts[1] = crate::support::encode_base64url(payload.to_string().as_bytes());
    let forged = parts.join(".");
    let cookie = format!("access_token_cookie={forged}");
    let answer = send(&app, Method::POST, "/logout", Some(&cookie), Some("attacker")).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "Signature verification failed"));

    let long = "x".repeat(20_000);
    for (cookie, csrf) in [(format!("access_token_cookie={long}"), None), (jar.cookie_header(), Some(long.as_str()))] {
        let answer = send(&app, Method::POST, "/logout", Some(&cookie), csrf).await;
        assert!(matches!(answer.status.as_u16(), 400 | 401 | 431), "{} {}", answer.status, answer.json);
    }
    let huge = "y".repeat(200_000);
    let answer = send(&app, Method::GET, "/protected", Some(&format!("access_token_cookie={huge}")), None).await;
    assert!(matches!(answer.status.as_u16(), 400 | 401 | 431), "{}", answer.status);
    assert_eq!(send(&app, Method::GET, "/health", None, None).await.status, StatusCode::OK, "still serving");
}

#[tokio::test]
async fn credentials_are_allowed_only_for_listed_origins() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/logout", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-csrf-token")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
    let headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(headers.contains("x-csrf-token"), "{headers}");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-credentials").is_none());
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let simple =
        app.http.get(format!("{}/health", app.address)).header("origin", "https://evil.example").send().await.unwrap();
    assert!(simple.headers().get("access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn bad_cookie_settings_stop_the_server_at_start() {
    let db = TestDb::new().await;
    for (name, value) in [("JWT_TOKEN_LOCATION", "cookies,query_string"), ("JWT_COOKIE_SAMESITE", "None")] {
        let env = crate::support::env(&db, &[(name, value)]);
        let e = auth_api::config::AuthSettings::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{name} is invalid")), "{e}");
    }
}

/// `__Host-` cookie names (the README's defence against cookie tossing from a sibling subdomain): set with
/// `Secure`, `Path=/` and no `Domain`, as browsers require, and read back on every route.
#[tokio::test]
async fn host_prefixed_cookie_names_work() {
    let db = TestDb::new().await;
    let names = [
        ("JWT_ACCESS_COOKIE_NAME", "__Host-access"),
        ("JWT_REFRESH_COOKIE_NAME", "__Host-refresh"),
        ("JWT_ACCESS_CSRF_COOKIE_NAME", "__Host-csrf-access"),
        ("JWT_REFRESH_CSRF_COOKIE_NAME", "__Host-csrf-refresh"),
        ("JWT_COOKIE_SECURE", "true"),
    ];
    let app = cookie_app(&db, "cookies", &names).await;
    let login = app.login("alice", "wonderland-42").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.json);
    let set = set_cookies(&login);
    for (_, name) in &names[..4] {
        let cookie = set.get(*name).unwrap_or_else(|| panic!("no {name}: {set:?}"));
        assert!(cookie.contains("; Secure") && cookie.contains("; Path=/"), "{cookie}");
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    }
    let v = |name: &str| value(&set[name]);
    let jar = format!(
        "__Host-access={}; __Host-csrf-access={}; __Host-refresh={}; __Host-csrf-refresh={}",
        v("__Host-access"),
        v("__Host-csrf-access"),
        v("__Host-refresh"),
        v("__Host-csrf-refresh")
    );
    let csrf = v("__Host-csrf-access");
    let protected = send(&app, Method::GET, "/protected", Some(&jar), None).await;
    assert_eq!(protected.json, json!({ "logged_in_as": "alice" }));
    let refreshed = send(&app, Method::POST, "/refresh", Some(&jar), Some(&v("__Host-csrf-refresh"))).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.json);
    let logout = send(&app, Method::POST, "/logout", Some(&jar), Some(&csrf)).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.json);
    assert_eq!(send(&app, Method::GET, "/protected", Some(&jar), None).await.msg(), "Token has been revoked");
}

/// With `JWT_REFRESH_COOKIE_PATH=/refresh` a browser never sends the refresh cookie to `/logout`; the logout ends
/// the refresh token anyway, because the access token names it (third review: `"revoked": ["access"]`, and the
/// refresh token kept minting access tokens). After a refresh, the new access token names the same refresh token.
#[tokio::test]
async fn a_cookie_logout_ends_a_refresh_token_it_cannot_see() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[("JWT_REFRESH_COOKIE_PATH", "/refresh")]).await;
    let jar = Jar::from(&app.login("alice", "wonderland-42").await);
    let to_refresh = format!("refresh_token_cookie={}; csrf_refresh_token={}", jar.refresh, jar.csrf_refresh);
    // What the browser sends to /refresh (its path), then to /logout (every cookie but the refresh one).
    let refreshed = send(&app, Method::POST, "/refresh", Some(&to_refresh), Some(&jar.csrf_refresh)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.json);
    let set = set_cookies(&refreshed);
    let (access, csrf) = (value(&set["access_token_cookie"]), value(&set["csrf_access_token"]));
    let to_logout = format!("access_token_cookie={access}; csrf_access_token={csrf}");
    let answer = send(&app, Method::POST, "/logout", Some(&to_logout), Some(&csrf)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["revoked"], json!(["access", "refresh"]));
    let again = send(&app, Method::POST, "/refresh", Some(&to_refresh), Some(&jar.csrf_refresh)).await;
    assert_eq!((again.status, again.msg()), (StatusCode::UNAUTHORIZED, "Token has been revoked"), "{}", again.json);
}

/// The CSRF header must equal the token's signed claim, not the CSRF cookie: a tossed cookie (planted by a sibling
/// subdomain) that agrees with the header but not with the claim is refused, and revokes nothing.
#[tokio::test]
async fn a_tossed_csrf_cookie_that_agrees_with_the_header_is_refused() {
    let db = TestDb::new().await;
    let app = cookie_app(&db, "cookies", &[]).await;
    let jar = Jar::from(&app.login("alice", "wonderland-42").await);
    let tossed = format!("access_token_cookie={}; csrf_access_token=attacker-chosen", jar.access);
    let answer = send(&app, Method::POST, "/logout", Some(&tossed), Some("attacker-chosen")).await;
    assert_eq!((answer.status, answer.msg()), (StatusCode::UNAUTHORIZED, "CSRF double submit tokens do not match"));
    let jti = claims(&jar.access)["jti"].as_str().unwrap().to_string();
    assert!(entry(&db, &jti).await.is_none(), "nothing revoked");
}

/// The cookie settings through the server: custom cookie and header names and paths, `JWT_CSRF_METHODS`, and
/// `JWT_COOKIE_CSRF_PROTECT=false`.
#[tokio::test]
async fn custom_cookie_settings_work_through_the_server() {
    let db = TestDb::new().await;
    let custom = [
        ("JWT_ACCESS_COOKIE_NAME", "at"),
        ("JWT_ACCESS_CSRF_COOKIE_NAME", "at_csrf"),
        ("JWT_ACCESS_CSRF_HEADER_NAME", "X-At-Csrf"),
        ("JWT_ACCESS_COOKIE_PATH", "/"),
        ("JWT_REFRESH_COOKIE_NAME", "rt"),
        ("JWT_REFRESH_CSRF_COOKIE_NAME", "rt_csrf"),
        ("JWT_REFRESH_COOKIE_PATH", "/refresh"),
        ("JWT_REFRESH_CSRF_COOKIE_PATH", "/refresh"),
        ("JWT_CSRF_METHODS", "PUT"),
    ];
    let app = cookie_app(&db, "cookies", &custom).await;
    let login = app.login("alice", "wonderland-42").await;
    let set = set_cookies(&login);
    assert!(set["rt"].contains("Path=/refresh") && set["rt_csrf"].contains("Path=/refresh"), "{set:?}");
    assert!(set["at"].contains("Path=/;") || set["at"].ends_with("Path=/"), "{set:?}");
    let (at, at_csrf) = (value(&set["at"]), value(&set["at_csrf"]));
    let cookie = format!("at={at}; at_csrf={at_csrf}");
    let protected = send(&app, Method::GET, "/protected", Some(&cookie), None).await;
    assert_eq!(protected.json, json!({ "logged_in_as": "alice" }));
    // Only PUT needs the CSRF value now: a POST logout without one goes through.
    let refresh = format!("rt={}; rt_csrf={}", value(&set["rt"]), value(&set["rt_csrf"]));
    let refreshed = send(&app, Method::POST, "/refresh", Some(&refresh), None).await;
    assert_eq!(refreshed.status, StatusCode::OK, "POST is not in JWT_CSRF_METHODS: {}", refreshed.json);
    let logout = send(&app, Method::POST, "/logout", Some(&cookie), None).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.json);
    assert_eq!(send(&app, Method::GET, "/protected", Some(&cookie), None).await.msg(), "Token has been revoked");

    // The custom header name is the one read: with POST in the methods, the default header is not enough.
    let spawn = |extra: Vec<(&'static str, &'static str)>| {
        let vars: Vec<(&str, &str)> = [("JWT_TOKEN_LOCATION", "cookies")].into_iter().chain(extra).collect();
        let settings = settings(&db, &vars);
        async move { AuthApp::spawn(&settings).await }
    };
    let app = spawn(vec![custom[0], custom[1], custom[2]]).await;
    let set = set_cookies(&app.login("alice", "wonderland-42").await);
    let (at, at_csrf) = (value(&set["at"]), value(&set["at_csrf"]));
    let cookie = format!("at={at}; at_csrf={at_csrf}");
    let wrong_header = send(&app, Method::POST, "/logout", Some(&cookie), Some(&at_csrf)).await;
    assert_eq!(wrong_header.msg(), "Missing CSRF token", "X-CSRF-TOKEN is not the configured header");
    let mut request = app.http.request(Method::POST, format!("{}/logout", app.address));
    request = request.header("cookie", &cookie).header("X-At-Csrf", &at_csrf);
    let right = crate::support::answer(request.send().await.expect("request")).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.json);

    // CSRF protection off: cookies alone authenticate every method.
    let app = spawn(vec![("JWT_COOKIE_CSRF_PROTECT", "false")]).await;
    let jar = Jar::from(&app.login("alice", "wonderland-42").await);
    let logout = send(&app, Method::POST, "/logout", Some(&jar.cookie_header()), None).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.json);
}
