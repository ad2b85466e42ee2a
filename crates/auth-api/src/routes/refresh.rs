//! `POST /refresh` with a refresh token (not revoked) → `{"access_token"}` (not fresh).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::issue;
use crate::error::ApiError;
use crate::server::AppState;
use crate::tokens::TokenKind;

/// A new access token for the refresh token's user.
pub async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let claims = state.authorize(&headers, TokenKind::Refresh).await?;
    let access_token = issue(&state.keys, &claims.sub, TokenKind::Access, false)?;
    Ok(Json(json!({ "access_token": access_token })))
}
