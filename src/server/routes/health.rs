//! `GET /health`: the process is up. No database call, so it is cheap enough for FC's health check and the
//! container's `HEALTHCHECK`.

use axum::Json;
use serde_json::{json, Value};

/// Always `200 {"status":"ok"}`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
