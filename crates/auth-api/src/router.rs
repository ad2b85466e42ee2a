//! The routes. Every request is a span (`trace_request`, outermost of the route layers); every route but `/health`
//! is rate limited per client by a route layer that runs before the handler (and before its body is read); request
//! bodies are capped; CORS (`cors`) wraps them all.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tracing::Instrument;

use crate::cors;
use crate::rate_limit::{Scope, Subject};
use crate::routes;
use crate::state::AppState;

/// Request bodies above this are refused (413): a login is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The routes, with CORS for the allowed origins. The rate-limit scope is part of each route's declaration, so a
/// new route cannot be added without one.
pub fn router(state: AppState, cors_allowed_origins: &[String]) -> Router {
    let limited: [(&str, Scope, MethodRouter<AppState>); 4] = [
        ("/login", Scope::Login, post(routes::login::login)),
        ("/protected", Scope::Protected, get(routes::protected::protected)),
        ("/refresh", Scope::Refresh, post(routes::refresh::refresh)),
        ("/logout", Scope::Logout, post(routes::logout::logout)),
    ];
    let mut router = Router::new();
    for (path, scope, route) in limited {
        router = router.route(path, route.route_layer(from_fn_with_state((state.clone(), scope), limit_per_client)));
    }
    let cookies = state.cookies.clone();
    let router: Router = router
        .route("/health", get(routes::health::health))
        .route_layer(from_fn(trace_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    match cors::layer(cors_allowed_origins, &cookies) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The outer route layer: each request is a server span (route, status), continuing the caller's trace
/// (`traceparent`); the rate limit and the handler run inside it.
async fn trace_request(request: Request, next: Next) -> Response {
    // A route layer sees only requests that matched a route, and every route here is a plain path: the path is
    // the route.
    let route = request.uri().path().to_string();
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!(
        "request",
        "otel.name" = %format_args!("{method} {route}"),
        "otel.kind" = "server",
        "http.request.method" = %method,
        "http.route" = %route,
        "http.response.status_code" = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
    );
    jtc_shared::traces::context::continue_trace(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The route layer: one hit of the client on `scope`; 429 over the limit, the handler otherwise.
async fn limit_per_client(
    State((state, scope)): State<(AppState, Scope)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = state.client_ip(peer, request.headers());
    match state.limit(scope, Subject::Ip(client)).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}
