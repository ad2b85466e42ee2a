//! CORS for the listed origins (`CORS_ALLOWED_ORIGINS`): none listed, no CORS headers at all.

use std::time::Duration;

use axum::http::{header, HeaderValue, Method};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::cookies::CookieSettings;

/// The layer for `allowed_origins`; `None` when none is listed (or none is a valid header value).
pub fn layer(allowed_origins: &[String], cookies: &CookieSettings) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    // The CSRF headers may come through; with cookies, credentials are allowed, and only ever for a listed origin
    // (never `*`: the list is exact, and the credentials header is answered to those origins alone).
    let mut allowed_headers = vec![header::AUTHORIZATION, header::CONTENT_TYPE];
    for name in [&cookies.access.header, &cookies.refresh.header] {
        if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
            if !allowed_headers.contains(&name) {
                allowed_headers.push(name);
            }
        }
    }
    let mut cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.clone()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(allowed_headers)
        .max_age(Duration::from_secs(600));
    if cookies.tokens_in_cookies() {
        cors = cors.allow_credentials(AllowCredentials::predicate(move |origin, _| origins.contains(origin)));
    }
    Some(cors)
}
