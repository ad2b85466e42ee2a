//! `POST /initialize`: FC's Initializer hook. Connects to the store and checks that the blacklist can be read.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::json;
use tracing::Instrument;

use crate::server::envelope::error_json;
use crate::server::fc::{json_response, request_id};
use crate::server::http_status;
use crate::server::AppState;
use crate::store::{Backend, SweepStore};

/// `200 {"status":"ok","backend":...}`, or the error JSON with 503 (unreachable) or 500.
pub async fn initialize(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let id = request_id(&headers);
    let span = tracing::info_span!("initialize", request_id = %id);
    async move {
        tracing::info!("FC Initialize Start RequestId: {id}");
        let store = state.runner.backends.for_run();
        let response = match store.check().await {
            Ok(()) => json_response(
                StatusCode::OK,
                json!({ "status": "ok", "backend": store.backend(), "fallback_reason": store.fallback_reason() }),
            ),
            Err(e) => {
                tracing::error!(error = %e, "initialize failed");
                let status = http_status::of_store_failure(e.kind());
                let body = error_json("Initialize failed", &e.to_string(), 0, Utc::now(), &id, json!({}));
                json_response(status, body)
            }
        };
        tracing::info!("FC Initialize End RequestId: {id}");
        response
    }
    .instrument(span)
    .await
}
