//! `GET /protected` with an access token → `{"logged_in_as": NAME}`; rate limited per client IP
//! (`RATE_LIMIT_PROTECTED`).

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::server::AppState;
use crate::tokens::TokenKind;

/// Who the token belongs to.
pub async fn protected(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authorize(&method, &headers, TokenKind::Access).await?;
    Ok(Json(json!({ "logged_in_as": claims.sub })))
}
