//! `GET /pre-stop` and `GET /pre-freeze`: FC's lifecycle hooks before an instance is stopped or frozen. The only
//! thing buffered is spans not yet exported: delivered here (at most `jtc_shared::traces::FLUSH_BOUND`).

use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::server::fc::request_id;

/// Always `200 {"status":"ok"}`: spans that could not be delivered are a log line.
pub async fn pre_stop(headers: HeaderMap) -> Json<Value> {
    let id = request_id(&headers);
    tracing::info!(request_id = %id, "FC PreStop RequestId: {id}");
    flush().await
}

/// FC's PreFreeze hook (function compute 2.0's; 3.0 documents only the Initializer and PreStop): like PreStop.
pub async fn pre_freeze(headers: HeaderMap) -> Json<Value> {
    let id = request_id(&headers);
    tracing::info!(request_id = %id, "FC PreFreeze RequestId: {id}");
    flush().await
}

async fn flush() -> Json<Value> {
    if let Err(e) = jtc_shared::traces::flush().await {
        tracing::warn!(error = %e, "spans were not delivered");
    }
    Json(json!({ "status": "ok" }))
}
