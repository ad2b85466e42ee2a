//! `GET /pre-stop`: FC's PreStop lifecycle hook. Nothing is buffered, so there is nothing to flush.

use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::server::fc::request_id;

/// Always `200 {"status":"ok"}`.
pub async fn pre_stop(headers: HeaderMap) -> Json<Value> {
    let id = request_id(&headers);
    tracing::info!(request_id = %id, "FC PreStop RequestId: {id}");
    Json(json!({ "status": "ok" }))
}
