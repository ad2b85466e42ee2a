//! The Function Compute side of HTTP: request ids, `x-fc-status`, JSON answers.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The header FC reads to tell success from failure; set on every answer.
pub static X_FC_STATUS: HeaderName = HeaderName::from_static("x-fc-status");
/// The request id FC sends with each call.
pub static X_FC_REQUEST_ID: HeaderName = HeaderName::from_static("x-fc-request-id");

/// The request id of a call: FC's `x-fc-request-id` when it is a sane token, else a fresh UUID.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_FC_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| crate::untrusted::is_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Middleware: copies the HTTP status into `x-fc-status` on every response, so FC never counts a failure as a
/// success.
pub async fn set_fc_status(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = HeaderValue::from(response.status().as_u16());
    response.headers_mut().insert(X_FC_STATUS.clone(), status);
    response
}

/// A JSON answer with a status.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}
