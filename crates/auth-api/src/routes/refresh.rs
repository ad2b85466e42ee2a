//! `POST /refresh` with a refresh token (not revoked, its user still there, issued after their last password
//! change) → `{"access_token"}` (not fresh); in cookie mode, from the refresh cookie, a new access cookie and its
//! CSRF cookie. Costs the revocation lookup and one lookup of the user by name, both
//! indexed. Rate limited per client
//! (`RATE_LIMIT_REFRESH`): one stolen refresh token cannot mint access tokens by the thousand.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;

use super::{hand_out, issue};
use crate::authentication::{Authenticated, Refresh};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::TokenKind;

/// A new access token for the refresh token's user (from the header or the refresh cookie, then with the refresh
/// CSRF value).
pub async fn refresh(
    State(state): State<AppState>,
    Authenticated { claims, .. }: Authenticated<Refresh>,
) -> Result<(HeaderMap, Json<Value>), ApiError> {
    // The user must still exist, and the token must be younger than their password (whole seconds, as `iat` is:
    // a token issued in the very second of the change is refused too).
    let changed = state.users.password_changed(&claims.sub).await.map_err(|e| {
        tracing::error!("refresh: user lookup failed: {e}");
        ApiError::Unavailable
    })?;
    match changed {
        None => return Err(ApiError::UnknownUser(claims.sub)),
        Some(Some(changed)) if claims.issued_by(changed.timestamp_millis()) => return Err(ApiError::Revoked),
        Some(_) => {}
    }
    let access = issue(&state.keys, &claims.sub, TokenKind::Access, false, Some(&claims.jti))?;
    // `{"access_token"}`, and in cookie mode a new access cookie and its CSRF cookie.
    Ok(hand_out(&state.cookies, &[access], ("refresh", Value::Bool(true))))
}
