//! `GET /health`: 200 while the process serves (it does not touch the database), with the revocation set's mode,
//! size and staleness when `REVOCATION_CACHE` is on (`"status": "degraded"` while it is past its bound: checks
//! then go to the database).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// `{"status": "ok"}`, or with the set `{"status": "ok" | "degraded", "revocations": {...}}`.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    match &state.revocation_cache {
        None => Json(json!({ "status": "ok", "revocations": { "mode": "database" } })),
        Some(cache) => {
            let revocations = cache.health();
            let status = if revocations["degraded"] == Value::Bool(true) { "degraded" } else { "ok" };
            Json(json!({ "status": status, "revocations": revocations }))
        }
    }
}
