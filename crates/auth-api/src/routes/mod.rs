//! One file per route.

pub mod health;
pub mod login;
pub mod logout;
pub mod protected;
pub mod refresh;

use serde_json::{Map, Value};

use super::error::ApiError;

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
    keys.issue(user, kind, fresh).map(|(token, _)| token).map_err(|e| {
        tracing::error!("could not sign a token: {e}");
        ApiError::Unavailable
    })
}
