//! `POST /logout` with an access token: revokes it, and the refresh token given in the body
//! (`{"refresh_token": ...}`, optional), so that a logout really ends the session.
//!
//! Everything is checked before anything is written: a refresh token that is forged, of another user or not a
//! refresh token is a 400 and revokes nothing. An expired refresh token needs no revocation and is skipped.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::json_object;
use crate::auth::error::ApiError;
use crate::auth::server::AuthState;
use crate::auth::tokens::{TokenError, TokenKind};

/// Writes the blacklist entries and answers which tokens were revoked.
pub async fn logout(State(state): State<AuthState>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let access = state.authorize(&headers, TokenKind::Access).await?;

    let refresh_token = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match json_object(&body)?.remove("refresh_token") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => Some(token),
            Some(_) => return Err(ApiError::BadRequest("refresh_token must be a string".into())),
        }
    };
    let refresh = match refresh_token.as_deref().map(|t| state.keys.verify(t, TokenKind::Refresh)) {
        None | Some(Err(TokenError::Expired)) => None,
        Some(Err(e)) => return Err(ApiError::BadRequest(format!("refresh_token: {e}"))),
        Some(Ok(claims)) if claims.sub != access.sub => {
            return Err(ApiError::BadRequest("refresh_token: it belongs to another user".into()))
        }
        Some(Ok(claims)) => Some(claims),
    };

    // The refresh token first: if the access token's write then fails, the client can simply retry (its access
    // token still works, and revoking the refresh token again is harmless). The other order would leave a live
    // refresh token that no logout can reach any more.
    let mut revoked = vec![];
    for claims in refresh.iter().chain(std::iter::once(&access)) {
        state.revocations.revoke(claims).await.map_err(|e| {
            tracing::error!("logout: could not write the blacklist entry: {e}");
            ApiError::Unavailable
        })?;
        revoked.push(claims.kind.as_str());
    }
    tracing::info!(username = ?access.sub, revoked = ?revoked, "logout");
    revoked.reverse();
    Ok(Json(json!({ "msg": "Successfully logged out", "revoked": revoked })))
}
