//! `GET /health`: 200 while the process serves (it does not touch the database).

use axum::Json;
use serde_json::{json, Value};

/// `{"status": "ok"}`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
