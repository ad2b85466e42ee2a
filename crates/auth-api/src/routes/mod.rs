//! One file per route.

pub mod health;
pub mod login;
pub mod logout;
pub mod protected;
pub mod refresh;

use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::{Map, Value};

use super::cookies::CookieSettings;
use super::error::ApiError;
use super::tokens::{Claims, TokenKind};

/// `Ok` when the request declares a JSON body (`application/json`, or `application/<anything>+json`, as Flask's
/// `is_json`); 415 otherwise. Requiring it means a cross-site form or a `text/plain` fetch, which a browser sends
/// without a CORS preflight, can never log anyone in: only a request the CORS policy has allowed can.
fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let media_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json =
        media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    json.then_some(()).ok_or(ApiError::UnsupportedMediaType)
}

/// The body as a JSON object, or a clear 400.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest("The request body must be a JSON object".into())),
        Err(_) => Err(ApiError::BadRequest("The request body is not valid JSON".into())),
    }
}

/// Issues a token and its claims, or 503 (signing with an HMAC key fails only on a broken setup).
fn issue(
    keys: &super::tokens::TokenKeys,
    user: &str,
    kind: TokenKind,
    fresh: bool,
    refresh_jti: Option<&str>,
) -> Result<(String, Claims), ApiError> {
    issue_at(keys, user, kind, fresh, chrono::Utc::now().timestamp(), refresh_jti)
}

/// [`issue`] with `iat` (and `nbf`) set to `issued_at`, seconds since the epoch.
fn issue_at(
    keys: &super::tokens::TokenKeys,
    user: &str,
    kind: TokenKind,
    fresh: bool,
    issued_at: i64,
    refresh_jti: Option<&str>,
) -> Result<(String, Claims), ApiError> {
    keys.issue_at(user, kind, fresh, issued_at, refresh_jti).map_err(|e| {
        tracing::error!("could not sign a token: {e}");
        ApiError::Unavailable
    })
}

/// An answer that hands `tokens` to the client where `JWT_TOKEN_LOCATION` says: in the JSON body as
/// `access_token` / `refresh_token` when headers are a location, and as cookies (each JWT with its CSRF value)
/// when cookies are. `cookie_only` is the body when only cookies are (`{"login": true}`, as Flask apps answer).
fn hand_out(
    cookies: &CookieSettings,
    tokens: &[(String, Claims)],
    cookie_only: (&str, Value),
) -> (HeaderMap, Json<Value>) {
    let mut headers = HeaderMap::new();
    let mut body = Map::new();
    for (token, claims) in tokens {
        if cookies.tokens_in_headers() {
            body.insert(format!("{}_token", claims.kind.as_str()), Value::String(token.clone()));
        }
        if cookies.tokens_in_cookies() {
            for cookie in cookies.set(claims.kind, token, claims.csrf.as_deref().unwrap_or_default()) {
                headers.append(header::SET_COOKIE, cookie);
            }
        }
    }
    if !cookies.tokens_in_headers() {
        body.insert(cookie_only.0.to_string(), cookie_only.1);
    }
    (headers, Json(Value::Object(body)))
}
