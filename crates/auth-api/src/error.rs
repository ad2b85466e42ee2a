//! The API's error answers: a status and `{"msg": ...}` (`{"message": "Too Many Requests"}` for 429, as Flask-Limiter
//! answers), never a stack trace or an internal detail.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::tokens::TokenError;

/// Everything a route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request body is not what the route needs.
    #[error("{0}")]
    BadRequest(String),
    /// 415: a body that is not declared JSON, where JSON is required (Flask's `request.get_json()` answers the same).
    #[error("Did not attempt to load JSON data because the request Content-Type was not 'application/json'.")]
    UnsupportedMediaType,
    /// 401: wrong user name or password.
    #[error("Invalid credentials")]
    InvalidCredentials,
    /// 401: no token where `JWT_TOKEN_LOCATION` says to look (every location's reason, joined by `; `).
    #[error("{0}")]
    MissingToken(String),
    /// 401: a token from a cookie without its double-submit CSRF value, or with another one.
    #[error("{0}")]
    Csrf(&'static str),
    /// 401: the token is refused.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// 401: the token's user no longer exists (Flask-JWT-Extended's user lookup answers the same).
    #[error("Error loading the user {0}")]
    UnknownUser(String),
    /// 401: the token is in the blacklist.
    #[error("Token has been revoked")]
    Revoked,
    /// 429, with `Retry-After`.
    #[error("Too Many Requests")]
    TooManyRequests(Duration),
    /// The body could not be read: too large (413), or not whole within the body deadline (400), as axum answers.
    #[error("{0}")]
    Body(#[from] axum::extract::rejection::BytesRejection),
    /// 503: the database did not answer; nothing was decided (a revocation check fails closed).
    #[error("Service temporarily unavailable; try again")]
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let msg = self.to_string();
        match self {
            ApiError::TooManyRequests(retry_after) => {
                let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "message": msg }))).into_response();
                if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, Json(json!({ "msg": msg }))).into_response(),
            ApiError::Body(rejection) => (rejection.status(), Json(json!({ "msg": msg }))).into_response(),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(json!({ "msg": msg }))).into_response()
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "msg": msg }))).into_response(),
            ApiError::InvalidCredentials
            | ApiError::MissingToken(_)
            | ApiError::Csrf(_)
            | ApiError::Token(_)
            | ApiError::UnknownUser(_)
            | ApiError::Revoked => {
                let mut response = (StatusCode::UNAUTHORIZED, Json(json!({ "msg": msg }))).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
        }
    }
}
