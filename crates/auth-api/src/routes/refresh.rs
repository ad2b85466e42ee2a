//! `POST /refresh` with a refresh token (not revoked) → `{"access_token"}` (not fresh). Rate limited per client
//! (`RATE_LIMIT_REFRESH`): one stolen refresh token cannot mint access tokens by the thousand.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::issue;
use crate::error::ApiError;
use crate::rate_limit::{Scope, Subject};
use crate::server::AppState;
use crate::tokens::TokenKind;

/// A new access token for the refresh token's user.
pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.limit(Scope::Refresh, Subject::Ip(state.client_ip(peer, &headers))).await?;
    let claims = state.authorize(&headers, TokenKind::Refresh).await?;
    let access_token = issue(&state.keys, &claims.sub, TokenKind::Access, false)?;
    Ok(Json(json!({ "access_token": access_token })))
}
