//! One file per route.

pub mod health;
pub mod login;
pub mod logout;
pub mod protected;
pub mod refresh;

use serde_json::{Map, Value};

use super::error::ApiError;

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

/// Issues a token, or 503 (signing with an HMAC key fails only on a broken setup).
fn issue(
    keys: &super::tokens::TokenKeys,
    user: &str,
    kind: super::tokens::TokenKind,
    fresh: bool,
) -> Result<String, ApiError> {
    issue_at(keys, user, kind, fresh, chrono::Utc::now().timestamp())
}

/// [`issue`] with `iat` (and `nbf`) set to `issued_at`, seconds since the epoch.
fn issue_at(
    keys: &super::tokens::TokenKeys,
    user: &str,
    kind: super::tokens::TokenKind,
    fresh: bool,
    issued_at: i64,
) -> Result<String, ApiError> {
    keys.issue_at(user, kind, fresh, issued_at).map(|(token, _)| token).map_err(|e| {
        tracing::error!("could not sign a token: {e}");
        ApiError::Unavailable
    })
}
