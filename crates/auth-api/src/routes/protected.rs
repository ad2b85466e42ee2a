//! `GET /protected` with an access token → `{"logged_in_as": NAME}`; rate limited per client IP
//! (`RATE_LIMIT_PROTECTED`).

use axum::Json;
use serde_json::{json, Value};

use crate::authentication::{Access, Authenticated};

/// Who the token belongs to.
pub async fn protected(token: Authenticated<Access>) -> Json<Value> {
    Json(json!({ "logged_in_as": token.claims.sub }))
}
